"""Pull: reference → manifest (index resolved to one platform) → config → layers → image record.

`Puller.prepare` does everything that can fail before the 200 goes out (reference parsing, auth,
the manifest and config fetches), so a missing image is a plain 404 and bad credentials a 401.
`Puller.run` yields Docker's progress messages while the layers move:

- every layer blob is downloaded at most once (`DOWNLOADS` at a time) and streamed through a
  `ChunkPipe` into `LayerIngester.ingest_unpacked` in a worker thread, so download, hashing,
  storing the blob byte for byte and extraction overlap, for all the layers at once;
- snapshots stack, so they become visible in chain order: each layer is unpacked into a private
  directory while it downloads, staged as its snapshot (records and short link flushed with the
  data), and renamed into place once its parent's is: one rename and one directory flush each
  (a blob that appears twice in the chain is extracted again from the store for its second place);
- the image is recorded (`ImageIO.register`: config, the manifest exactly as received, the tag and
  `repo@digest`) only after every layer is verified and unpacked, so a failed pull leaves no image.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from workbench.engine.registry.client import Manifest, RegistryClient, RegistryRequestError
from workbench.engine.registry.download import BlobBody, Challenge, SizeMismatch
from workbench.engine.registry.progress import ChunkPipe, EventSink, Meter, Progress, fail_shared, short_id
from workbench.engine.services.image_io import LayerInfo
from workbench.engine.store.compression import DECOMPRESS_ERRORS, open_decompressed
from workbench.engine.store.snapshots import UnpackedLayer
from workbench.errors import InvalidArgument, NotFound, WorkbenchError
from workbench.oci import mediatypes as mt
from workbench.oci import reference
from workbench.oci.digest import Digest, DigestMismatch
from workbench.oci.image import chain_ids, default_platform, is_index, parse_platform, platform_matches

__all__ = ["DOWNLOADS", "BlobRef", "PullJob", "Puller", "pull_reference"]

DOWNLOADS = 4


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A blob to move: its descriptor fields, and for layers the diff ID (push and pull share it)."""

    digest: str
    size: int
    media_type: str
    diff_id: str = ""


@dataclass(frozen=True, slots=True)
class PullJob:
    ref: reference.Reference
    client: RegistryClient
    top_digest: str          # what the reference resolved to (an index's digest for a multi-platform image)
    manifest: Manifest       # the platform's image manifest, exactly as received
    config: bytes
    config_digest: str
    layers: tuple[BlobRef, ...]


def pull_reference(from_image: str, tag: str | None) -> reference.Reference:
    """`fromImage` + `tag` as dockerd reads them: the tag may be a digest (anything else with a
    colon is "invalid tag format"). With neither a tag nor a digest the reference is bare: every
    tag of the repository is pulled (`Transfers.prepare_pull`)."""
    ref = reference.parse(from_image)
    if tag:
        if ":" in tag:
            try:
                Digest.parse(tag)
            except InvalidArgument:
                raise InvalidArgument("invalid tag format") from None
            return reference.Reference(ref.domain, ref.path, None, tag)
        ref = reference.parse(f"{ref.repository}:{tag}")
    return ref


class Puller:
    """Pull images into the engine's stores (see the module docstring)."""

    def __init__(self, images: Any, image_io: Any, pool: Executor) -> None:
        self.images = images
        self.io = image_io
        self.layers = image_io.layers
        self.snapshots = images.snapshots
        self.content = images.content
        self.pool = pool

    # -- before the stream -------------------------------------------------------------------
    async def prepare(self, ref: reference.Reference, client: RegistryClient,
                      platform: str | None = None) -> PullJob:
        """Resolve `ref` to one image manifest and its config; raise before any progress is sent."""
        path = ref.path
        try:
            top = await client.get_manifest(path, ref.digest or ref.tag or "latest")
        except RegistryRequestError as err:
            if err.remote_status == 404:
                raise NotFound(f"manifest for {ref.familiar} not found: {err.message}") from err
            raise
        manifest = top
        doc = _json(top.data)
        if is_index(top.media_type, doc):
            child = _pick_platform(doc, parse_platform(platform) if platform else default_platform())
            manifest = await client.get_manifest(path, child)
            doc = _json(manifest.data)
        if manifest.media_type not in mt.MANIFESTS and "layers" not in doc:
            raise InvalidArgument(f"unsupported manifest media type {manifest.media_type!r} for {ref.familiar}")
        config_desc = doc.get("config") or {}
        config_digest = str(config_desc.get("digest", ""))
        Digest.parse(config_digest)
        config = await client.fetch_blob(path, config_digest)
        diff_ids = (_json(config).get("rootfs") or {}).get("diff_ids") or []
        descs = doc.get("layers") or []
        if len(diff_ids) != len(descs):
            raise InvalidArgument(f"invalid image {ref.familiar}: {len(descs)} layers in the manifest but "
                                  f"{len(diff_ids)} diff IDs in the config")
        layers = tuple(BlobRef(str(d["digest"]), int(d.get("size") or 0), str(d.get("mediaType") or
                                mt.OCI_LAYER_GZIP), str(did)) for d, did in zip(descs, diff_ids))
        for layer in layers:
            Digest.parse(layer.digest)
            Digest.parse(layer.diff_id)
        return PullJob(ref, client, top.digest, manifest, config, config_digest, layers)

    # -- the stream ----------------------------------------------------------------------------
    def run(self, job: PullJob) -> AsyncIterator[Progress]:
        sink = EventSink()
        return sink.run(self._pull(job, sink))

    def run_tags(self, repo: reference.Reference, jobs: AsyncIterator[PullJob]) -> AsyncIterator[Progress]:
        """Pull every tag (`jobs` yields them prepared, one after another) in one stream, as dockerd
        does for a bare name: each tag's progress and digest, then one status for the repository."""
        sink = EventSink()

        async def every_tag() -> None:
            newer = False
            async for job in jobs:
                newer = await self._pull(job, sink, status=False) or newer
            what = "Downloaded newer image" if newer else "Image is up to date"
            sink.status(f"Status: {what} for {repo.familiar_name}")
        return sink.run(every_tag())

    async def _pull(self, job: PullJob, sink: EventSink, *, status: bool = True) -> bool:
        """One image's pull; True when the reference now names a different image than before.
        Layer collection waits while it runs (its layers belong to no image until the end)."""
        async with self.images.gc.busy_async():
            return await self._pull_held(job, sink, status=status)

    async def _pull_held(self, job: PullJob, sink: EventSink, *, status: bool) -> bool:
        ref = job.ref
        sink.status(f"Pulling from {ref.path}", ref.digest or ref.tag)
        existing = self.images.find(job.config_digest)
        have_all = existing is not None and (not job.layers or self.snapshots.exists(
            chain_ids([lr.diff_id for lr in job.layers])[-1]))
        if not have_all:
            loop = asyncio.get_running_loop()
            # the config and manifest blobs are stored while the layers move (their fsyncs were
            # ~4 ms at the end); `register` then finds them there. An image names them only
            # once registered, and collection waits for the pull (`_pull`), so nothing sweeps them.
            documents = loop.run_in_executor(self.pool, self._store_documents, job)
            try:
                infos = await _LayerPull(self, job, sink).run()
            finally:
                await asyncio.gather(documents, return_exceptions=True)
            documents.result()
            before = self._points_at(ref)
            await loop.run_in_executor(self.pool, functools.partial(
                self.io.register, job.config, infos, tags=[ref.familiar] if ref.tag else [],
                manifest=job.manifest.data, manifest_media_type=job.manifest.media_type,
                repo_digest=f"{ref.familiar_name}@{job.top_digest}"))
        else:
            before = self._points_at(ref)
            if ref.tag:
                self.images.tag(job.config_digest, ref.familiar_name, ref.tag)
            self.images.add_repo_digest(f"{ref.familiar_name}@{job.top_digest}", job.config_digest)
        sink.status(f"Digest: {job.top_digest}")
        newer = before != job.config_digest
        if status:
            what = "Downloaded newer image" if newer else "Image is up to date"
            sink.status(f"Status: {what} for {ref.familiar}")
        return newer

    def _store_documents(self, job: PullJob) -> None:
        self.content.put(job.config)
        self.content.put(job.manifest.data)

    def _points_at(self, ref: reference.Reference) -> str | None:
        try:
            rec = self.images.find(ref.familiar)
        except WorkbenchError:
            return None
        return rec.id if rec is not None else None


class _LayerPull:
    """The layers of one pull: downloads, ingestion and extraction in chain order."""

    def __init__(self, puller: Puller, job: PullJob, sink: EventSink) -> None:
        self.p, self.job, self.sink = puller, job, sink
        self.loop = asyncio.get_running_loop()
        n = len(job.layers)
        self.chains = chain_ids([lr.diff_id for lr in job.layers])
        self.ready = [asyncio.Event() for _ in range(n)]
        self.infos: list[Any] = [None] * n
        self.blobs: dict[str, asyncio.Future[Any]] = {}
        self.slots = asyncio.Semaphore(DOWNLOADS)

    async def run(self) -> list[Any]:
        todo = []
        for i, layer in enumerate(self.job.layers):
            info = self.p.layers.known(layer.diff_id)
            if info is not None and self.p.snapshots.exists(self.chains[i]):
                self.infos[i] = info
                self.ready[i].set()
                self.sink.layer("Already exists", short_id(layer.digest))
            else:
                todo.append(i)
        firsts = []
        for i in todo:
            digest = self.job.layers[i].digest
            if digest not in self.blobs:
                self.blobs[digest] = self.loop.create_future()
                firsts.append(i)
                self.sink.layer("Pulling fs layer", short_id(digest))
        for i in firsts[DOWNLOADS:]:
            self.sink.layer("Waiting", short_id(self.job.layers[i].digest))
        tasks = [asyncio.ensure_future(self._layer(i, i in firsts)) for i in todo]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for fut in self.blobs.values():
                if not fut.done():
                    fut.cancel()
            raise
        return self.infos

    async def _layer(self, i: int, first: bool) -> None:
        layer = self.job.layers[i]
        sid = short_id(layer.digest)
        unpacked: UnpackedLayer | None = None
        try:
            if first:
                async with self.slots:
                    try:
                        info, unpacked = await self._download(i)
                    except BaseException as err:
                        fail_shared(self.blobs[layer.digest], err)
                        raise
                self.blobs[layer.digest].set_result(info)
            else:
                info = await asyncio.shield(self.blobs[layer.digest])
            if i > 0:
                await self.ready[i - 1].wait()
            if unpacked is not None:
                # the commit owns the layer from here (it commits or discards it), so it must run
                # even if this pull is cancelled meanwhile: a cancelled executor job that had not
                # started yet would never run, and the staged layer would stay on the disk
                done, unpacked = unpacked, None
                await asyncio.shield(self.loop.run_in_executor(self.p.pool, self._commit, done))
                self.sink.layer("Extracting", sid, layer.size, layer.size)
            elif not self.p.snapshots.exists(self.chains[i]):
                info = await self._extract(i, sid if first else None)
            elif first:
                self.sink.layer("Extracting", sid, layer.size, layer.size)
        finally:
            if unpacked is not None:  # failed or cancelled before its turn: drop it off the loop
                with contextlib.suppress(RuntimeError):   # pool gone (shutdown): recover() removes it
                    self.loop.run_in_executor(self.p.pool, unpacked.discard)
        if first:
            self.sink.layer("Pull complete", sid)
        self.infos[i] = info
        self.ready[i].set()

    def _discard_when_done(self, work: asyncio.Future[Any]) -> None:
        if not work.cancelled() and work.exception() is None and work.result()[1] is not None:
            with contextlib.suppress(RuntimeError):       # as in _layer
                self.loop.run_in_executor(self.p.pool, work.result()[1].discard)

    def _commit(self, unpacked: UnpackedLayer) -> None:
        """Rename a staged layer into place as its snapshot (its parent exists now)."""
        try:
            self.p.snapshots.commit_unpacked(unpacked)
        finally:
            unpacked.discard()

    async def _download(self, i: int) -> tuple[Any, UnpackedLayer | None]:
        """Download one blob into the content store, verified, and unpack it on the way (unless its
        snapshot exists): the unpacked layer is committed by `_layer` once its parent is."""
        layer = self.job.layers[i]
        chain = self.chains[i]
        kwargs = {"blob_digest": layer.digest, "media_type": layer.media_type, "diff_id": layer.diff_id,
                  "stage_as": None if self.p.snapshots.exists(chain) else (chain, self.chains[i - 1] if i else None)}
        try:
            result = await self._fetch_and_ingest(layer, kwargs)
        except DigestMismatch as err:
            raise InvalidArgument(f"filesystem layer verification failed for digest {layer.digest}") from err
        except SizeMismatch as err:
            raise InvalidArgument(f"filesystem layer verification failed for digest {layer.digest}: "
                                  f"{err.message}") from err
        except InvalidArgument as err:
            raise InvalidArgument(f"failed to register layer {short_id(layer.digest)}: {err.message}") from err
        except (*DECOMPRESS_ERRORS, gzip.BadGzipFile) as err:
            raise InvalidArgument(f"failed to register layer {short_id(layer.digest)}: {err}") from err
        self.sink.layer("Download complete", short_id(layer.digest))
        return result

    async def _fetch_and_ingest(self, layer: BlobRef, kwargs: dict[str, Any]) -> tuple[Any, UnpackedLayer | None]:
        """The worker thread GETs the blob itself (`download.BlobBody`); through a proxy the event
        loop reads it with httpx and pipes it over (`_piped`). A 401 challenge is answered here,
        on the loop, and the GET made once more."""
        client, path = self.job.client, self.job.ref.path
        for attempt in (0, 1):
            request = client.blob_request(path, layer.digest)
            if request is None:
                return await self._piped(layer, kwargs)
            body = BlobBody(request, size=layer.size, progress=self._progress_of(layer))
            work = self.loop.run_in_executor(self.p.pool, _ingest_body, self.p.layers, body, kwargs)
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:   # another layer failed, or the client left
                body.abort()
                work.add_done_callback(self._discard_when_done)
                raise
            except Challenge as challenge:
                if attempt or not await client.answer_challenge("GET", challenge.url, challenge.header,
                                                                challenge.sent):
                    raise RegistryRequestError(challenge.message, status=401, remote_status=401,
                                               code="UNAUTHORIZED") from challenge
        raise AssertionError("unreachable")

    def _progress_of(self, layer: BlobRef) -> Any:
        sid = short_id(layer.digest)
        meter = Meter(self.sink.emit_threadsafe, "Downloading", sid, layer.size)

        def progress(count: int, done: bool) -> None:    # in the worker thread
            meter.update(count)
            if done:
                meter.finish()
                self.sink.emit_threadsafe(Progress("Verifying Checksum", sid, layer=True))
        return progress

    async def _piped(self, layer: BlobRef, kwargs: dict[str, Any]) -> tuple[Any, UnpackedLayer | None]:
        """The blob read with httpx on the loop and piped to the ingesting thread (`ChunkPipe`)."""
        sid = short_id(layer.digest)
        pipe = ChunkPipe()
        work = self.loop.run_in_executor(self.p.pool, _ingest, self.p.layers, pipe, kwargs)
        meter = Meter(self.sink.emit, "Downloading", sid, layer.size)
        try:
            got = 0
            async with self.job.client.blob(self.job.ref.path, layer.digest) as response:
                async for chunk in response.aiter_raw():
                    got += len(chunk)
                    if layer.size and got > layer.size:
                        raise SizeMismatch(f"more than {layer.size} bytes")
                    await pipe.put(chunk)
                    meter.update(got)
            if layer.size and got != layer.size:
                raise SizeMismatch(f"got {got} of {layer.size} bytes")
            pipe.finish()
        except BaseException as err:
            pipe.finish(err if isinstance(err, Exception) else WorkbenchError("pull cancelled"))
            for result in await asyncio.gather(work, return_exceptions=True):
                if isinstance(result, tuple) and result[1] is not None:
                    result[1].discard()
            raise
        meter.finish()
        self.sink.layer("Verifying Checksum", sid)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:    # another layer failed: drop this one's unpacked copy
            work.add_done_callback(self._discard_when_done)
            raise

    async def _extract(self, i: int, sid: str | None) -> Any:
        """Unpack a stored blob as snapshot `chains[i]` (verifying its diff ID) and record the layer."""
        layer = self.job.layers[i]
        meter = Meter(self.sink.emit_threadsafe, "Extracting", sid or "", layer.size)
        parent = self.chains[i - 1] if i else None
        p = self.p

        def work() -> Any:
            with p.content.open(layer.digest, verify=False) as f:   # verified as it was stored
                tar = _Counting(open_decompressed(_Counting(f, meter.update if sid else None)), None)
                try:
                    p.snapshots.create_layer(self.chains[i], parent, tar, diff_id=layer.diff_id)
                except InvalidArgument as err:
                    raise InvalidArgument(f"failed to register layer {short_id(layer.digest)}: "
                                          f"{err.message}") from err
                except DECOMPRESS_ERRORS as err:
                    raise InvalidArgument(f"failed to register layer {short_id(layer.digest)}: {err}") from err
            if sid:
                meter.finish()
            known = p.layers.known(layer.diff_id)
            if known is not None and known.blob_digest == layer.digest and not tar.count:
                return known
            info = LayerInfo(layer.diff_id, layer.digest, layer.media_type, p.content.size(layer.digest),
                             tar.count)
            p.layers.record(info)
            return info

        return await self.loop.run_in_executor(self.p.pool, work)


def _ingest_body(layers: Any, body: BlobBody, kwargs: dict[str, Any]) -> Any:
    with body:
        body.open()
        return layers.ingest_unpacked(body, **kwargs)


def _ingest(layers: Any, pipe: ChunkPipe, kwargs: dict[str, Any]) -> Any:
    try:
        return layers.ingest_unpacked(pipe, **kwargs)
    finally:
        pipe.abandon()


class _Counting:
    """A reader that counts (and optionally reports) the bytes that go through it."""

    def __init__(self, f: Any, report: Any) -> None:
        self._f, self._report, self.count = f, report, 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.count += len(data)
        if self._report is not None and data:
            self._report(self.count)
        return data


def _json(data: bytes) -> dict[str, Any]:
    import json
    try:
        doc = json.loads(data)
    except ValueError as err:
        raise InvalidArgument(f"invalid manifest or config: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid manifest or config: not a JSON object")
    return doc


def _pick_platform(index: dict[str, Any], want: dict[str, Any]) -> str:
    entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
    exact = [e for e in entries if platform_matches(want, e.get("platform"))
             and (e.get("platform") or {}).get("variant") == want.get("variant")]
    loose = [e for e in entries if platform_matches(want, e.get("platform"))]
    for e in exact or loose:
        return str(e.get("digest"))
    text = "/".join(str(want[k]) for k in ("os", "architecture", "variant") if want.get(k))
    raise NotFound(f"no matching manifest for {text} in the manifest list entries")
