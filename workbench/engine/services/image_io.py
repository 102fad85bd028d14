"""Images in and out: register, import a rootfs tar, load docker-save/OCI archives, save, unpack.

Every layer enters through `LayerIngester.ingest`: one pass over the bytes hashes the diff ID,
writes the (compressed) blob to the content store and, when the diff ID is known in advance,
extracts the layer at the same time (into a private directory, renamed into place as the snapshot
only once the diff ID checked out; `ingest_unpacked` leaves that rename to the caller).
Metadata is written in one transaction only after every blob and snapshot is complete, so a bad
archive leaves no image behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from workbench.engine.services.changes import apply_changes
from workbench.engine.services.images import ImageRecord, ImageService, parse_time, rfc3339
from workbench.engine.store.compression import GzipWriter, open_decompressed, own_readinto
from workbench.engine.store.snapshots import UnpackedLayer
from workbench.errors import InvalidArgument, NotFound
from workbench.oci import mediatypes as mt
from workbench.oci import reference
from workbench.oci.image import canonical_json, chain_id, chain_ids, empty_config

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class LayerInfo:
    diff_id: str
    blob_digest: str
    media_type: str
    size: int
    uncompressed_size: int


class TeeReader(io.RawIOBase):
    """A readable stream that hands every byte it returns to `sinks` as well.

    `readinto` fills the caller's buffer straight from `src` (when it has `readinto`) and hands
    the sinks a view of it, so the bytes of a pull are copied only by the kernel: sinks must use
    the view before they return (hash it, write it), never keep it. `peek` lets
    `open_decompressed` sniff without wrapping the stream in a buffer of its own.
    """

    def __init__(self, src: BinaryIO, sinks: list[Callable[[bytes], Any]]) -> None:
        self._src = src
        self._src_readinto = own_readinto(src)
        self._sinks = sinks
        self._ahead = b""       # peeked, not yet returned (nor given to the sinks)
        self.count = 0

    def readable(self) -> bool:
        return True

    def peek(self, n: int = 1) -> bytes:
        if len(self._ahead) < n:
            self._ahead += self._src.read(n - len(self._ahead))
        return self._ahead

    def read(self, n: int = -1) -> bytes:
        n = n if n and n > 0 else CHUNK
        if self._ahead:
            data, self._ahead = self._ahead[:n], self._ahead[n:]
        else:
            data = self._src.read(n)
        if data:
            self._emit(data)
        return data

    def readinto(self, b: Any) -> int | None:  # type: ignore[override]
        if self._ahead or self._src_readinto is None:
            data = self.read(len(b))
            b[: len(data)] = data
            return len(data)
        n = self._src_readinto(b)
        if n:
            with memoryview(b) as whole, whole[:n] as view:
                self._emit(view)
        return n

    def _emit(self, data: bytes | memoryview) -> None:
        self.count += len(data)
        for s in self._sinks:
            s(data)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class LayerIngester:
    def __init__(self, images: ImageService) -> None:
        self.images = images
        self.md = images.md
        self.content = images.content
        self.snapshots = images.snapshots

    def known(self, diff_id: str) -> LayerInfo | None:
        row = self.images.layer_info(diff_id)
        if row and self.content.exists(row["blob_digest"]):
            return LayerInfo(row["diff_id"], row["blob_digest"], row["media_type"], row["size"],
                             row["uncompressed_size"])
        return None

    def ingest(self, src: BinaryIO, *, blob_digest: str | None = None, media_type: str | None = None,
               diff_id: str | None = None, parent_chain: str | None = None) -> LayerInfo:
        """Store one layer. `blob_digest`/`media_type` given: keep the blob as is (verified);
        otherwise `src` is a (possibly compressed) tar that is stored gzip-compressed. With
        `diff_id` the layer is also extracted, as the snapshot on top of `parent_chain`."""
        chain = chain_id([parent_chain, diff_id]) if parent_chain and diff_id else diff_id
        stage = (chain, parent_chain) if chain is not None and not self.snapshots.exists(chain) else None
        info, unpacked = self.ingest_unpacked(src, blob_digest=blob_digest, media_type=media_type,
                                              diff_id=diff_id, stage_as=stage)
        if unpacked is not None:
            try:
                self.snapshots.commit_unpacked(unpacked)
            finally:
                unpacked.discard()
        return info

    def ingest_unpacked(self, src: BinaryIO, *, blob_digest: str | None = None, media_type: str | None = None,
                        diff_id: str | None = None, stage_as: tuple[str, str | None] | None = None,
                        ) -> tuple[LayerInfo, UnpackedLayer | None]:
        """`ingest`, but the layer is extracted only with `stage_as` (chain ID, parent chain ID), and
        handed back verified and staged, not yet a snapshot, for the caller to `commit_unpacked`
        once its parent exists, and `discard`; None without `stage_as`."""
        keep = blob_digest is not None
        blob = self.content.writer()
        unpacked = None
        try:
            with blob:
                raw: BinaryIO = TeeReader(src, [blob.write]) if keep else src  # type: ignore[assignment]
                dec = open_decompressed(raw)
                diff_hash = hashlib.sha256()
                sinks: list[Callable[[bytes], Any]] = [diff_hash.update]
                gz = None
                if not keep:
                    gz = GzipWriter(blob)
                    sinks.append(gz.write)
                tee = TeeReader(dec, sinks)
                if stage_as is not None:
                    unpacked = self.snapshots.unpack(tee, chain_id=stage_as[0], parent=stage_as[1])
                tee.drain()
                if keep:
                    TeeReader(raw, []).drain()  # trailing bytes after the tar end still count
                if gz is not None:
                    gz.close()
                got = "sha256:" + diff_hash.hexdigest()
                if diff_id and got != diff_id:
                    raise InvalidArgument(f"layer diff ID mismatch: expected {diff_id}, got {got}")
                digest = blob.commit(blob_digest)
            info = LayerInfo(got, digest, media_type or mt.OCI_LAYER_GZIP, self.content.size(digest), tee.count)
            self.record(info)
        except BaseException:
            if unpacked is not None:
                unpacked.discard()
            raise
        return info, unpacked

    def record(self, info: LayerInfo) -> None:
        """Remember which blob holds diff ID `info.diff_id` (for saves, pushes and unpacking)."""
        with self.md.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO layers(diff_id, blob_digest, media_type, size, "
                       "uncompressed_size) VALUES (?,?,?,?,?)",
                       (info.diff_id, info.blob_digest, info.media_type, info.size, info.uncompressed_size))

    def unpack(self, diff_ids: list[str]) -> str:
        """Make sure every snapshot of the chain exists (extracting from blobs); return the top chain ID."""
        parent = None
        for cid, did in zip(chain_ids(diff_ids), diff_ids):
            if not self.snapshots.exists(cid):
                info = self.known(did)
                if info is None:
                    raise NotFound(f"layer {did} is missing from the content store")
                with self.content.open(info.blob_digest) as f:
                    self.snapshots.create_layer(cid, parent, open_decompressed(f))
            parent = cid
        return parent or ""


class ImageIO:
    def __init__(self, images: ImageService, tmp_dir: Path) -> None:
        self.images = images
        self.layers = LayerIngester(images)
        self.tmp_dir = tmp_dir

    # Register ---------------------------------------------------------------------------------
    def register(self, config: dict[str, Any] | bytes, layers: list[LayerInfo], *, tags: list[str] = (),
                 manifest: bytes | None = None, manifest_media_type: str | None = None,
                 repo_digest: str | None = None, parent: str = "") -> ImageRecord:
        """Write config (+ manifest) blobs and record the image with its tags in one transaction."""
        content = self.images.content
        config_bytes = config if isinstance(config, bytes) else canonical_json(config)
        config_doc = json.loads(config_bytes)
        config_digest = content.put(config_bytes)
        if manifest is None:
            manifest = canonical_json({
                "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                "layers": [{"mediaType": li.media_type, "digest": li.blob_digest, "size": li.size}
                           for li in layers]})
            manifest_media_type = mt.OCI_MANIFEST
        manifest_digest = content.put(manifest)
        size = sum(li.uncompressed_size for li in layers)
        created = parse_time(config_doc.get("created"))
        with self.images.md.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO images(id, manifest_digest, manifest_media_type, config_digest,"
                       " created, size, parent, added) VALUES (?,?,?,?,?,?,?,?)",
                       (config_digest, manifest_digest, manifest_media_type, config_digest, created, size,
                        parent, time.time()))
            for t in tags:
                self.images._set_tag(tx, t, config_digest)
            if repo_digest:
                repo = repo_digest.split("@")[0]
                tx.execute("INSERT OR REPLACE INTO repo_digests(name, repo, image_id) VALUES (?,?,?)",
                           (repo_digest, repo, config_digest))
        return self.images.get(config_digest)

    # Import -----------------------------------------------------------------------------------
    def import_(self, body: Path, *, repo: str | None = None, tag: str | None = None,
                changes: list[str] = (), message: str = "", platform: str | None = None) -> ImageRecord:
        tags = []
        if repo:
            ref = reference.parse(repo)
            if tag:
                ref = ref.with_tag(tag)
            tags.append(ref.with_default_tag().familiar)
        with self.images.gc.busy(), open(body, "rb") as f:
            _check_tar(f)
            info = self.layers.ingest(f)
            self.layers.unpack([info.diff_id])
            now = rfc3339(time.time())
            cfg = empty_config(now, [info.diff_id], apply_changes({}, list(changes)),
                               [{"created": now, "comment": message or "Imported from -"}])
            return self.register(cfg, [info], tags=tags)

    # Load -------------------------------------------------------------------------------------
    def load(self, body: Path) -> Iterator[str]:
        """Load a docker-save or OCI-layout archive; yield one "Loaded image..." line per image."""
        plain = _decompressed_copy(body, self.tmp_dir)
        try:
            with self.images.gc.busy(), tarfile.open(plain, "r:") as tar:
                members = {m.name.lstrip("./").lstrip("/"): m for m in tar.getmembers()}
                if "index.json" in members and _has_oci_blobs(members):
                    yield from self._load_oci(tar, members)
                elif "manifest.json" in members:
                    yield from self._load_docker(tar, members)
                else:
                    raise InvalidArgument("invalid archive: no manifest.json or index.json found "
                                          "(not a docker save or OCI image layout archive)")
        except tarfile.TarError as err:
            raise InvalidArgument(f"invalid archive: {err}") from err
        finally:
            if plain != body:
                plain.unlink(missing_ok=True)

    def _load_docker(self, tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> Iterator[str]:
        manifest = json.loads(_read_member(tar, members, "manifest.json"))
        if not isinstance(manifest, list):
            raise InvalidArgument("invalid archive: manifest.json is not a list")
        for entry in manifest:
            config_bytes = _read_member(tar, members, entry["Config"])
            cfg = json.loads(config_bytes)
            diff_ids = cfg.get("rootfs", {}).get("diff_ids") or []
            if len(diff_ids) != len(entry.get("Layers") or []):
                raise InvalidArgument("invalid archive: layer count does not match the config's diff_ids")
            infos = self._load_layers(tar, members, diff_ids, entry["Layers"], [None] * len(diff_ids))
            tags = [reference.parse(t).with_default_tag().familiar for t in entry.get("RepoTags") or []]
            rec = self.register(config_bytes, infos, tags=tags)
            yield from (f"Loaded image: {t}" for t in tags) if tags else [f"Loaded image ID: {rec.id}"]

    def _load_oci(self, tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> Iterator[str]:
        index = json.loads(_read_member(tar, members, "index.json"))
        for desc in _walk_index(tar, members, index):
            man_bytes = _read_member(tar, members, _blob_path(desc["digest"]))
            _verify(man_bytes, desc["digest"])
            man = json.loads(man_bytes)
            config_bytes = _read_member(tar, members, _blob_path(man["config"]["digest"]))
            _verify(config_bytes, man["config"]["digest"])
            diff_ids = json.loads(config_bytes).get("rootfs", {}).get("diff_ids") or []
            if len(diff_ids) != len(man.get("layers") or []):
                raise InvalidArgument("invalid archive: layer count does not match the config's diff_ids")
            infos = self._load_layers(tar, members, diff_ids, [_blob_path(ld["digest"]) for ld in man["layers"]],
                                      man["layers"])
            ann = desc.get("annotations") or {}
            name = ann.get("io.containerd.image.name") or ann.get("org.opencontainers.image.ref.name")
            tags = []
            if name and (":" in name or "/" in name):
                tags = [reference.parse(name).with_default_tag().familiar]
            rec = self.register(config_bytes, infos, tags=tags, manifest=man_bytes,
                                manifest_media_type=desc.get("mediaType") or man.get("mediaType")
                                or mt.OCI_MANIFEST)
            yield from (f"Loaded image: {t}" for t in tags) if tags else [f"Loaded image ID: {rec.id}"]

    def _load_layers(self, tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], diff_ids: list[str],
                     paths: list[str], descs: list[dict[str, Any] | None]) -> list[LayerInfo]:
        infos, parent = [], None
        for did, path, desc in zip(diff_ids, paths, descs):
            info = self.layers.known(did)
            if info is None or not self.images.snapshots.exists(chain_id([parent, did]) if parent else did):
                f = tar.extractfile(_member(members, path))
                if f is None:
                    raise InvalidArgument(f"invalid archive: layer {path} is not a file")
                if desc is not None:
                    info = self.layers.ingest(f, blob_digest=desc["digest"], media_type=desc["mediaType"],
                                              diff_id=did, parent_chain=parent)
                else:
                    info = self.layers.ingest(f, diff_id=did, parent_chain=parent)
            infos.append(info)
            parent = chain_id([parent, did]) if parent else did
        return infos

    # Save -------------------------------------------------------------------------------------
    def save(self, refs: list[str]) -> Iterator[bytes]:
        """Stream a tar holding an OCI image layout plus docker's manifest.json and repositories
        (layer collection waits while it streams: an rmi meanwhile does not take its blobs)."""
        with self.images.gc.busy():
            yield from self._save(refs)

    def _save(self, refs: list[str]) -> Iterator[bytes]:
        content = self.images.content
        entries, index, repos, blobs = [], [], {}, {}
        for ref in refs:
            rec = self.images.get(ref)
            man = json.loads(content.read(rec.manifest_digest))
            named = [] if reference.looks_like_id(ref) or rec.id.removeprefix("sha256:").startswith(
                ref.removeprefix("sha256:")) else [reference.parse(ref).with_default_tag().familiar]
            tags = named or ([] if reference.looks_like_id(ref) else self.images.tags_of(rec.id))
            entries.append({"Config": _blob_path(rec.config_digest), "RepoTags": tags or None,
                            "Layers": [_blob_path(ld["digest"]) for ld in man["layers"]]})
            for t in tags or [None]:
                ann = {}
                if t:
                    ann = {"io.containerd.image.name": reference.parse(t).with_default_tag().repository + ":"
                           + t.rsplit(":", 1)[1], "org.opencontainers.image.ref.name": t.rsplit(":", 1)[1]}
                index.append({"mediaType": rec.manifest_media_type, "digest": rec.manifest_digest,
                              "size": content.size(rec.manifest_digest), **({"annotations": ann} if ann else {})})
                if t:
                    repos.setdefault(t.rsplit(":", 1)[0], {})[t.rsplit(":", 1)[1]] = rec.short_id
            for d in [rec.manifest_digest, rec.config_digest] + [ld["digest"] for ld in man["layers"]]:
                blobs[d] = True
        yield from _tar_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        for d in blobs:
            yield from _tar_file(_blob_path(d), content.path(d))
        yield from _tar_bytes("index.json", canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                                                            "manifests": index}))
        yield from _tar_bytes("manifest.json", json.dumps(entries).encode())
        if repos:
            yield from _tar_bytes("repositories", json.dumps(repos).encode())
        yield b"\0" * 1024


def _blob_path(digest: str) -> str:
    algo, hexd = digest.split(":", 1)
    return f"blobs/{algo}/{hexd}"


def _has_oci_blobs(members: dict[str, tarfile.TarInfo]) -> bool:
    return any(n.startswith("blobs/") for n in members)


def _member(members: dict[str, tarfile.TarInfo], name: str) -> tarfile.TarInfo:
    m = members.get(name.lstrip("./").lstrip("/"))
    if m is None:
        raise InvalidArgument(f"invalid archive: {name} not found in archive")
    return m


def _read_member(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> bytes:
    m = _member(members, name)
    if m.size > 64 << 20:
        raise InvalidArgument(f"invalid archive: {name} is too large for a JSON document")
    f = tar.extractfile(m)
    if f is None:
        raise InvalidArgument(f"invalid archive: {name} is not a file")
    return f.read()


def _verify(data: bytes, digest: str) -> None:
    got = "sha256:" + hashlib.sha256(data).hexdigest()
    if got != digest:
        raise InvalidArgument(f"invalid archive: digest mismatch for {digest}: got {got}")


def _walk_index(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], index: dict[str, Any],
                depth: int = 0) -> Iterator[dict[str, Any]]:
    from workbench.oci.image import default_platform, platform_matches
    if depth > 4:
        raise InvalidArgument("invalid archive: index nesting too deep")
    for desc in index.get("manifests") or []:
        if desc.get("mediaType") in mt.INDEXES:
            sub = json.loads(_read_member(tar, members, _blob_path(desc["digest"])))
            ann = desc.get("annotations")
            for child in _walk_index(tar, members, sub, depth + 1):
                plat = child.get("platform")
                if plat and not platform_matches(default_platform(), plat):
                    continue
                yield {**child, "annotations": child.get("annotations") or ann}
                break
        elif desc.get("mediaType") in mt.MANIFESTS or "digest" in desc:
            yield desc


def _decompressed_copy(path: Path, tmp_dir: Path) -> Path:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic[:2] != b"\x1f\x8b" and magic[:3] != b"BZh" and magic[:6] != b"\xfd7zXZ\x00" \
            and magic[:4] != b"\x28\xb5\x2f\xfd":
        return path
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="load-")
    with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
        try:
            shutil.copyfileobj(open_decompressed(src), dst, CHUNK)
        except (OSError, EOFError, ValueError) as err:
            os.unlink(name)
            raise InvalidArgument(f"invalid archive: cannot decompress: {err}") from err
    return Path(name)


def _check_tar(f: BinaryIO) -> None:
    head = f.read(512)
    f.seek(0)
    if head[:2] in (b"\x1f\x8b",) or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" \
            or head[:4] == b"\x28\xb5\x2f\xfd":
        return
    if len(head) == 0:
        raise InvalidArgument("invalid tar archive: empty body")
    if len(head) < 512 or (head[257:262] != b"ustar" and head.strip(b"\0")):
        try:
            tarfile.TarInfo.frombuf(head.ljust(512, b"\0"), "utf-8", "surrogateescape")
        except tarfile.TarError as err:
            raise InvalidArgument(f"invalid tar archive: {err}") from err


def _tar_header(name: str, size: int, mode: int = 0o644) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = size, mode, 0
    return ti.tobuf(tarfile.PAX_FORMAT)


def _pad(size: int) -> bytes:
    return b"\0" * ((512 - size % 512) % 512)


def _tar_bytes(name: str, data: bytes) -> Iterator[bytes]:
    yield _tar_header(name, len(data)) + data + _pad(len(data))


def _tar_file(name: str, path: Path) -> Iterator[bytes]:
    size = path.stat().st_size
    yield _tar_header(name, size, 0o444)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk
    yield _pad(size)
