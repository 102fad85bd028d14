"""Network namespaces as bind-mounted files under the engine's run dir, without a helper process.

A namespace is created by the calling *thread*: it saves its own netns, `unshare(CLONE_NEWNET)`s,
bind-mounts `/proc/thread-self/ns/net` onto the target file and `setns()`s back. Namespaces are
per-thread in Linux, so nothing else in the process is disturbed, and no fork is needed (pyroute2's
`netns.create` forks a child for the same job, which costs milliseconds).

The directory holding the files is made a shared mount of itself (as iproute2 does for /run/netns),
so that an unmount here also removes the copies that mount namespaces created later (runc's) hold.

`entered(path)` runs a block inside a namespace (same thread-local trick) and `iproute_in(path)`
returns a pyroute2 IPRoute whose netlink socket lives in that namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc: Any = None


def _lib() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                                ctypes.c_void_p]
        _libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return _libc


def _check(rc: int, what: str, path: str | os.PathLike[str] = "") -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", str(path))


def _setns(fd: int) -> None:
    _check(_lib().setns(fd, CLONE_NEWNET), "setns")


def prepare_dir(directory: Path) -> None:
    """Create `directory` and make it a shared bind mount of itself (idempotent)."""
    directory.mkdir(parents=True, exist_ok=True)
    lib = _lib()
    d = str(directory).encode()
    if lib.mount(b"none", d, None, MS_SHARED | MS_REC, None) == 0 and _is_mountpoint(directory):
        return
    _check(lib.mount(d, d, None, MS_BIND | MS_REC, None), "bind-mount netns dir", directory)
    _check(lib.mount(b"none", d, None, MS_SHARED | MS_REC, None), "make netns dir shared", directory)


def _is_mountpoint(directory: Path) -> bool:
    target = str(directory.resolve())
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def create(path: Path) -> None:
    """Create a fresh network namespace (only `lo`, down) pinned at `path`. Raises FileExistsError."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    lib = _lib()
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _check(lib.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)", path)
        try:
            _check(lib.mount(b"/proc/thread-self/ns/net", str(path).encode(), None, MS_BIND, None),
                   "bind-mount netns", path)
        finally:
            _setns(own)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    finally:
        os.close(own)


def remove(path: Path) -> bool:
    """Unmount and unlink a namespace file. Idempotent; True when something was there."""
    found = False
    lib = _lib()
    p = str(path).encode()
    while lib.umount2(p, MNT_DETACH) == 0:
        found = True
    try:
        os.unlink(path)
        found = True
    except FileNotFoundError:
        pass
    return found


def release_dir(directory: Path) -> None:
    """Undo prepare_dir: unmount every namespace in it and the directory's own bind mount."""
    if directory.is_dir():
        for f in directory.iterdir():
            remove(f)
    d = str(directory).encode()
    while _lib().umount2(d, MNT_DETACH) == 0:
        pass


def is_netns(path: Path) -> bool:
    """True when `path` is a live namespace (a bind mount of an nsfs inode)."""
    # A bind-mounted nsfs inode reports the nsfs device; a plain (stale) file reports its directory's.
    try:
        return os.stat(path).st_dev != os.stat(Path(path).parent).st_dev
    except OSError:
        return False


@contextlib.contextmanager
def entered(path: Path | str) -> Iterator[None]:
    """Run the block with the calling thread inside the namespace at `path`."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


def namespace_fd(path: Path | str) -> int:
    """An open fd on a namespace file (caller closes)."""
    return os.open(path, os.O_RDONLY)


def iproute_in(path: Path | str) -> Any:
    """A pyroute2 IPRoute whose netlink socket belongs to the namespace at `path`."""
    from pyroute2 import IPRoute

    with entered(path):
        return IPRoute()


def ignore_missing(err: OSError) -> bool:
    return err.errno in (errno.ENOENT, errno.EINVAL)
