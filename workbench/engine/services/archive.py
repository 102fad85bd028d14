"""Files in and out of containers: `docker diff`, `docker export`, `docker cp` (archive endpoints).

A stopped container's rootfs is mounted for the duration of the call and released afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from workbench.engine.services.mounts import RUNTIME_PATHS
from workbench.engine.store.layers import ChangeKind, apply_layer, changes, dir_to_tar
from workbench.engine.store.paths import secure_join
from workbench.errors import InvalidArgument, NotFound

_GO_DIR, _GO_SYMLINK = 1 << 31, 1 << 27
# what the runtime puts in every container, which dockerd keeps in the container's init layer
# (with /etc/mtab and /.dockerenv), so `docker diff` never lists them
_RUNTIME_PATHS = frozenset({"/" + p for p in RUNTIME_PATHS} | {"/etc/mtab", "/.dockerenv"})
_RUNTIME_PARENTS = frozenset({"/etc"})


class ArchiveService:
    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.svc = runner.svc

    @contextlib.contextmanager
    def rootfs(self, ref: str) -> Iterator[Path]:
        doc = self.svc.get(ref)
        cdir = self.svc.path(doc["Id"])
        rootfs = cdir / "rootfs"
        if os.path.ismount(rootfs):
            yield rootfs
            return
        rec = self.svc.images.get(doc["Image"])
        chain = self.runner.layers.unpack(self.svc.images.diff_ids(rec)) or None
        for d in ("rootfs", "upper", "work"):
            (cdir / d).mkdir(exist_ok=True)
        self.runner.snapshots.mount(rootfs, cdir / "upper", cdir / "work", chain)
        try:
            yield rootfs
        finally:
            with contextlib.suppress(OSError):
                self.runner.snapshots.unmount(rootfs)

    def changes(self, ref: str) -> list[dict[str, Any]]:
        doc = self.svc.get(ref)
        rec = self.svc.images.get(doc["Image"])
        chain = self.svc.images.chain_id(rec)
        lowers = self.runner.snapshots.lowerdirs(chain) if chain else []
        upper = self.svc.path(doc["Id"]) / "upper"
        if not upper.exists():
            return []
        found = [c for c in changes(upper, lowers) if c.path not in _RUNTIME_PATHS]
        # /etc made or touched only to hold the runtime's files is dockerd's init layer, below the
        # container's own: not a change either, unless something else in it changed
        shown = [c for c in found if not (c.path in _RUNTIME_PARENTS and c.kind != ChangeKind.DELETED and
                                          not any(o.path.startswith(c.path + "/") for o in found))]
        return [{"Path": c.path, "Kind": int(c.kind)} for c in shown]

    def export(self, ref: str, out: BinaryIO) -> None:
        with self.rootfs(ref) as root:
            dir_to_tar(root, out)

    def stat(self, ref: str, path: str) -> dict[str, Any]:
        with self.rootfs(ref) as root:
            return _stat(root, path, ref)

    def get(self, ref: str, path: str, out: BinaryIO) -> None:
        with self.rootfs(ref) as root:
            target = _existing(root, path, ref)
            name = os.path.basename(path.rstrip("/")) or "/"
            if target.is_dir() and not target.is_symlink():
                dir_to_tar(target, out, prefix=name if name != "/" else "")
            else:
                with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    info = tar.gettarinfo(str(target), arcname=name)
                    if info.isreg():
                        with open(target, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)

    def put(self, ref: str, path: str, body: BinaryIO, *, no_overwrite_dir_non_dir: bool = False) -> None:
        with self.rootfs(ref) as root:
            target = secure_join(root, path)
            if not target.exists():
                raise NotFound(f"Could not find the file {path} in container {ref}")
            if not target.is_dir():
                raise InvalidArgument(f"extraction point is not a directory: {path}")
            apply_layer(body, target, mode="flatten", allow_devices=False)


def stat_header(st: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(st).encode()).decode()


def _existing(root: Path, path: str, ref: str) -> Path:
    target = secure_join(root, path)
    if not os.path.lexists(target):
        raise NotFound(f"Could not find the file {path} in container {ref}")
    return target


def _stat(root: Path, path: str, ref: str) -> dict[str, Any]:
    parent = secure_join(root, os.path.dirname(path.rstrip("/")) or "/")
    leaf = parent / os.path.basename(path.rstrip("/")) if path.rstrip("/") else root
    if not os.path.lexists(leaf):
        raise NotFound(f"Could not find the file {path} in container {ref}")
    st = os.lstat(leaf)
    mode = stat.S_IMODE(st.st_mode)
    link = ""
    if stat.S_ISDIR(st.st_mode):
        mode |= _GO_DIR
    elif stat.S_ISLNK(st.st_mode):
        mode |= _GO_SYMLINK
        link = os.readlink(leaf)
    from workbench.engine.services.images import rfc3339
    return {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size, "mode": mode,
            "mtime": rfc3339(st.st_mtime), "linkTarget": link}
