"""ImageService: the local image catalogue — resolve, list, inspect, history, tag, remove, prune.

Images are identified by their config digest (Docker's image ID). Each image has a manifest in the
content store (OCI, or Docker v2 for pulled images), its config blob, and a row in `images`; tags
and repo digests point at it. Importing, loading, saving and registering new images live in
`image_io.py`; unpacking layers into snapshots goes through `ensure_unpacked`.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from workbench.engine.services.layer_gc import LayerCollector
from workbench.engine.store.content import ContentStore
from workbench.engine.store.metadata import Metadata
from workbench.errors import Conflict, InvalidArgument, NotFound
from workbench.oci import reference
from workbench.oci.image import chain_id, chain_ids


@dataclass(frozen=True, slots=True)
class ImageRecord:
    id: str
    manifest_digest: str | None
    manifest_media_type: str | None
    config_digest: str
    created: int
    size: int
    parent: str
    added: float

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]


def _rec(row: Any) -> ImageRecord:
    return ImageRecord(row["id"], row["manifest_digest"], row["manifest_media_type"],
                       row["config_digest"], row["created"], row["size"], row["parent"], row["added"])


def rfc3339(ts: float | int | str | None) -> str:
    if isinstance(ts, str):
        return ts
    if not ts:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


def parse_time(text: str | None) -> int:
    """RFC3339(Nano) → unix seconds (0 when empty or unparsable)."""
    if not text:
        return 0
    from datetime import datetime
    t = text.strip()
    if t.startswith("0001-"):
        return 0
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    if "." in t:
        head, _, rest = t.partition(".")
        frac = "".join(c for c in rest if c.isdigit())
        tz = rest[len(frac):]
        t = f"{head}.{frac[:6]}{tz}"
    try:
        return int(datetime.fromisoformat(t).timestamp())
    except ValueError:
        return 0


class ImageService:
    def __init__(self, md: Metadata, content: ContentStore, snapshots: Any) -> None:
        self.md = md
        self.content = content
        self.snapshots = snapshots
        self.containers_using: Callable[[str], list[str]] = lambda image_id: []
        self.gc = LayerCollector(self)
        self._config = lru_cache(maxsize=512)(self._load_config)

    # Resolution -------------------------------------------------------------------------------
    def get(self, ref: str) -> ImageRecord:
        """Resolve an ID, ID prefix, `sha256:` ID, name, name:tag or name@digest; 404 otherwise."""
        rec = self.find(ref)
        if rec is None:
            raise NotFound(f"No such image: {ref}")
        return rec

    def find(self, ref: str) -> ImageRecord | None:
        if not ref:
            return None
        hexpart = ref.removeprefix("sha256:")
        if reference.looks_like_id(ref):
            row = self.md.one("SELECT * FROM images WHERE id=?", ("sha256:" + hexpart,))
            return _rec(row) if row else None
        try:
            parsed = reference.parse(ref)
        except InvalidArgument:
            parsed = None
        if parsed is not None:
            if parsed.digest:
                row = self.md.one("SELECT i.* FROM repo_digests d JOIN images i ON i.id=d.image_id "
                                  "WHERE d.name=?", (f"{parsed.familiar_name}@{parsed.digest}",))
                if row is None:
                    row = self.md.one("SELECT * FROM images WHERE manifest_digest=?", (parsed.digest,))
                if row:
                    return _rec(row)
            else:
                name = parsed.with_default_tag().familiar
                row = self.md.one("SELECT i.* FROM tags t JOIN images i ON i.id=t.image_id WHERE t.name=?",
                                  (name,))
                if row:
                    return _rec(row)
        if all(c in "0123456789abcdef" for c in hexpart) and (ref.startswith("sha256:") or parsed):
            rows = self.md.query("SELECT * FROM images WHERE id LIKE ?", ("sha256:" + hexpart + "%",))
            if len(rows) == 1:
                return _rec(rows[0])
            if len(rows) > 1:
                raise InvalidArgument(f"{ref}: ambiguous image ID prefix")
        return None

    def _load_config(self, digest: str) -> dict[str, Any]:
        return json.loads(self.content.read(digest))

    def config(self, rec: ImageRecord) -> dict[str, Any]:
        return self._config(rec.config_digest)

    def diff_ids(self, rec: ImageRecord) -> list[str]:
        return list(self.config(rec).get("rootfs", {}).get("diff_ids") or [])

    def chain_id(self, rec: ImageRecord) -> str:
        return chain_id(self.diff_ids(rec))

    def tags_of(self, image_id: str) -> list[str]:
        return [r["name"] for r in self.md.query("SELECT name FROM tags WHERE image_id=? ORDER BY name",
                                                 (image_id,))]

    def digests_of(self, image_id: str) -> list[str]:
        return [r["name"] for r in self.md.query(
            "SELECT name FROM repo_digests WHERE image_id=? ORDER BY name", (image_id,))]

    def all(self) -> list[ImageRecord]:
        return [_rec(r) for r in self.md.query("SELECT * FROM images ORDER BY created DESC, added DESC")]

    def count(self) -> int:
        return self.md.one("SELECT count(*) AS n FROM images")["n"]

    def children(self, image_id: str) -> list[str]:
        return [r["id"] for r in self.md.query("SELECT id FROM images WHERE parent=?", (image_id,))]

    # Listing ----------------------------------------------------------------------------------
    def list(self, *, all: bool = False, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        filters = filters or {}
        for key in filters:
            if key not in ("reference", "label", "dangling", "before", "since", "id"):
                raise InvalidArgument(f"invalid filter '{key}'")
        out = []
        for rec in self.all():
            tags = self.tags_of(rec.id)
            if not all and not tags and self.children(rec.id) and "dangling" not in filters:
                continue
            cfg = self.config(rec)
            labels = (cfg.get("config") or {}).get("Labels") or {}
            if not self._matches(rec, tags, labels, filters):
                continue
            if filters.get("reference"):  # as dockerd: only the tags the filter matched are shown
                tags = [t for t in tags if any(_ref_match(t, p) for p in filters["reference"])]
            out.append(self.summary(rec, tags, labels))
        return out

    def summary(self, rec: ImageRecord, tags: list[str] | None = None,
                labels: dict[str, str] | None = None) -> dict[str, Any]:
        tags = self.tags_of(rec.id) if tags is None else tags
        digests = self.digests_of(rec.id)
        if labels is None:
            labels = (self.config(rec).get("config") or {}).get("Labels") or {}
        return {"Id": rec.id, "ParentId": rec.parent, "RepoTags": tags or ["<none>:<none>"],
                "RepoDigests": digests or ([] if tags else ["<none>@<none>"]), "Created": rec.created,
                "Size": rec.size, "VirtualSize": rec.size, "SharedSize": -1, "Labels": labels or None,
                "Containers": -1}

    def _matches(self, rec: ImageRecord, tags: list[str], labels: dict[str, str],
                 filters: dict[str, list[str]]) -> bool:
        for want in filters.get("dangling", []):
            dangling = want.lower() in ("1", "true")
            if dangling != (not tags):
                return False
        refs = filters.get("reference")
        if refs and not any(_ref_match(t, pat) for pat in refs for t in tags):
            return False
        for lab in filters.get("label", []):
            k, eq, v = lab.partition("=")
            if k not in labels or (eq and labels[k] != v):
                return False
        for ident in filters.get("id", []):
            if not rec.id.removeprefix("sha256:").startswith(ident.removeprefix("sha256:")):
                return False
        for ref in filters.get("before", []):
            if rec.created >= self.get(ref).created:
                return False
        for ref in filters.get("since", []):
            if rec.created <= self.get(ref).created:
                return False
        return True

    # Inspect and history --------------------------------------------------------------------------
    def inspect(self, ref: str) -> dict[str, Any]:
        rec = self.get(ref)
        cfg = self.config(rec)
        lowers = [str(p) for p in self.snapshots.lowerdirs(self.chain_id(rec))] \
            if self.diff_ids(rec) and self.snapshots.exists(self.chain_id(rec)) else []
        return {
            "Id": rec.id, "RepoTags": self.tags_of(rec.id), "RepoDigests": self.digests_of(rec.id),
            "Parent": rec.parent, "Comment": _last_comment(cfg), "Created": rfc3339(cfg.get("created")),
            "Container": "", "ContainerConfig": {}, "DockerVersion": "", "Author": cfg.get("author", ""),
            "Config": _docker_config(cfg.get("config") or {}), "Architecture": cfg.get("architecture"),
            "Variant": cfg.get("variant"), "Os": cfg.get("os"), "Size": rec.size, "VirtualSize": rec.size,
            "GraphDriver": {"Name": "overlay2", "Data": {"LowerDir": ":".join(lowers)} if lowers else {}},
            "RootFS": {"Type": "layers", "Layers": self.diff_ids(rec)},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
            "Descriptor": {"mediaType": rec.manifest_media_type, "digest": rec.manifest_digest},
        }

    def history(self, ref: str) -> list[dict[str, Any]]:
        rec = self.get(ref)
        cfg = self.config(rec)
        diff_ids = self.diff_ids(rec)
        sizes = self._layer_sizes(diff_ids)
        hist = cfg.get("history") or [{"created": cfg.get("created"), "created_by": ""}] * len(diff_ids)
        out, li = [], 0
        for h in hist:
            size = 0
            if not h.get("empty_layer"):
                size = sizes[li] if li < len(sizes) else 0
                li += 1
            out.append({"Id": "<missing>", "Created": parse_time(h.get("created")),
                        "CreatedBy": h.get("created_by", ""), "Tags": None, "Size": size,
                        "Comment": h.get("comment", "")})
        out.reverse()
        # as dockerd: an entry that is the top of a local ancestor image shows that image's ID and tags
        ancestor: ImageRecord | None = rec
        seen: set[str] = set()
        while ancestor is not None and ancestor.id not in seen:
            seen.add(ancestor.id)
            depth = len(self.config(ancestor).get("history") or []) or 1
            pos = len(out) - depth
            if 0 <= pos < len(out):
                out[pos]["Id"] = ancestor.id
                out[pos]["Tags"] = self.tags_of(ancestor.id) or None
            ancestor = self.find(ancestor.parent) if ancestor.parent else None
        return out

    def _layer_sizes(self, diff_ids: list[str]) -> list[int]:
        sizes = []
        for d in diff_ids:
            row = self.md.one("SELECT uncompressed_size FROM layers WHERE diff_id=?", (d,))
            sizes.append(row["uncompressed_size"] if row else 0)
        return sizes

    def layer_info(self, diff_id: str) -> dict[str, Any] | None:
        row = self.md.one("SELECT * FROM layers WHERE diff_id=?", (diff_id,))
        return dict(row) if row else None

    # Tags -------------------------------------------------------------------------------------
    def tag(self, ref: str, repo: str, tag: str | None = None) -> str:
        rec = self.get(ref)
        target = reference.parse(repo if not tag else f"{repo}:{tag}")
        if target.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        name = target.with_default_tag().familiar
        with self.md.transaction() as tx:
            self._set_tag(tx, name, rec.id)
        return name

    @staticmethod
    def _set_tag(tx: Any, name: str, image_id: str) -> None:
        repo, _, tag = name.rpartition(":")
        tx.execute("INSERT OR REPLACE INTO tags(name, repo, tag, image_id) VALUES (?,?,?,?)",
                   (name, repo, tag, image_id))

    # Remove and prune -------------------------------------------------------------------------
    def remove(self, ref: str, *, force: bool = False, noprune: bool = False) -> list[dict[str, str]]:
        """`DELETE /images/{name}`: untag, or delete the image (and its untagged parents unless
        `noprune`); then the layers nothing uses any more, listed as dockerd lists them."""
        out = self._remove(ref, force=force, noprune=noprune)
        if any("Deleted" in entry for entry in out):
            out += [{"Deleted": chain} for chain in self.gc.collect().chains]
        return out

    def _remove(self, ref: str, *, force: bool = False, noprune: bool = False) -> list[dict[str, str]]:
        rec = self.get(ref)
        tags = self.tags_of(rec.id)
        by_name = self._named(ref, rec, tags)
        users = self.containers_using(rec.id)
        out: list[dict[str, str]] = []
        if by_name and (len(tags) > 1 or (len(tags) == 1 and users and force)):
            self._untag(by_name)
            return [{"Untagged": by_name}]
        if users and not force:
            shown = by_name or rec.short_id
            what = f"repository reference \"{shown}\"" if by_name else rec.short_id
            raise Conflict(f"conflict: unable to {'remove' if by_name else 'delete'} {what} (must force)"
                           f" - container {users[0][:12]} is using its referenced image {rec.short_id}")
        if not by_name and len(tags) > 1 and not force:
            raise Conflict(f"conflict: unable to delete {rec.short_id} (must be forced) - image is "
                           f"referenced in multiple repositories")
        if self.children(rec.id) and not force:
            raise Conflict(f"conflict: unable to delete {rec.short_id} (cannot be forced) - image has "
                           f"dependent child images")
        with self.md.transaction() as tx:
            for t in tags:
                tx.execute("DELETE FROM tags WHERE name=?", (t,))
                out.append({"Untagged": t})
            for d in self.digests_of(rec.id):
                tx.execute("DELETE FROM repo_digests WHERE name=?", (d,))
                out.append({"Untagged": d})
            if not users:
                tx.execute("UPDATE images SET parent='' WHERE parent=?", (rec.id,))
                tx.execute("DELETE FROM images WHERE id=?", (rec.id,))
                out.append({"Deleted": rec.id})
        if not users and not noprune and rec.parent:
            parent = self.find(rec.parent)
            if parent and not self.tags_of(parent.id) and not self.children(parent.id) \
                    and not self.containers_using(parent.id):
                out += self._remove(parent.id, noprune=False)
        return out

    @staticmethod
    def _named(ref: str, rec: ImageRecord, tags: list[str]) -> str | None:
        """The tag `ref` names, when it names one (not an ID)."""
        if reference.looks_like_id(ref) or rec.id.removeprefix("sha256:").startswith(ref.removeprefix(
                "sha256:")):
            return None
        try:
            name = reference.parse(ref).with_default_tag().familiar
        except InvalidArgument:
            return None
        return name if name in tags else None

    def add_repo_digest(self, name: str, image_id: str) -> None:
        """Record `repo@sha256:<manifest digest>` for an image (after a push or pull)."""
        repo = name.split("@", 1)[0]
        with self.md.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO repo_digests(name, repo, image_id) VALUES (?,?,?)",
                       (name, repo, image_id))

    def _untag(self, name: str) -> None:
        with self.md.transaction() as tx:
            tx.execute("DELETE FROM tags WHERE name=?", (name,))

    def prune(self, *, dangling_only: bool = True,
              filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        filters = dict(filters or {})
        if "dangling" in filters:
            dangling_only = filters.pop("dangling")[0].lower() in ("1", "true")
        deleted: list[dict[str, str]] = []
        reclaimed = 0
        changed = True
        while changed:
            changed = False
            for rec in self.all():
                if self.find(rec.id) is None:     # gone with a child removed earlier in this pass
                    continue
                if self.containers_using(rec.id) or self.children(rec.id):
                    continue
                tags = self.tags_of(rec.id)
                if dangling_only and tags:
                    continue
                labels = (self.config(rec).get("config") or {}).get("Labels") or {}
                if not self._label_filters(labels, filters):
                    continue
                deleted += self._remove(rec.id, force=True)
                reclaimed += rec.size
                changed = True
        if deleted:
            swept = self.gc.collect()
            deleted += [{"Deleted": chain} for chain in swept.chains]
            if not swept.deferred:
                reclaimed = swept.freed
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    @staticmethod
    def _label_filters(labels: dict[str, str], filters: dict[str, list[str]]) -> bool:
        for lab in filters.get("label", []):
            k, eq, v = lab.partition("=")
            if k not in labels or (eq and labels[k] != v):
                return False
        for lab in filters.get("label!", []):
            k, eq, v = lab.partition("=")
            if k in labels and (not eq or labels[k] == v):
                return False
        return True

    # Disk usage ---------------------------------------------------------------------------------
    def layers_size(self) -> int:
        row = self.md.one("SELECT coalesce(sum(uncompressed_size),0) AS n FROM layers")
        return row["n"]

    def df_entries(self) -> list[dict[str, Any]]:
        out = []
        for rec in self.all():
            s = self.summary(rec)
            s["Containers"] = len(self.containers_using(rec.id))
            s["SharedSize"] = 0
            out.append(s)
        return out

    def layer_chain_ids(self, rec: ImageRecord) -> list[str]:
        return chain_ids(self.diff_ids(rec))


def _ref_match(tag: str, pattern: str) -> bool:
    """Docker's `reference` filter: a glob on `repo:tag`, or on the repo alone when no tag is given."""
    repo = tag.rsplit(":", 1)[0]
    return fnmatch.fnmatchcase(tag, pattern) or fnmatch.fnmatchcase(repo, pattern)


def _last_comment(cfg: dict[str, Any]) -> str:
    hist = cfg.get("history") or []
    return hist[-1].get("comment", "") if hist else ""


def _docker_config(c: dict[str, Any]) -> dict[str, Any]:
    """The image's runtime config in the shape Docker's inspect shows."""
    return {
        "Hostname": "", "Domainname": "", "User": c.get("User", ""), "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "ExposedPorts": c.get("ExposedPorts"),
        "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": c.get("Env"), "Cmd": c.get("Cmd"),
        "Healthcheck": c.get("Healthcheck"), "Image": "", "Volumes": c.get("Volumes"),
        "WorkingDir": c.get("WorkingDir", ""), "Entrypoint": c.get("Entrypoint"),
        "OnBuild": c.get("OnBuild"), "Labels": c.get("Labels"), "StopSignal": c.get("StopSignal"),
        "Shell": c.get("Shell"), "ArgsEscaped": c.get("ArgsEscaped"),
    }
