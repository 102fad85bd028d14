"""Safe apply of an uncompressed layer tar onto a directory (see the package docstring)."""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from workbench.engine.store.compression import DECOMPRESS_ERRORS
from workbench.engine.store.durable import Writeback
from workbench.errors import Internal, InvalidArgument, WorkbenchError


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
                elif (stream := _plain_stream(tf, m)) is not None:
                    _copy_from_stream(stream, fd, m)
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


def _plain_stream(tf: tarfile.TarFile, m: tarfile.TarInfo) -> Any:
    """The uncompressed `r|` stream under `tf` when it sits at the start of `m`'s data, else None.

    tarfile's stream reader hands out file data through its `_Stream`, which joins and slices every
    megabyte twice; for big files `_copy_from_stream` reads the source directly instead. It
    relies on `_Stream`'s `buf`/`pos`/`fileobj` (the same since Python 3.2), so it checks for them
    and leaves any other layout to the public path.
    """
    if m.sparse is not None or m.type == tarfile.GNUTYPE_SPARSE:
        return None          # the archive holds only the data blocks, not m.size bytes
    stream = tf.fileobj
    if (type(stream).__name__ == "_Stream" and getattr(stream, "comptype", None) == "tar"
            and isinstance(getattr(stream, "buf", None), bytes) and getattr(stream, "pos", None) == m.offset_data
            and hasattr(getattr(stream, "fileobj", None), "read")):
        return stream
    return None


def _copy_from_stream(stream: Any, fd: int, m: tarfile.TarInfo) -> None:
    """Write `m.size` bytes of member data from `stream` (see `_plain_stream`) to `fd`; the stream
    is left where tarfile expects it (it skips the block padding itself on its next header)."""
    left = m.size
    writeback = Writeback(fd)
    head: bytes = stream.buf
    if head:
        take = head[:left]
        _write_all(fd, take)
        stream.buf = head[len(take):]
        left -= len(take)
    while left:
        data = stream.fileobj.read(min(left, _CHUNK))
        if not data:
            raise InvalidArgument(f"tar entry {m.name!r}: unexpected end of data")
        if len(data) > left:  # a reader that ignored its size hint: keep the rest for tarfile
            stream.buf, data = data[left:], data[:left]
        _write_all(fd, data)
        writeback.wrote(len(data))
        left -= len(data)
    stream.pos += m.size


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
