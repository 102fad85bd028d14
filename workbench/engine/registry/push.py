"""Push: local image → blobs the registry lacks (HEAD, mount or upload) → manifest → `repo@digest`.

`Pusher.prepare` resolves the local images before the stream starts (an unknown tag is a plain
404: `An image does not exist locally with the tag: R`); everything that touches the network
happens in `Pusher.run`, whose errors go in-stream, as dockerd does after "The push refers to
repository [R]".

The image's stored manifest is pushed byte for byte when the content store holds every blob it
lists, so an image that was pulled (or loaded from an OCI layout) keeps its manifest digest across
registries. Otherwise (layers recorded under other blobs) an OCI manifest is built from the
layers table. Per layer, at most `UPLOADS` at a time: a HEAD finds blobs the repository already
has ("Layer already exists"); a blob that another repository of the same registry is known to
hold (by the images' `repo@digest` records) is mounted ("Mounted from x"), and when the registry
answers the mount with an upload session (202) the blob goes up through that session; anything
else is uploaded ("Pushing" with byte counts, then "Pushed").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from workbench.engine.registry.client import RegistryClient
from workbench.engine.registry.progress import EventSink, Meter, Progress, fail_shared, short_id
from workbench.engine.registry.pull import BlobRef
from workbench.errors import InvalidArgument, NotFound
from workbench.oci import mediatypes as mt
from workbench.oci import reference
from workbench.oci.image import canonical_json

__all__ = ["UPLOADS", "PushItem", "PushJob", "Pusher"]

UPLOADS = 4
MOUNT_CANDIDATES = 3


@dataclass(frozen=True, slots=True)
class PushItem:
    tag: str
    image_id: str
    manifest: bytes
    media_type: str
    config: BlobRef
    layers: tuple[BlobRef, ...]


@dataclass(frozen=True)
class PushJob:
    ref: reference.Reference
    items: tuple[PushItem, ...]
    mounts: dict[str, list[str]] = field(default_factory=dict)   # blob digest → repository paths

    def scopes(self) -> list[str]:
        return [f"repository:{self.ref.path}:pull,push"] + sorted(
            {f"repository:{src}:pull" for srcs in self.mounts.values() for src in srcs})


class Pusher:
    """Push local images to a registry (see the module docstring)."""

    def __init__(self, images: Any, image_io: Any) -> None:
        self.images = images
        self.layers = image_io.layers
        self.content = images.content

    # -- before the stream ---------------------------------------------------------------------
    def prepare(self, name: str, tag: str | None) -> PushJob:
        """The images `name` (`:tag`, or every local tag of the repository) stands for."""
        ref = reference.parse(name)
        if ref.digest:
            raise InvalidArgument(f"cannot push a digest reference: {name}")
        tag = tag or ref.tag
        repo = reference.Reference(ref.domain, ref.path)
        if tag:
            tags = [tag]
        else:
            prefix = repo.familiar_name + ":"
            tags = sorted({t[len(prefix):] for rec in self.images.all() for t in self.images.tags_of(rec.id)
                           if t.startswith(prefix)})
        if not tags:
            raise NotFound(f"An image does not exist locally with the tag: {repo.familiar_name}")
        items = []
        for t in tags:
            rec = self.images.find(f"{repo.familiar_name}:{t}")
            if rec is None:
                raise NotFound(f"An image does not exist locally with the tag: {repo.familiar_name}")
            items.append(self._item(t, rec))
        blobs = {lr.digest for it in items for lr in it.layers}
        return PushJob(repo.with_tag(tags[0]), tuple(items), self._mount_sources(repo, blobs))

    def _item(self, tag: str, rec: Any) -> PushItem:
        config = BlobRef(rec.config_digest, self.content.size(rec.config_digest), mt.OCI_CONFIG)
        diff_ids = self.images.diff_ids(rec)
        if rec.manifest_digest and self.content.exists(rec.manifest_digest):
            data = self.content.read(rec.manifest_digest)
            doc = json.loads(data)
            descs = doc.get("layers") or []
            if len(descs) == len(diff_ids) and all(self.content.exists(d["digest"]) for d in descs):
                layers = tuple(BlobRef(d["digest"], int(d.get("size") or self.content.size(d["digest"])),
                                       d.get("mediaType", mt.OCI_LAYER_GZIP), did)
                               for d, did in zip(descs, diff_ids))
                cfg = doc.get("config") or {}
                config = BlobRef(rec.config_digest, config.size, cfg.get("mediaType", mt.OCI_CONFIG))
                media_type = rec.manifest_media_type or doc.get("mediaType") or mt.OCI_MANIFEST
                return PushItem(tag, rec.id, data, media_type, config, layers)
        layers = []
        for did in diff_ids:
            info = self.layers.known(did)
            if info is None:
                raise NotFound(f"layer {did} of {rec.short_id} is missing from the content store")
            layers.append(BlobRef(info.blob_digest, info.size, info.media_type, did))
        data = canonical_json({
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": lr.media_type, "digest": lr.digest, "size": lr.size} for lr in layers]})
        return PushItem(tag, rec.id, data, mt.OCI_MANIFEST, config, tuple(layers))

    def _mount_sources(self, repo: reference.Reference, blobs: set[str]) -> dict[str, list[str]]:
        """Other repositories of the same registry that hold these blobs, from `repo@digest` records."""
        out: dict[str, list[str]] = {}
        for rec in self.images.all():
            if not rec.manifest_digest or not self.content.exists(rec.manifest_digest):
                continue
            sources = []
            for name in self.images.digests_of(rec.id):
                try:
                    r = reference.parse(name.split("@", 1)[0])
                except InvalidArgument:
                    continue
                if r.domain == repo.domain and r.path != repo.path:
                    sources.append(r.path)
            if not sources:
                continue
            doc = json.loads(self.content.read(rec.manifest_digest))
            for d in doc.get("layers") or []:
                if d.get("digest") in blobs:
                    srcs = out.setdefault(d["digest"], [])
                    srcs.extend(s for s in sources if s not in srcs)
        return {d: srcs[:MOUNT_CANDIDATES] for d, srcs in out.items()}

    # -- the stream ----------------------------------------------------------------------------
    def run(self, job: PushJob, client: RegistryClient) -> AsyncIterator[Progress]:
        sink = EventSink()
        return sink.run(self._push(job, client, sink))

    async def _push(self, job: PushJob, client: RegistryClient, sink: EventSink) -> None:
        async with self.images.gc.busy_async():    # an rmi meanwhile leaves the blobs until it ends
            await self._push_held(job, client, sink)

    async def _push_held(self, job: PushJob, client: RegistryClient, sink: EventSink) -> None:
        sink.status(f"The push refers to repository [{job.ref.repository}]")
        for item in job.items:
            await _ItemPush(self, job, client, sink, item).run()
            sink.status(f"{item.tag}: digest: {_digest(item.manifest)} size: {len(item.manifest)}")
            sink.emit(Progress(layer=True, aux={"Tag": item.tag, "Digest": _digest(item.manifest),
                                                "Size": len(item.manifest)}))


class _ItemPush:
    def __init__(self, pusher: Pusher, job: PushJob, client: RegistryClient, sink: EventSink,
                 item: PushItem) -> None:
        self.p, self.job, self.client, self.sink, self.item = pusher, job, client, sink, item
        self.path = job.ref.path
        self.slots = asyncio.Semaphore(UPLOADS)
        self.started: dict[str, asyncio.Future[None]] = {}

    async def run(self) -> None:
        order = list(reversed(self.item.layers))          # dockerd lists the top layer first
        ids = []
        for layer in order:
            sid = short_id(layer.diff_id or layer.digest)
            if sid not in ids:
                ids.append(sid)
                self.sink.layer("Preparing", sid)
        for sid in ids[UPLOADS:]:
            self.sink.layer("Waiting", sid)
        tasks = [asyncio.ensure_future(self._layer(layer)) for layer in order]
        tasks.append(asyncio.ensure_future(self._blob(self.item.config, None)))
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        await self.client.put_manifest(self.path, self.item.tag, self.item.manifest, self.item.media_type)
        self.p.images.add_repo_digest(f"{self.job.ref.familiar_name}@{_digest(self.item.manifest)}",
                        self.item.image_id)

    async def _layer(self, layer: BlobRef) -> None:
        sid = short_id(layer.diff_id or layer.digest)
        if layer.digest in self.started:               # the same blob twice in one image
            await asyncio.shield(self.started[layer.digest])
            return
        await self._blob(layer, sid)

    async def _blob(self, blob: BlobRef, sid: str | None) -> None:
        done = self.started.setdefault(blob.digest, asyncio.get_running_loop().create_future())
        try:
            async with self.slots:
                status = await self._send(blob, sid)
            if sid is not None:
                self.sink.layer(status, sid)
            done.set_result(None)
        except BaseException as err:
            fail_shared(done, err)
            raise

    async def _send(self, blob: BlobRef, sid: str | None) -> str:
        if await self.client.blob_exists(self.path, blob.digest):
            return "Layer already exists"
        location = None
        for source in self.job.mounts.get(blob.digest, []):
            location = await self.client.mount_blob(self.path, blob.digest, source)
            if location is None:
                return f"Mounted from {source}"
            break
        meter = Meter(self.sink.emit, "Pushing", sid or "", blob.size)
        content = self.p.content
        await self.client.upload_blob(self.path, blob.digest, blob.size, lambda: content.open(blob.digest),
                                      location=location, progress=meter.update if sid else None)
        if sid:
            meter.finish()
        return "Pushed"


def _digest(data: bytes) -> str:
    import hashlib
    return "sha256:" + hashlib.sha256(data).hexdigest()
