"""What an overlay upper dir changes over its lowers: `docker diff`."""

from __future__ import annotations

import enum
import os
import posixpath
import stat
from typing import NamedTuple

from workbench.engine.store.layers.apply import OPAQUE_XATTR
from workbench.engine.store.layers.tarwrite import _children, _is_whiteout, _xattrs

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
