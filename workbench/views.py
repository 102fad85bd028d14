"""Engine state as pandas DataFrames with real dtypes, usable with or without the `%docker` magics.

    from workbench import views
    views.images()                       # one row per tag: repository, tag, image_id, created, size
    views.containers()                   # id, name, image, command, created, state, status, addresses, ports
    views.history("app:1")               # docker history, newest first
    views.layers("app:1")                # one row per layer: digest, size, created_by, files, wasted
    views.files("app:1")                 # one row per file per layer, with dive's wasted bytes
    views.diff("app:1", "app:2")         # added / removed / changed files between two images

Sizes are int64 bytes and times tz-aware datetimes; `df.attrs["workbench"]` names the byte columns so
the notebook extension shows them human-readable without changing the data. Layer contents come from
`GET /images/{name}/get` (a docker-save tar with OCI blobs), read once per image ID and cached.

Wasted bytes follow dive's meaning with its double count fixed (wagoodman/dive#684): a file copy is
wasted when a later layer overwrites or deletes it, so the total is "every copy minus the kept one".
"""

from __future__ import annotations

import stat as _stat
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from workbench.kernel_ext import layerfs as _layerfs

if TYPE_CHECKING:
    import pandas as pd

    from workbench.client import Client

__all__ = ["containers", "containers_frame", "diff", "disk_usage_frame", "efficiency", "files", "history",
           "history_frame", "images", "images_frame", "layers", "networks_frame", "records_frame",
           "registry_frame", "changes_frame", "top_frame", "volumes_frame"]

_TYPE_BITS = {"file": _stat.S_IFREG, "hardlink": _stat.S_IFREG, "dir": _stat.S_IFDIR, "symlink": _stat.S_IFLNK,
              "other": 0}


def _client(client: Client | None) -> Client:
    if client is not None:
        return client
    from workbench.kernel_ext.session import current_client

    return current_client()


def _frame(rows: dict[str, list[Any]], *, kind: str, sizes: Sequence[str] = (), times: Sequence[str] = (),
           ints: Sequence[str] = (), bools: Sequence[str] = ()) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame(rows)
    for col in sizes:
        df[col] = df[col].astype("Int64" if df[col].isna().any() else "int64")
    for col in ints:
        df[col] = df[col].astype("int64")
    for col in bools:
        df[col] = df[col].astype("bool")
    for col in times:
        df[col] = pd.to_datetime(df[col], utc=True)
    df.attrs["workbench"] = {"kind": kind, "bytes": list(sizes)}
    return df


# -- listings ----------------------------------------------------------------------------------------
def images_frame(records: Iterable[Any], *, digests: bool = False) -> pd.DataFrame:
    """`ImageSummary` records → one row per tag (untagged images as `<none>`), as `docker images`."""
    repo: list[str] = []
    tag: list[str] = []
    ids: list[str] = []
    created: list[Any] = []
    size: list[int] = []
    digest: list[str] = []
    for rec in records:
        names = rec.tags or ("<none>:<none>",)
        for name in names:
            r, _, t = name.rpartition(":")
            if "/" in t or not r:
                r, t = name, "<none>"
            repo.append(r)
            tag.append(t)
            ids.append(rec.short_id)
            created.append(rec.created)
            size.append(rec.size)
            digest.append(next((d.partition("@")[2] for d in rec.repo_digests
                                if d.partition("@")[0] == r), "<none>"))
    rows: dict[str, list[Any]] = {"repository": repo, "tag": tag}
    if digests:
        rows["digest"] = digest
    rows.update({"image_id": ids, "created": created, "size": size})
    return _frame(rows, kind="images", sizes=["size"], times=["created"])


def images(client: Client | None = None, *, all: bool = False, name: str | None = None) -> pd.DataFrame:
    """Local images, one row per tag."""
    return images_frame(_client(client).images.list(all=all, name=name))


def containers_frame(records: Iterable[Any], *, size: bool = False) -> pd.DataFrame:
    """`ContainerSummary` records → the columns of `docker ps`."""
    rows: dict[str, list[Any]] = {k: [] for k in ("container_id", "name", "image", "command", "created",
                                                  "state", "status", "addresses", "ports")}
    sizes: list[Any] = []
    for c in records:
        rows["container_id"].append(c.short_id)
        rows["name"].append(c.name)
        rows["image"].append(c.image)
        rows["command"].append(c.command)
        rows["created"].append(c.created)
        rows["state"].append(c.state)
        rows["status"].append(c.status)
        nets = (c.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        rows["addresses"].append(", ".join(f"{n} {e['IPAddress']}" for n, e in nets.items() if e.get("IPAddress")))
        rows["ports"].append(", ".join(str(p) for p in c.ports))
        sizes.append(c.size_rw)
    if size:
        rows["size"] = sizes
    return _frame(rows, kind="containers", sizes=["size"] if size else [], times=["created"])


def containers(client: Client | None = None, *, all: bool = True) -> pd.DataFrame:
    """Containers (all of them unless `all=False`), as `docker ps -a`."""
    return containers_frame(_client(client).containers.list(all=all))


def history_frame(entries: Iterable[Any]) -> pd.DataFrame:
    rows: dict[str, list[Any]] = {k: [] for k in ("image_id", "created", "created_by", "size", "comment")}
    for e in entries:
        rows["image_id"].append(e.id.removeprefix("sha256:")[:12] if e.id and e.id != "<missing>"
                                else "<missing>")
        rows["created"].append(e.created)
        rows["created_by"].append(e.created_by)
        rows["size"].append(e.size)
        rows["comment"].append(e.comment)
    return _frame(rows, kind="history", sizes=["size"], times=["created"])


def history(image: str, client: Client | None = None) -> pd.DataFrame:
    """`docker history IMAGE`, newest first."""
    return history_frame(_client(client).images.history(image))


def networks_frame(records: Iterable[Any]) -> pd.DataFrame:
    rows: dict[str, list[Any]] = {k: [] for k in ("network_id", "name", "driver", "scope", "created",
                                                  "internal")}
    for n in records:
        rows["network_id"].append(n.id[:12])
        rows["name"].append(n.name)
        rows["driver"].append(n.driver)
        rows["scope"].append(n.scope)
        rows["created"].append(n.created)
        rows["internal"].append(bool(n.internal))
    return _frame(rows, kind="networks", times=["created"], bools=["internal"])


def volumes_frame(records: Iterable[Any]) -> pd.DataFrame:
    rows: dict[str, list[Any]] = {k: [] for k in ("driver", "name", "mountpoint", "created")}
    for v in records:
        rows["driver"].append(v.driver)
        rows["name"].append(v.name)
        rows["mountpoint"].append(v.mountpoint)
        rows["created"].append(v.created)
    return _frame(rows, kind="volumes", times=["created"])


def registry_frame(location: str, names: Sequence[str]) -> pd.DataFrame:
    """`registry ls REGISTRY` (repositories) or `REGISTRY/REPO` (tags) as a frame."""
    registry, _, repository = location.partition("/")
    if repository:
        return _frame({"registry": [registry] * len(names), "repository": [repository] * len(names),
                       "tag": list(names)}, kind="registry-tags")
    return _frame({"registry": [registry] * len(names), "repository": list(names)}, kind="registry")


def top_frame(processes: Any) -> pd.DataFrame:
    titles = [t.lower() for t in processes.titles]
    return _frame({t: [p[i] if i < len(p) else "" for p in processes.processes] for i, t in enumerate(titles)},
                  kind="top")


def changes_frame(changes: Iterable[Any]) -> pd.DataFrame:
    items = list(changes)
    return _frame({"kind": [c.kind.letter for c in items], "path": [c.path for c in items]}, kind="changes")


def disk_usage_frame(df: Any) -> pd.DataFrame:
    """`system df`: one row per kind with total, active, size and reclaimable bytes."""
    img_active = sum(1 for i in df.images if i.containers > 0)
    img_size = df.layers_size or sum(i.size for i in df.images)
    img_reclaim = sum(i.size for i in df.images if i.containers <= 0)
    ctr_size = sum(c.size_rw or 0 for c in df.containers)
    ctr_active = sum(1 for c in df.containers if c.state == "running")
    ctr_reclaim = sum(c.size_rw or 0 for c in df.containers if c.state != "running")
    vols = list(df.volumes)
    vol_size = sum(max(0, int((v.get("UsageData") or {}).get("Size") or 0)) for v in vols)
    vol_active = sum(1 for v in vols if int((v.get("UsageData") or {}).get("RefCount") or 0) > 0)
    vol_reclaim = sum(max(0, int((v.get("UsageData") or {}).get("Size") or 0)) for v in vols
                      if int((v.get("UsageData") or {}).get("RefCount") or 0) == 0)
    cache = list(df.build_cache)
    cache_size = sum(int(c.get("Size") or 0) for c in cache)
    return _frame({"type": ["Images", "Containers", "Local Volumes", "Build Cache"],
                   "total": [len(df.images), len(df.containers), len(vols), len(cache)],
                   "active": [img_active, ctr_active, vol_active, sum(1 for c in cache if c.get("InUse"))],
                   "size": [img_size, ctr_size, vol_size, cache_size],
                   "reclaimable": [img_reclaim, ctr_reclaim, vol_reclaim, cache_size]},
                  kind="df", sizes=["size", "reclaimable"], ints=["total", "active"])


def records_frame(records: Sequence[Any]) -> pd.DataFrame:
    """Any list of dataclass records (fields become columns, `attrs` left out)."""
    import dataclasses

    import pandas as pd

    rows = [{f.name: getattr(r, f.name) for f in dataclasses.fields(r) if f.name != "attrs"} for r in records]
    return pd.DataFrame(rows)


# -- layers and files ---------------------------------------------------------------------------------
def _image(image: str, client: Client | None) -> _layerfs.ImageContents:
    return _layerfs.load(_client(client), image)


def layers(image: str, client: Client | None = None) -> pd.DataFrame:
    """One row per layer, bottom first: index, digest (diff ID), blob, created, created_by, size
    (bytes of file content in the layer), files (entries that are not directories), wasted."""
    contents = _image(image, client)
    rows: dict[str, list[Any]] = {k: [] for k in ("layer", "digest", "blob", "created", "created_by", "size",
                                                  "compressed_size", "files", "wasted")}
    for layer in contents.layers:
        rows["layer"].append(layer.index)
        rows["digest"].append(layer.diff_id)
        rows["blob"].append(layer.blob_digest)
        rows["created"].append(layer.created)
        rows["created_by"].append(layer.created_by)
        rows["size"].append(layer.size)
        rows["compressed_size"].append(layer.compressed_size)
        rows["files"].append(sum(1 for e in layer.entries if e.type != "dir"))
        rows["wasted"].append(sum(contents.wasted_of(layer.index, e) for e in layer.entries))
    return _frame(rows, kind="layers", sizes=["size", "compressed_size", "wasted"], times=["created"],
                  ints=["layer", "files"])


def files(image: str, client: Client | None = None, *, layer: int | None = None) -> pd.DataFrame:
    """One row per file per layer: path, layer, size, mode, type, change (added/modified/deleted/opaque),
    and whether a later layer overwrites or removes it; `wasted` holds the bytes that copy wastes."""
    contents = _image(image, client)
    cols = ("layer", "path", "type", "change", "size", "mode", "uid", "gid", "overwritten", "removed", "wasted")
    rows: dict[str, list[Any]] = {k: [] for k in cols}
    for lay in contents.layers:
        if layer is not None and lay.index != layer:
            continue
        for e in lay.entries:
            fate = contents.fate(lay.index, e.path)
            rows["layer"].append(lay.index)
            rows["path"].append(e.path)
            rows["type"].append(e.type)
            rows["change"].append(contents.change(lay.index, e))
            rows["size"].append(e.size)
            rows["mode"].append(_stat.filemode(e.mode | _TYPE_BITS.get(e.type, 0)) if e.type in _TYPE_BITS else "")
            rows["uid"].append(e.uid)
            rows["gid"].append(e.gid)
            rows["overwritten"].append(fate == "overwritten")
            rows["removed"].append(fate == "removed")
            rows["wasted"].append(contents.wasted_of(lay.index, e))
    return _frame(rows, kind="files", sizes=["size", "wasted"], ints=["layer", "uid", "gid"],
                  bools=["overwritten", "removed"])


def efficiency(image: str, client: Client | None = None) -> dict[str, Any]:
    """dive's summary: total content bytes, wasted bytes, efficiency score (0..1) and the worst paths."""
    contents = _image(image, client)
    total = sum(layer.size for layer in contents.layers)
    per_path: dict[str, list[int]] = {}
    wasted = 0
    for layer in contents.layers:
        for e in layer.entries:
            w = contents.wasted_of(layer.index, e)
            if w:
                wasted += w
                per_path.setdefault(e.path, []).append(w)
    worst = sorted(per_path.items(), key=lambda kv: -sum(kv[1]))[:10]
    return {"image": image, "id": contents.image_id, "layers": len(contents.layers), "size": total,
            "wasted": wasted, "efficiency": 1.0 if total == 0 else (total - wasted) / total,
            "inefficient_files": [(p, len(ws), sum(ws)) for p, ws in worst]}


def diff(image_a: str, image_b: str, client: Client | None = None) -> pd.DataFrame:
    """Files added, removed and changed (type, size, mode, owner, content or link) from A to B."""
    a = _image(image_a, client).merged()
    b = _image(image_b, client).merged()
    cols = ("path", "change", "type", "size_a", "size_b", "delta")
    rows: dict[str, list[Any]] = {k: [] for k in cols}
    for path in sorted(set(a) | set(b)):
        ea, eb = a.get(path), b.get(path)
        if ea is not None and eb is not None:
            if _same(ea, eb):
                continue
            change = "changed"
        else:
            change = "added" if ea is None else "removed"
        rows["path"].append(path)
        rows["change"].append(change)
        rows["type"].append((eb or ea).type)  # type: ignore[union-attr]
        rows["size_a"].append(ea.size if ea is not None else None)
        rows["size_b"].append(eb.size if eb is not None else None)
        rows["delta"].append((eb.size if eb is not None else 0) - (ea.size if ea is not None else 0))
    df = _frame(rows, kind="diff", sizes=["size_a", "size_b"], ints=["delta"])
    df.attrs["workbench"]["bytes"].append("delta")
    return df


def _same(a: _layerfs.Entry, b: _layerfs.Entry) -> bool:
    if a.type != b.type or a.mode != b.mode or a.uid != b.uid or a.gid != b.gid or a.link != b.link:
        return False
    return a.type == "dir" or (a.size == b.size and a.digest == b.digest)
