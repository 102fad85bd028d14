"""Read an image's layers through the engine: `GET /images/{name}/get`, then every layer tar in it.

`load(client, image)` spools the docker-save archive (OCI blobs plus `manifest.json`) to a temporary
file, reads the config and each layer (plain, gzip or zstd tar) entry by entry, and returns an
`ImageContents`: per-layer entries with sizes, modes and content digests, and for every entry what
happens to it above (kept, overwritten, removed) and what it did below (added, modified, deleted).
Results are cached per engine and image ID, so `layers()`, `files()` and the layer explorer read an
image once.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from workbench.errors import InvalidArgument

if TYPE_CHECKING:
    from workbench.client import Client

__all__ = ["Entry", "ImageContents", "Layer", "load", "read_archive"]

_WH = ".wh."
_OPQ = ".wh..wh..opq"
_CACHE_SIZE = 8
_cache: OrderedDict[tuple[str, str], ImageContents] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Entry:
    """One tar entry of a layer. `type`: file, dir, symlink, hardlink, whiteout, opaque, other."""

    path: str
    type: str
    size: int
    mode: int
    uid: int = 0
    gid: int = 0
    link: str = ""
    digest: str = ""


@dataclass(slots=True)
class Layer:
    index: int
    diff_id: str
    blob_digest: str
    compressed_size: int
    created: datetime | None
    created_by: str
    entries: list[Entry] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries if e.type == "file")


@dataclass(slots=True)
class ImageContents:
    image_id: str
    config: dict[str, Any]
    layers: list[Layer]
    _fates: list[dict[str, str]] = field(default_factory=list)
    _changes: list[dict[str, str]] = field(default_factory=list)
    _merged: dict[str, Entry] = field(default_factory=dict)

    def fate(self, index: int, path: str) -> str:
        """What the layers above do to `path` of layer `index`: kept, overwritten or removed."""
        return self._fates[index].get(path, "kept")

    def change(self, index: int, entry: Entry) -> str:
        """What the entry does to the layers below: added, modified, deleted or opaque."""
        if entry.type == "whiteout":
            return "deleted"
        if entry.type == "opaque":
            return "opaque"
        return self._changes[index].get(entry.path, "added")

    def wasted_of(self, index: int, entry: Entry) -> int:
        """Bytes of this copy that the final image cannot see (0 for a kept copy)."""
        if entry.type != "file" or self.fate(index, entry.path) == "kept":
            return 0
        return entry.size

    def merged(self) -> dict[str, Entry]:
        """The final filesystem: path → the entry that is visible in the image."""
        return self._merged


def _ancestors(path: str) -> list[str]:
    out = []
    while True:
        path = posixpath.dirname(path)
        if path in ("/", ""):
            return out
        out.append(path)


def _remove_subtree(fs: dict[str, Entry], root: str, keep_root: bool) -> None:
    prefix = root.rstrip("/") + "/"
    for p in [p for p in fs if p.startswith(prefix)]:
        del fs[p]
    if not keep_root:
        fs.pop(root, None)


def analyse(contents: ImageContents) -> ImageContents:
    """Fill in fates (top-down) and changes plus the merged filesystem (bottom-up)."""
    exact: dict[str, str] = {}       # path → "dir" | "entry" | "whiteout", from the nearest layer above
    blocked: dict[str, str] = {}     # dir → "removed" | "overwritten": its subtree is hidden above
    fates: list[dict[str, str]] = [{} for _ in contents.layers]
    for layer in reversed(contents.layers):
        here = fates[layer.index]
        for e in layer.entries:
            if e.type in ("whiteout", "opaque"):
                continue
            kind = exact.get(e.path)
            if kind == "dir" and e.type == "dir":
                kind = None  # a directory listed again above merges with this one
            fate = "removed" if kind == "whiteout" else "overwritten" if kind else "kept"
            if fate == "kept":
                for anc in _ancestors(e.path):
                    if anc in blocked:
                        fate = blocked[anc]
                        break
            if fate != "kept":
                here[e.path] = fate
        for e in layer.entries:
            if e.type == "whiteout":
                exact[e.path] = "whiteout"
                blocked[e.path] = "removed"
            elif e.type == "opaque":
                blocked[e.path] = "removed"
            else:
                exact[e.path] = "dir" if e.type == "dir" else "entry"
                if e.type != "dir":
                    blocked[e.path] = "overwritten"
    fs: dict[str, Entry] = {}
    changes: list[dict[str, str]] = []
    for layer in contents.layers:
        here: dict[str, str] = {}
        for e in layer.entries:
            if e.type == "whiteout":
                _remove_subtree(fs, e.path, keep_root=False)
            elif e.type == "opaque":
                _remove_subtree(fs, e.path, keep_root=True)
        for e in layer.entries:
            if e.type in ("whiteout", "opaque"):
                continue
            if e.path in fs:
                here[e.path] = "modified"
            if e.type != "dir":
                _remove_subtree(fs, e.path, keep_root=True)
            fs[e.path] = e
        changes.append(here)
    contents._fates, contents._changes, contents._merged = fates, changes, fs
    return contents


# -- reading ----------------------------------------------------------------------------------------
def _norm(name: str) -> str:
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    name = posixpath.normpath("/" + name) if name not in ("", ".") else "/"
    return name


def _entries(tar: tarfile.TarFile) -> list[Entry]:
    out: list[Entry] = []
    for m in tar:
        path = _norm(m.name)
        if path == "/":
            continue
        base = posixpath.basename(path)
        if base == _OPQ:
            out.append(Entry(posixpath.dirname(path), "opaque", 0, 0))
            continue
        if base.startswith(_WH):
            if base.startswith(_WH + _WH):
                continue
            out.append(Entry(posixpath.join(posixpath.dirname(path), base[len(_WH):]), "whiteout", 0, 0))
            continue
        digest, size, kind, link = "", 0, "other", ""
        if m.isreg():
            kind, size = "file", m.size
            h = hashlib.sha256()
            f = tar.extractfile(m)
            if f is not None:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            digest = "sha256:" + h.hexdigest()
        elif m.isdir():
            kind = "dir"
        elif m.issym():
            kind, link = "symlink", m.linkname
        elif m.islnk():
            kind, link = "hardlink", _norm(m.linkname)
        out.append(Entry(path, kind, size, m.mode, m.uid, m.gid, link, digest))
    return out


def _open_layer(f: IO[bytes]) -> tarfile.TarFile:
    head = f.read(4)
    f.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return tarfile.open(fileobj=f, mode="r|gz")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        return tarfile.open(fileobj=zstandard.ZstdDecompressor().stream_reader(f), mode="r|")
    return tarfile.open(fileobj=f, mode="r|")


def _member_json(tar: tarfile.TarFile, name: str) -> Any:
    try:
        f = tar.extractfile(name.lstrip("./"))
    except KeyError:
        return None
    return json.loads(f.read()) if f is not None else None


def _layout(tar: tarfile.TarFile) -> tuple[str, list[str]]:
    """(config path, layer paths) from docker's manifest.json, else from the OCI index."""
    manifest = _member_json(tar, "manifest.json")
    if manifest:
        return manifest[0]["Config"], list(manifest[0]["Layers"])
    index = _member_json(tar, "index.json")
    if not index or not index.get("manifests"):
        raise InvalidArgument("the image archive has neither manifest.json nor index.json")
    desc = index["manifests"][0]
    man = _member_json(tar, "blobs/" + desc["digest"].replace(":", "/"))
    while man and man.get("manifests"):  # an index inside: take the first manifest
        man = _member_json(tar, "blobs/" + man["manifests"][0]["digest"].replace(":", "/"))
    if not man:
        raise InvalidArgument("the image archive's index points at a missing manifest")
    return ("blobs/" + man["config"]["digest"].replace(":", "/"),
            ["blobs/" + ld["digest"].replace(":", "/") for ld in man["layers"]])


def _created(value: Any) -> datetime | None:
    from workbench.client._records import parse_time

    t = parse_time(value)
    return None if t.year <= 1 else t.astimezone(UTC)


def read_archive(path: str, image_id: str = "") -> ImageContents:
    """Read a docker-save / OCI archive at `path` (the first image in it)."""
    with tarfile.open(path, "r:") as tar:
        config_path, layer_paths = _layout(tar)
        config = _member_json(tar, config_path) or {}
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        history = [h for h in config.get("history") or [] if not h.get("empty_layer")]
        layers: list[Layer] = []
        for i, lp in enumerate(layer_paths):
            member = tar.getmember(lp.lstrip("./"))
            h = history[i] if i < len(history) else {}
            layer = Layer(i, diff_ids[i] if i < len(diff_ids) else "", "sha256:" + posixpath.basename(lp)
                          if lp.startswith("blobs/") else lp, member.size, _created(h.get("created")),
                          h.get("created_by", ""))
            f = tar.extractfile(member)
            if f is None:
                raise InvalidArgument(f"layer {lp} is not a file in the archive")
            with _open_layer(f) as layer_tar:
                layer.entries = _entries(layer_tar)
            layers.append(layer)
    return analyse(ImageContents(image_id or "sha256:" + hashlib.sha256(
        json.dumps(config, sort_keys=True).encode()).hexdigest(), config, layers))


def load(client: Client, image: str) -> ImageContents:
    """The contents of `image` in the engine `client` talks to (cached per image ID)."""
    image_id = client.images.inspect(image).id
    key = (client.host.url, image_id)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    with tempfile.NamedTemporaryFile(prefix="wb-save-", suffix=".tar") as tmp:
        with client.images.save(image_id) as stream:
            stream.copy_to(tmp)
        tmp.flush()
        contents = read_archive(tmp.name, image_id)
    with _lock:
        _cache[key] = contents
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return contents
