"""The one durable-write idiom: temp file in the same directory → fsync → rename → fsync directory.

Nothing half-written ever sits at a final path: a reader sees the old file, or the whole new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
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
