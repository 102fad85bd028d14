"""The one durable-write idiom: temp file in the same directory → fsync → rename → fsync directory.

Nothing half-written ever sits at a final path: a reader sees the old file, or the whole new one.
"""

from __future__ import annotations

import ctypes
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs(path: Path | str) -> None:
    """Flush the whole filesystem holding `path` (syncfs(2)): one call for a tree of new files."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


_SYNC_FILE_RANGE_WRITE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_libc.sync_file_range.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)


class Writeback:
    """Start writing a big file's data to disk while it is still being written.

    The kernel leaves new data in the page cache until gigabytes are dirty, so the fsync or
    syncfs that makes a blob or layer durable would wait for all of it at once, after the CPU
    work is over. Every `STEP` bytes this asks for writeback of what came before
    (sync_file_range(2) with SYNC_FILE_RANGE_WRITE: asynchronous, no metadata), so the disk works
    alongside the hashing and decompressing and the final flush only waits for the tail.
    """

    STEP = 2 << 20

    def __init__(self, fd: int) -> None:
        self.fd, self.written, self._started = fd, 0, 0

    def wrote(self, n: int) -> None:
        self.written += n
        if self.written - self._started >= self.STEP:
            # best effort: a failure here only means the final flush does all the work
            _libc.sync_file_range(self.fd, self._started, self.written - self._started, _SYNC_FILE_RANGE_WRITE)
            self._started = self.written


def write_synced(path: Path | str, text: str, *, sync: bool = True) -> None:
    """Write a small new file in place (no rename: for files inside a directory not yet visible)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path | str, data: bytes, *, mode: int = 0o644, sync: bool = True) -> None:
    """Write `data` to `path` atomically (and durably when `sync`)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-" + path.name[:40])
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise
    if sync:
        fsync_dir(path.parent)


def atomic_write_json(path: Path | str, obj: Any, *, sync: bool = True) -> None:
    atomic_write(path, json.dumps(obj, separators=(",", ":")).encode(), sync=sync)


def read_json(path: Path | str, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        return default


def commit_file(tmp: Path | str, final: Path | str, *, mode: int = 0o444) -> None:
    """fsync an already-written temp file and move it into place (same filesystem)."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, final)
    fsync_dir(Path(final).parent)


def _unlink_quiet(p: str | Path) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass
