"""Layer tars: safe apply onto a directory, and directory (or overlay upper) → OCI layer tar.

Apply (`apply_layer`) reads an *uncompressed* tar stream entry by entry with tarfile in stream mode
and does all path handling itself (tarfile's extract functions are never used):

- Names are cleaned lexically; a leading `/` is stripped (as Docker does) and any name that still
  climbs out (`../x`, `a/../../x`, `/../x`) is rejected.
- Parent directories are resolved component by component, securejoin-style, inside `dest`. A
  symlink that was *already in dest* (flatten mode onto an existing tree) is followed with `dest`
  as the root: absolute targets are taken relative to `dest` and `..` stops at `dest`, so it can
  never lead outside. A symlink *created by the same archive* is never followed: an entry beneath
  it is rejected (bsdtar's and GNU tar's policy; no tar written by walking a tree has such entries).
- Regular files are created with O_EXCL|O_NOFOLLOW after removing whatever was at the path, so a
  final-component symlink is replaced, never written through.
- Hardlink targets must already exist inside dest (earlier in this archive, or in the tree).
- Device nodes are refused unless `allow_devices`; fifos are always allowed.
- `trusted.overlay.*` xattrs in an archive are ignored (they would change how overlayfs reads it).

OCI whiteouts: in mode "overlay" (each layer unpacked into its own snapshot directory, later
stacked as an overlay lowerdir) `.wh.name` becomes a char device 0:0 named `name` and
`.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory; in mode "flatten" (applying onto
an existing tree) they delete `name` / remove everything in the directory that this layer did not
itself put there. Other `.wh..wh.*` entries (aufs metadata) are skipped.

Any bad archive raises `InvalidArgument`; the caller throws the partial directory away.
"""

from __future__ import annotations

import enum
import errno
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Literal, NamedTuple, Protocol

from workbench.engine.store.compression import DECOMPRESS_ERRORS
from workbench.errors import Conflict, Internal, InvalidArgument, WorkbenchError

__all__ = ["ApplyStats", "Change", "ChangeKind", "Readable", "apply_layer", "changes", "diff_to_tar",
           "dir_to_tar"]

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_CHUNK = 1 << 20
_SMALL = 1 << 16
# OSErrors that are the host's fault, not the archive's: they become 500, not 400.
_HOST_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM, errno.EMFILE,
                errno.ENFILE}
_IGNORED_XATTR_ERRNOS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}
_MAX_SYMLINK_HOPS = 40


@dataclass(frozen=True, slots=True)
class ApplyStats:
    """What an apply wrote: entries applied (`files`) and regular-file bytes (`bytes`)."""

    files: int
    bytes: int


class Readable(Protocol):
    """What `apply_layer` needs of its input: `read(n)`."""

    def read(self, n: int = -1, /) -> bytes: ...


class _Counting:
    """Counts bytes read from the source, to tell an empty stream from a broken one."""

    def __init__(self, raw: Readable) -> None:
        self._raw, self.count = raw, 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.count += len(data)
        return data


def _clean(name: str, what: str = "tar entry") -> str:
    """Clean a tar name to a path relative to dest ("" is dest itself); reject escapes."""
    if "\x00" in name:
        raise InvalidArgument(f"invalid {what} name {name!r}")
    path = posixpath.normpath(name.lstrip("/"))
    if path == ".":
        return ""
    if path == ".." or path.startswith("../"):
        raise InvalidArgument(f"{what} {name!r} points outside the destination")
    return path


def _ns(member: tarfile.TarInfo, key: str) -> int:
    raw = member.pax_headers.get(key)
    if raw is not None:
        try:
            whole, _, frac = raw.partition(".")
            sign = -1 if whole.startswith("-") else 1
            return int(whole) * 1_000_000_000 + sign * int((frac + "000000000")[:9])
        except ValueError:
            pass
    return int(member.mtime) * 1_000_000_000


class _Applier:
    def __init__(self, dest: str, mode: str, allow_devices: bool) -> None:
        self.root = dest
        self.mode = mode
        self.allow_devices = allow_devices
        self.resolved: dict[str, str] = {"": ""}  # parent as named → parent as resolved (real dirs)
        self.own_links: set[str] = set()  # symlinks this archive created (resolved rel paths)
        self.unpacked: set[str] = set()  # paths this archive wrote (flatten-mode opaque handling)
        self.dir_times: dict[str, tuple[int, int]] = {}
        self.files = 0
        self.bytes = 0
        self.buf = memoryview(bytearray(_CHUNK))

    # -- path resolution -------------------------------------------------------------------
    def abspath(self, rel: str) -> str:
        return self.root + "/" + rel if rel else self.root

    def resolve_dir(self, rel: str, entry: str, *, create: bool) -> str | None:
        """Resolve `rel` to a real directory inside dest; None if missing and not `create`."""
        hit = self.resolved.get(rel)
        if hit is not None:
            return hit
        parts = rel.split("/")
        parts.reverse()
        cur: list[str] = []
        hops = 0
        while parts:
            comp = parts.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if cur:
                    cur.pop()
                continue
            cand = "/".join([*cur, comp])
            full = self.abspath(cand)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                if not create:
                    return None
                os.mkdir(full, 0o755)
                self.unpacked.add(cand)
                cur.append(comp)
                continue
            if stat.S_ISDIR(st.st_mode):
                cur.append(comp)
            elif stat.S_ISLNK(st.st_mode):
                if cand in self.own_links:
                    raise InvalidArgument(
                        f"tar entry {entry!r} goes through symlink {cand!r} created by the same archive")
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise InvalidArgument(f"tar entry {entry!r}: too many levels of symbolic links")
                target = os.readlink(full)
                if target.startswith("/"):
                    cur = []
                parts.extend(reversed(target.split("/")))
            else:
                raise InvalidArgument(f"tar entry {entry!r}: {cand!r} is not a directory")
        out = "/".join(cur)
        self.resolved[rel] = out
        return out

    def remove(self, rel: str, st: os.stat_result) -> None:
        """Remove what is at `rel` (never following a symlink) and forget what lay beneath it."""
        full = self.abspath(rel)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(full)
            self.resolved = {"": ""}
            under = rel + "/"
            self.dir_times = {k: v for k, v in self.dir_times.items()
                              if k != rel and not k.startswith(under)}
        else:
            os.unlink(full)
        self.own_links.discard(rel)

    # -- entries ---------------------------------------------------------------------------
    def apply(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = _clean(m.name)
        if not rel:
            if not m.isdir():
                raise InvalidArgument(f"tar entry {m.name!r} names the destination but is not a directory")
            self.metadata(self.root, m, fd=None)
            self.dir_times[""] = (_ns(m, "atime") if "atime" in m.pax_headers else _ns(m, "mtime"),
                                  _ns(m, "mtime"))
            return
        parent, _, base = rel.rpartition("/")
        pdir = self.resolve_dir(parent, m.name, create=True)
        assert pdir is not None
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(pdir, base, m)
            return
        self.check_type(m)
        link_target = self.link_target(m) if m.islnk() else ""
        path = f"{pdir}/{base}" if pdir else base
        self.unpacked.add(path)
        full = self.abspath(path)
        try:
            st: os.stat_result | None = os.lstat(full)
        except FileNotFoundError:
            st = None
        if st is not None and not (m.isdir() and stat.S_ISDIR(st.st_mode)):
            self.remove(path, st)
        self.files += 1
        if m.isreg():
            self.regular(tf, m, full)
        elif m.isdir():
            if st is None:
                os.mkdir(full, 0o700)
            self.metadata(full, m, fd=None)
            self.dir_times[path] = (_ns(m, "atime") if "atime" in m.pax_headers else _ns(m, "mtime"),
                                    _ns(m, "mtime"))
            if parent == pdir:
                self.resolved[rel] = path
        elif m.issym():
            os.symlink(m.linkname, full)
            self.own_links.add(path)
            self.metadata(full, m, fd=None, symlink=True)
        elif m.islnk():
            os.link(link_target, full, follow_symlinks=False)
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(full, kind | 0o600, os.makedev(m.devmajor, m.devminor))
            self.metadata(full, m, fd=None)
        else:
            os.mknod(full, stat.S_IFIFO | 0o600)
            self.metadata(full, m, fd=None)

    def check_type(self, m: tarfile.TarInfo) -> None:
        """Refuse an entry before anything at its path is touched."""
        if (m.ischr() or m.isblk()) and not self.allow_devices:
            raise InvalidArgument(f"tar entry {m.name!r}: device nodes are not allowed here")
        if m.issym() and not m.linkname:
            raise InvalidArgument(f"tar entry {m.name!r}: symlink with an empty target")
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk() or m.ischr() or m.isblk() or m.isfifo()):
            raise InvalidArgument(f"tar entry {m.name!r}: unsupported entry type {m.type!r}")

    def regular(self, tf: tarfile.TarFile, m: tarfile.TarInfo, full: str) -> None:
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if m.size:
                src = tf.extractfile(m)
                assert src is not None
                if m.size <= _SMALL:
                    _write_all(fd, src.read())
                else:
                    raw = src.raw  # type: ignore[attr-defined]  # skip BufferedReader's extra copy
                    left = m.size
                    while left:
                        n = raw.readinto(self.buf[: min(left, _CHUNK)])
                        if not n:
                            raise InvalidArgument(f"tar entry {m.name!r}: unexpected end of data")
                        _write_all(fd, self.buf[:n])
                        left -= n
                self.bytes += m.size
            self.metadata(full, m, fd=fd)
        finally:
            os.close(fd)

    def link_target(self, m: tarfile.TarInfo) -> str:
        """The path a hardlink entry links to: inside dest, already there, not a directory."""
        target = _clean(m.linkname, f"tar entry {m.name!r}: hardlink target")
        tparent, _, tbase = target.rpartition("/")
        tdir = self.resolve_dir(tparent, m.name, create=False) if tbase else None
        tfull = self.abspath(f"{tdir}/{tbase}" if tdir else tbase) if tdir is not None else None
        if tfull is None or not os.path.lexists(tfull):
            raise InvalidArgument(
                f"tar entry {m.name!r}: hardlink target {m.linkname!r} is not in the layer")
        if os.path.isdir(tfull) and not os.path.islink(tfull):
            raise InvalidArgument(f"tar entry {m.name!r}: hardlink to directory {m.linkname!r}")
        return tfull

    def whiteout(self, pdir: str, base: str, m: tarfile.TarInfo) -> None:
        self.files += 1
        if base == OPAQUE:
            if self.mode == "overlay":
                os.setxattr(self.abspath(pdir), OPAQUE_XATTR, b"y", follow_symlinks=False)
            else:
                self.empty_dir(pdir)
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # aufs metadata (.wh..wh.plnk and the like)
        name = base[len(WHITEOUT_PREFIX):]
        if name in ("", ".", ".."):
            raise InvalidArgument(f"tar entry {m.name!r}: invalid whiteout")
        path = f"{pdir}/{name}" if pdir else name
        try:
            st: os.stat_result | None = os.lstat(self.abspath(path))
        except FileNotFoundError:
            st = None
        if st is not None:
            self.remove(path, st)
        if self.mode == "overlay":
            os.mknod(self.abspath(path), stat.S_IFCHR, os.makedev(0, 0))
            os.chown(self.abspath(path), m.uid, m.gid, follow_symlinks=False)

    def empty_dir(self, rel: str) -> None:
        """Flatten-mode opaque dir: remove every child this archive did not write itself."""
        full = self.abspath(rel)
        with os.scandir(full) as it:
            children = [e.name for e in it]
        for name in children:
            child = f"{rel}/{name}" if rel else name
            st = os.lstat(self.abspath(child))
            if child not in self.unpacked:
                self.remove(child, st)
            elif stat.S_ISDIR(st.st_mode):
                self.empty_dir(child)

    def metadata(self, full: str, m: tarfile.TarInfo, *, fd: int | None, symlink: bool = False) -> None:
        if fd is not None:
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, m.mode & 0o7777)
        else:
            os.chown(full, m.uid, m.gid, follow_symlinks=False)
            if not symlink:
                os.chmod(full, m.mode & 0o7777)
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                self.xattr(full if fd is None else fd, key[13:], value, m)
        if fd is not None:
            os.utime(fd, ns=(_ns(m, "atime") if "atime" in m.pax_headers else _ns(m, "mtime"),
                             _ns(m, "mtime")))
        elif not m.isdir():
            os.utime(full, ns=(_ns(m, "mtime"), _ns(m, "mtime")), follow_symlinks=False)

    def xattr(self, target: str | int, name: str, value: str, m: tarfile.TarInfo) -> None:
        if name.startswith("trusted.overlay."):
            return
        try:
            data = value.encode("utf-8", "surrogateescape")
            if isinstance(target, int):
                os.setxattr(target, name, data)
            else:
                os.setxattr(target, name, data, follow_symlinks=False)
        except OSError as err:
            if err.errno not in _IGNORED_XATTR_ERRNOS:
                raise InvalidArgument(f"tar entry {m.name!r}: cannot set xattr {name}: "
                                      f"{err.strerror}") from err

    def finish(self) -> None:
        for rel, (atime, mtime) in sorted(self.dir_times.items(), reverse=True):
            os.utime(self.abspath(rel), ns=(atime, mtime), follow_symlinks=False)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def apply_layer(tar_stream: Readable, dest: os.PathLike[str] | str, *,
                mode: Literal["overlay", "flatten"] = "overlay", allow_devices: bool = True) -> ApplyStats:
    """Extract an uncompressed layer tar into `dest`, safely.

    Args:
        tar_stream: readable binary stream of an uncompressed tar; read to its end (trailing
            bytes after the end-of-archive marker are drained so a hashing reader sees them).
        dest: an existing directory. "overlay" expects it to be this layer's own empty dir.
        mode: "overlay" turns whiteouts into overlayfs whiteouts; "flatten" applies them as deletions.
        allow_devices: whether char/block device entries are accepted.
    Returns:
        ApplyStats(files=entries applied, bytes=regular-file bytes written).
    Raises:
        InvalidArgument: the archive is malformed or unsafe (escape, bad hardlink, device, ...).
        Internal: the host failed (no space, I/O error).
    """
    if mode not in ("overlay", "flatten"):
        raise InvalidArgument(f"unknown apply mode {mode!r} (want 'overlay' or 'flatten')")
    root = os.path.realpath(os.fspath(dest))
    if not os.path.isdir(root):
        raise InvalidArgument(f"apply destination {root} is not a directory")
    app = _Applier(root, mode, allow_devices)
    src = _Counting(tar_stream)
    name = "<archive>"
    try:
        try:
            tf = tarfile.open(  # closed by the `with` below
                fileobj=src, mode="r|", bufsize=_SMALL, encoding="utf-8")  # type: ignore[call-overload]
        except tarfile.ReadError:
            if src.count == 0:
                return ApplyStats(0, 0)
            raise
        with tf:
            while (m := tf.next()) is not None:
                name = m.name
                app.apply(tf, m)
                tf.members.clear()
        while src.read(_CHUNK):
            pass
        app.finish()
    except WorkbenchError:
        raise
    except (tarfile.TarError, EOFError, UnicodeError) as err:
        raise InvalidArgument(f"invalid layer tar near {name!r}: {err}") from err
    except OSError as err:
        if err.errno in _HOST_ERRNOS:
            raise Internal(f"applying layer at {name!r}: {err}") from err
        raise InvalidArgument(f"invalid layer tar: cannot apply {name!r}: "
                              f"{err.strerror or err}") from err
    except DECOMPRESS_ERRORS as err:  # from a decompressing reader given as the stream
        raise InvalidArgument(f"invalid layer stream near {name!r}: {err}") from err
    return ApplyStats(app.files, app.bytes)


# -- tree → tar ------------------------------------------------------------------------------

def diff_to_tar(upper: os.PathLike[str] | str, out: BinaryIO, *, epoch: int | None = None) -> int:
    """Write an overlay upper directory as an OCI layer tar to `out`; return the entry count.

    Overlay whiteouts (char 0:0) become `.wh.name` entries; a directory with
    `trusted.overlay.opaque=y` is followed by `dir/.wh..wh..opq`. Entries come depth-first in
    byte order of their names, hardlinks within the layer as hardlink entries, uid/gid numeric
    only (no user/group names), mtimes whole seconds. With `epoch`, mtimes are clamped to it, so
    identical trees give byte-identical tars.
    """
    return _TarWalker(os.fspath(upper), out, epoch=epoch, overlay=True).run()


def dir_to_tar(root: os.PathLike[str] | str, out: BinaryIO, *, epoch: int | None = None,
               prefix: str = "") -> int:
    """Write a whole tree as a tar to `out` (no whiteout conversion); return the entry count.

    With `prefix`, names are `prefix/...` and the root itself is emitted as `prefix/`.
    """
    return _TarWalker(os.fspath(root), out, epoch=epoch, overlay=False, prefix=prefix.strip("/")).run()


class ChangeKind(enum.IntEnum):
    """Docker's change kinds (`GET /containers/{id}/changes`)."""

    MODIFIED = 0
    ADDED = 1
    DELETED = 2


class Change(NamedTuple):
    path: str
    kind: ChangeKind


def changes(upper: os.PathLike[str] | str, lowers: list[os.PathLike[str] | str]) -> list[Change]:
    """List what an overlay upper dir changes over its lowers (top first), as Docker reports it.

    Paths are absolute in the container ("/etc/hosts"). A whiteout is DELETED; a path present in
    the lowers is MODIFIED (a directory whose mode, size and mtime match is skipped, though its
    children are still examined), else ADDED. The parent of an added or deleted path is reported
    MODIFIED if nothing else reported it.
    """
    return _ChangeWalker(os.fspath(upper), [os.fspath(x) for x in lowers]).run()


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _xattrs(full: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(full, follow_symlinks=False)
    except OSError as err:
        if err.errno in _IGNORED_XATTR_ERRNOS:
            return {}
        raise
    return {n: os.getxattr(full, n, follow_symlinks=False) for n in sorted(names)}


def _children(root: str, rel: str, overlay: bool) -> list[tuple[bytes, str, os.stat_result]]:
    """A directory's children as (sort key, rel path, lstat), in byte order of the emitted name."""
    full = root + "/" + rel if rel else root
    out = []
    with os.scandir(full) as it:
        for e in it:
            st = e.stat(follow_symlinks=False)
            shown = WHITEOUT_PREFIX + e.name if overlay and _is_whiteout(st) else e.name
            out.append((os.fsencode(shown), f"{rel}/{e.name}" if rel else e.name, st))
    out.sort(key=lambda t: t[0])
    return out


class _TarWalker:
    """Depth-first, byte-ordered walk of a tree, written as a PAX tar (headers via TarInfo.tobuf)."""

    def __init__(self, root: str, out: BinaryIO, *, epoch: int | None, overlay: bool,
                 prefix: str = "") -> None:
        self.root, self.out, self.epoch, self.overlay, self.prefix = root, out, epoch, overlay, prefix
        self.links: dict[tuple[int, int], str] = {}
        self.count = 0
        self.buf = memoryview(bytearray(_CHUNK))

    def run(self) -> int:
        if not os.path.isdir(self.root):
            raise InvalidArgument(f"{self.root} is not a directory")
        if self.prefix:
            self.emit("", os.lstat(self.root))
        stack = [iter(_children(self.root, "", self.overlay))]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
            elif self.emit(item[1], item[2]):
                stack.append(iter(_children(self.root, item[1], self.overlay)))
        self.out.write(bytes(1024))
        return self.count

    def header(self, name: str, st: os.stat_result, type_: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid = type_, mode, st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        mtime = st.st_mtime_ns // 1_000_000_000
        ti.mtime = mtime if self.epoch is None else min(mtime, self.epoch)
        return ti

    def write(self, ti: tarfile.TarInfo) -> None:
        self.out.write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        self.count += 1

    def emit(self, rel: str, st: os.stat_result) -> bool:
        """Write the entry for `rel`; True when it is a directory to descend into."""
        full = self.root + "/" + rel if rel else self.root
        name = "/".join(p for p in (self.prefix, rel) if p)
        fmt, perm = stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)
        if self.overlay and _is_whiteout(st):
            parent, _, base = name.rpartition("/")
            self.write(self.header(posixpath.join(parent, WHITEOUT_PREFIX + base), st, tarfile.REGTYPE, 0o600))
            return False
        types = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFREG: tarfile.REGTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
                 stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE, stat.S_IFIFO: tarfile.FIFOTYPE}
        if fmt not in types:
            return False  # sockets and the like are not archived
        ti = self.header(name, st, types[fmt], perm)
        xattrs = _xattrs(full)
        ti.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                          for k, v in xattrs.items() if not k.startswith("trusted.overlay.")}
        if fmt == stat.S_IFREG:
            if st.st_nlink > 1:
                first = self.links.setdefault((st.st_dev, st.st_ino), name)
                if first != name:
                    ti.type, ti.linkname = tarfile.LNKTYPE, first
                    self.write(ti)
                    return False
            ti.size = st.st_size
            self.write(ti)
            self.copy(full, st.st_size)
        elif fmt == stat.S_IFLNK:
            ti.linkname = os.readlink(full)
            self.write(ti)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.write(ti)
        else:
            self.write(ti)
        if fmt == stat.S_IFDIR and self.overlay and xattrs.get(OPAQUE_XATTR) == b"y":
            self.write(self.header(posixpath.join(name, OPAQUE), st, tarfile.REGTYPE, perm))
        return fmt == stat.S_IFDIR

    def copy(self, full: str, size: int) -> None:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            left = size
            while left:
                n = os.readv(fd, [self.buf[: min(left, _CHUNK)]])
                if not n:
                    raise Conflict(f"{full} shrank while being archived")
                self.out.write(self.buf[:n])
                left -= n
        finally:
            os.close(fd)
        if size % 512:
            self.out.write(bytes(512 - size % 512))


class _ChangeWalker:
    def __init__(self, upper: str, lowers: list[str]) -> None:
        self.upper, self.lowers = upper, lowers
        self.out: list[Change] = []
        self.changed_dirs: set[str] = set()

    def run(self) -> list[Change]:
        stack = [iter(_children(self.upper, "", False))]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
            elif self.visit(item[1], item[2]):
                stack.append(iter(_children(self.upper, item[1], False)))
        return self.out

    def visit(self, rel: str, st: os.stat_result) -> bool:
        path = "/" + rel
        is_dir = stat.S_ISDIR(st.st_mode)
        if _is_whiteout(st):
            kind = ChangeKind.DELETED
        else:
            low = self.lower_stat(rel)
            kind = ChangeKind.ADDED if low is None else ChangeKind.MODIFIED
            if (low is not None and is_dir and stat.S_ISDIR(low.st_mode) and low.st_mode == st.st_mode
                    and low.st_size == st.st_size and low.st_mtime_ns == st.st_mtime_ns
                    and _xattrs(self.upper + path).get(OPAQUE_XATTR) != b"y"):
                return True  # copied up only because something below changed
        if is_dir:
            self.changed_dirs.add(path)
        if kind != ChangeKind.MODIFIED:
            parent = posixpath.dirname(path)
            if parent != "/" and parent not in self.changed_dirs:
                self.out.append(Change(parent, ChangeKind.MODIFIED))
                self.changed_dirs.add(parent)
        self.out.append(Change(path, kind))
        return is_dir

    def lower_stat(self, rel: str) -> os.stat_result | None:
        """The lstat of `rel` as the stacked lowers show it (top first), or None if absent there."""
        parts = rel.split("/")
        for lower in self.lowers:
            try:
                st = os.lstat(lower + "/" + rel)
            except (FileNotFoundError, NotADirectoryError):
                if self.hides(lower, parts):
                    return None
                continue
            return None if _is_whiteout(st) else st
        return None

    def hides(self, lower: str, parts: list[str]) -> bool:
        """Whether an ancestor of the path in `lower` hides the lowers below (whiteout/file/opaque)."""
        for i in range(1, len(parts)):
            anc = lower + "/" + "/".join(parts[:i])
            try:
                st = os.lstat(anc)
            except FileNotFoundError:
                return False
            if not stat.S_ISDIR(st.st_mode) or _xattrs(anc).get(OPAQUE_XATTR) == b"y":
                return True
        return False
