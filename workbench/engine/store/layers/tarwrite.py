"""A directory (or an overlay upper dir) → an OCI layer tar, deterministic with an epoch."""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from typing import BinaryIO

from workbench.errors import Conflict, InvalidArgument
from workbench.engine.store.layers.apply import (
    _CHUNK,
    _IGNORED_XATTR_ERRNOS,
    OPAQUE,
    OPAQUE_XATTR,
    WHITEOUT_PREFIX,
)

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
