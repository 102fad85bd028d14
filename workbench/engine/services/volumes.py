"""VolumeService: Docker's named volumes with the `local` driver.

A volume is a directory `<volumes_dir>/<name>/_data` plus a row `volumes(name, doc)`. Containers
get it bind-mounted (`mount_source`); on first use an empty volume receives a copy of what the
image has at the mount path, as Docker does. `DriverOpts` type/device/o (e.g. `type=tmpfs`) are
mounted on `_data` at first use, as the local driver does. A volume some container references
cannot be removed (409); the container service says which ones through `in_use(name)`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from workbench.errors import Conflict, Internal, InvalidArgument, NotFound

__all__ = ["VolumeMount", "VolumeService"]

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_FILTERS = {"name", "label", "label!", "dangling", "driver"}
_TRUE = {"1", "true", "True"}


class VolumeMount(NamedTuple):
    """What `mount_source` returns: the host directory to bind and the volume's name."""

    path: Path
    name: str


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class VolumeService:
    def __init__(self, md: Any, volumes_dir: Path, *,
                 in_use: Callable[[str], list[str]] | None = None) -> None:
        """`volumes_dir` holds the volumes (Mountpoint = volumes_dir/<name>/_data); `in_use(name)`
        lists the IDs of containers referencing a volume (default: none)."""
        self.md = md
        self.dir = Path(volumes_dir)
        self.in_use = in_use or (lambda name: [])
        self._lock = threading.RLock()

    # Records ------------------------------------------------------------------------------------
    def _get(self, name: str) -> dict[str, Any]:
        row = self.md.one("SELECT doc FROM volumes WHERE name=?", (name,))
        if row is None:
            raise NotFound(f"get {name}: no such volume")
        return json.loads(row["doc"])

    def _all(self) -> list[dict[str, Any]]:
        return [json.loads(r["doc"]) for r in self.md.query("SELECT doc FROM volumes ORDER BY name")]

    @staticmethod
    def _public(doc: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if not k.startswith("_")}

    def data_dir(self, name: str) -> Path:
        return self.dir / name / "_data"

    # API ----------------------------------------------------------------------------------------
    def create(self, name: str | None = None, *, driver: str = "local", labels: Mapping[str, str] | None = None,
               driver_opts: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Create a volume (a random 64-hex name when none is given); an existing one is returned."""
        return self._public(self._create(name, driver or "local", labels, driver_opts))

    def _create(self, name: str | None, driver: str, labels: Mapping[str, str] | None,
                driver_opts: Mapping[str, str] | None, anonymous: bool = False) -> dict[str, Any]:
        if driver != "local":
            raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        name = name or secrets.token_hex(32)
        if not _NAME.match(name):
            raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume name, '
                                  f'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                                  f'directory, use absolute path')
        opts = dict(driver_opts or {})
        unknown = set(opts) - {"type", "device", "o", "size"}
        if unknown:
            raise InvalidArgument(f"invalid option key: {sorted(unknown)[0]!r}")
        with self._lock:
            row = self.md.one("SELECT doc FROM volumes WHERE name=?", (name,))
            if row is not None:
                return json.loads(row["doc"])
            doc = {"CreatedAt": _now(), "Driver": "local", "Labels": dict(labels or {}),
                   "Mountpoint": str(self.data_dir(name)), "Name": name, "Options": opts or None,
                   "Scope": "local", "_Anonymous": anonymous}
            try:
                self.data_dir(name).mkdir(parents=True, exist_ok=True)
                with self.md.transaction() as tx:
                    tx.execute("INSERT INTO volumes(name, doc) VALUES (?, ?)", (name, json.dumps(doc)))
            except OSError as err:
                raise Internal(f"create {name}: {err.strerror}") from err
            return doc

    def inspect(self, name: str) -> dict[str, Any]:
        return self._public(self._get(name))

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
        """GET /volumes → {"Volumes": [...], "Warnings": None}; filters name, label, dangling, driver."""
        f = {k: list(v) for k, v in (filters or {}).items()}
        for key in f:
            if key not in _FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        out = [self._public(d) for d in self._all() if self._matches(d, f)]
        return {"Volumes": out, "Warnings": None}

    def _matches(self, d: Mapping[str, Any], f: Mapping[str, Sequence[str]]) -> bool:
        if f.get("name") and not any(_search(v, d["Name"]) for v in f["name"]):
            return False
        if f.get("driver") and d["Driver"] not in f["driver"]:
            return False
        if f.get("label") and not _labels(d.get("Labels") or {}, f["label"]):
            return False
        if f.get("label!") and _labels(d.get("Labels") or {}, f["label!"], any_of=True):
            return False
        if f.get("dangling"):
            want = f["dangling"][0] in _TRUE
            if want == bool(self.in_use(d["Name"])):
                return False
        return True

    def remove(self, name: str, *, force: bool = False) -> None:
        """DELETE /volumes/{name}: 409 when a container uses it; `force` ignores a missing volume."""
        with self._lock:
            try:
                doc = self._get(name)
            except NotFound:
                if force:
                    return
                raise
            users = self.in_use(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self._delete(doc)

    def _delete(self, doc: Mapping[str, Any]) -> int:
        name = doc["Name"]
        data = self.data_dir(name)
        size = _du(data)
        _unmount(data)
        with self.md.transaction() as tx:
            tx.execute("DELETE FROM volumes WHERE name=?", (name,))
        shutil.rmtree(self.dir / name, ignore_errors=True)
        return size

    def prune(self, filters: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
        """Remove every volume no container uses (API 1.41 semantics) → VolumesDeleted, SpaceReclaimed."""
        f = {k: list(v) for k, v in (filters or {}).items()}
        for key in f:
            if key not in ("label", "label!"):
                raise InvalidArgument(f"invalid filter '{key}'")
        deleted, reclaimed = [], 0
        with self._lock:
            for d in self._all():
                if self.in_use(d["Name"]) or not self._matches(d, f):
                    continue
                reclaimed += self._delete(d)
                deleted.append(d["Name"])
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def df_entries(self) -> list[dict[str, Any]]:
        """Volumes for /system/df, with UsageData."""
        out = []
        for d in self._all():
            v = self._public(d)
            v["UsageData"] = {"Size": _du(self.data_dir(d["Name"])), "RefCount": len(self.in_use(d["Name"]))}
            out.append(v)
        return out

    # Containers ---------------------------------------------------------------------------------
    def mount_source(self, name: str | None, image_path: Path | None = None) -> VolumeMount:
        """The host directory to bind-mount for volume `name` (created on first use; None = a new
        anonymous volume). When the volume is empty and `image_path` (the image's content at the
        mount point) has files, they are copied up first, keeping owners, modes and links."""
        with self._lock:
            doc = self._create(name, "local", None, None, anonymous=name is None)
            data = self.data_dir(doc["Name"])
            data.mkdir(parents=True, exist_ok=True)
            _mount_opts(data, doc.get("Options") or {})
            if image_path is not None and image_path.is_dir() and not any(data.iterdir()):
                _copy_up(image_path, data)
            return VolumeMount(data, doc["Name"])


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return pattern in text


def _labels(labels: Mapping[str, str], wanted: Sequence[str], any_of: bool = False) -> bool:
    def one(w: str) -> bool:
        k, eq, v = w.partition("=")
        return k in labels and (not eq or labels[k] == v)
    return any(one(w) for w in wanted) if any_of else all(one(w) for w in wanted)


def _du(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for n in filenames + dirnames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
    return total


def _copy_up(src: Path, dst: Path) -> None:
    st = os.stat(src)
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, st.st_mode & 0o7777)
    if not any(src.iterdir()):
        return
    proc = subprocess.run(["cp", "-a", "--", f"{src}/.", f"{dst}/"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise Internal(f"failed to copy image content at {src} into the volume: {proc.stderr.strip()}")


_MS = {"ro": 1, "nosuid": 2, "nodev": 4, "noexec": 8, "bind": 4096, "rbind": 4096 | 16384}


def _mount_opts(data: Path, opts: Mapping[str, str]) -> None:
    """Mount DriverOpts type/device/o on `_data` unless already mounted (the local driver's options)."""
    kind = opts.get("type")
    if not kind or os.path.ismount(data):
        return
    flags, rest = 0, []
    for o in (opts.get("o") or "").split(","):
        if o in _MS:
            flags |= _MS[o]
        elif o:
            rest.append(o)
    if opts.get("size") and kind == "tmpfs":
        rest.append(f"size={opts['size']}")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    rc = libc.mount((opts.get("device") or kind).encode(), str(data).encode(), kind.encode(), flags,
                    ",".join(rest).encode() if rest else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise Internal(f"error while mounting volume '{data}': failed to mount local volume: "
                       f"mount {opts.get('device') or kind}:{data}: {os.strerror(err)}")


def _unmount(data: Path) -> None:
    if os.path.ismount(data):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.umount2(str(data).encode(), 2)
