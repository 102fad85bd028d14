"""overlayfs mount(2) and umount2(2) through ctypes: the option string, and its length limit.

`mount` takes the lowerdirs top first, as overlayfs's `lowerdir=` wants them. The options must fit
in one page (4095 bytes and a NUL); when absolute paths do not, the lowerdirs are given by their
short names relative to a links directory, mounted from a thread that has its own working
directory (unshare(CLONE_FS)) so the daemon's stays put — what moby's overlay2 driver does.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

from workbench.errors import Internal, InvalidArgument, NotFound

__all__ = ["OPTIONS", "mount", "unmount"]

OPTIONS = "index=off,redirect_dir=off,metacopy=off"
_MOUNT_DATA_MAX = 4095  # mount(2) copies one page of options, NUL included
_MS_RDONLY = 1
_MNT_DETACH = 2
_CLONE_FS = 0x200


class _Libc:
    """mount(2), umount2(2) and unshare(2), errors as OSError."""

    def __init__(self) -> None:
        self._lib = ctypes.CDLL(None, use_errno=True)

    def _check(self, rc: int, what: str, path: str) -> None:
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}", path)

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        rc = self._lib.mount(source.encode(), os.fsencode(target), fstype.encode(),
                             ctypes.c_ulong(flags), os.fsencode(data))
        self._check(rc, "mount", target)

    def umount2(self, target: str, flags: int) -> None:
        self._check(self._lib.umount2(os.fsencode(target), flags), "umount", target)

    def unshare(self, flags: int) -> None:
        self._check(self._lib.unshare(flags), "unshare", "")


_libc = _Libc()


def escape(path: str) -> str:
    """Escape a path for overlayfs's option string (`,` `:` and `\\` are special)."""
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def mount(target: Path, lowers: list[Path], upper: Path | None, work: Path | None,
          *, short_names: tuple[Path, Callable[[Path], str]]) -> None:
    """Mount overlayfs at `target`; read-only when `upper` is None.

    `short_names`: the links directory and a function giving a lowerdir's name in it, used when
    the absolute paths overflow the option page.
    """
    tail = ""
    if upper is not None:
        if work is None:
            raise InvalidArgument("an overlay mount with an upper dir needs a work dir")
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        tail = f",upperdir={escape(str(upper.absolute()))},workdir={escape(str(work.absolute()))}"
    flags = 0 if upper is not None else _MS_RDONLY
    data = f"{OPTIONS},lowerdir={':'.join(escape(str(p)) for p in lowers)}{tail}"
    if len(data) <= _MOUNT_DATA_MAX:
        _mount(str(target), data, flags)
        return
    links, short_name = short_names
    data = f"{OPTIONS},lowerdir={':'.join(short_name(p) for p in lowers)}{tail}"
    if len(data) > _MOUNT_DATA_MAX:
        raise InvalidArgument(f"{len(lowers)} layers do not fit in overlay mount options")
    _mount_from(str(Path(target).absolute()), data, flags, str(links))


def unmount(target: Path) -> None:
    """Detach the mount at `target` (lazily); no error if nothing is mounted there."""
    try:
        _libc.umount2(str(target), _MNT_DETACH)
    except OSError as err:
        if err.errno in (errno.EINVAL, errno.ENOENT):
            return  # not a mount point (any more)
        raise Internal(f"unmount {target} failed: {err.strerror}") from err


def _mount_from(target: str, data: str, flags: int, cwd: str) -> None:
    """mount(2) from a thread with its own cwd, so relative lowerdirs resolve against `cwd`."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            _libc.unshare(_CLONE_FS)  # this thread's cwd only; the daemon's stays put
            os.chdir(cwd)
            _mount(target, data, flags)
        except BaseException as err:  # handed to the caller's thread
            failure.append(err)

    t = threading.Thread(target=run, name="overlay-mount")
    t.start()
    t.join()
    if failure:
        raise failure[0]


def _mount(target: str, data: str, flags: int) -> None:
    try:
        _libc.mount("overlay", target, "overlay", flags, data)
    except OSError as err:
        if err.errno == errno.ENOENT:
            raise NotFound(f"mount target or layer dir missing: {target}") from err
        raise Internal(f"overlay mount on {target} failed: {err.strerror}") from err
