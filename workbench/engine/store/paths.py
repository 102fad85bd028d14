"""Resolve paths inside a root without ever leaving it (securejoin semantics)."""

from __future__ import annotations

import os
from pathlib import Path

_MAX_LINKS = 255


def secure_join(root: Path | str, path: str) -> Path:
    """Join `path` under `root`, resolving symlinks as if `root` were `/`.

    Absolute symlinks restart at `root`; `..` never climbs above it. The result may not exist.
    """
    root = Path(root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not _is_link(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(40, "too many levels of symbolic links", str(candidate))
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return root.joinpath(*resolved)


def _is_link(mode: int) -> bool:
    import stat
    return stat.S_ISLNK(mode)


def mkdir_in(root: Path | str, path: str, mode: int = 0o755, uid: int | None = None,
             gid: int | None = None) -> Path:
    """Create `path` (and parents) inside `root`, following symlinks only within it."""
    target = secure_join(root, path)
    if not target.exists():
        target.mkdir(parents=True, mode=mode, exist_ok=True)
        if uid is not None:
            os.chown(target, uid, gid if gid is not None else uid)
    return target
