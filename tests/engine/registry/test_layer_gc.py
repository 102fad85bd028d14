"""Layers go with the last image that uses them (`services/layer_gc.py`), as with dockerd: `rmi`
lists them by chain ID and their snapshots and blobs leave the disk; a layer another image still
has stays; a collection asked for while a pull is making layers waits for it to end."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path

import httpx
from aiohttp import web
from registry_support import Image, Registry, Served, digest_of, make_image
from test_pushpull_helpers import host, inspect, pull

from tests.helpers import busybox_rootfs_tar
from workbench.engine.registry.server import make_registry_app
from workbench.engine.registry.storage import RegistryStorage
from workbench.oci.image import chain_ids, go_arch


def _snapshot(engine, chain: str) -> Path:
    return engine.root / "snapshots" / "snapshots" / chain.split(":")[1]


def _blob(engine, digest: str) -> Path:
    return engine.root / "content" / "blobs" / "sha256" / digest.split(":")[1]


def _import(engine, repo: str | None) -> dict:
    params = {"fromSrc": "-", **({"repo": repo, "tag": "1"} if repo else {})}
    r = engine.api.post("/images/create", params=params, content=busybox_rootfs_tar() + os.urandom(1024),
                        headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    return inspect(engine, r.json()["status"])


def _sibling(image: Image) -> Image:
    """Another image on exactly the same layers (only its config differs)."""
    cfg = json.loads(image.blobs[image.doc["config"]["digest"]])
    cfg["config"]["Cmd"] = ["/bin/true"]
    data = json.dumps(cfg).encode()
    doc = {**image.doc, "config": {**image.doc["config"], "digest": digest_of(data), "size": len(data)}}
    blobs = {d: b for d, b in image.blobs.items() if d != image.doc["config"]["digest"]} | {digest_of(data): data}
    return Image(json.dumps(doc).encode(), image.media_type, blobs)


def test_the_last_image_of_a_layer_takes_it_along(engine, registry: Registry) -> None:
    image = make_image("gc-shared", layers=2, arch=go_arch())
    sibling = _sibling(image)
    registry.push_image("gc/shared", image, tag="1")
    registry.push_image("gc/shared", sibling, tag="2")
    repo = f"{host(registry.url)}/gc/shared"
    assert pull(engine, repo, "1").error is None and pull(engine, repo, "2").error is None
    info = inspect(engine, f"{repo}:1")
    chains = chain_ids(info["RootFS"]["Layers"])
    layer_blobs = [d["digest"] for d in image.doc["layers"]]
    assert all(_snapshot(engine, c).is_dir() for c in chains)
    assert all(_blob(engine, b).is_file() for b in layer_blobs)
    r = engine.api.delete(f"/images/{repo}:1")
    assert r.status_code == 200 and {"Deleted": info["Id"]} in r.json()
    assert not any(d.get("Deleted") in chains for d in r.json())        # the sibling still has them
    assert all(_snapshot(engine, c).is_dir() for c in chains)
    assert not _blob(engine, image.doc["config"]["digest"]).exists()     # the config was its own
    r = engine.api.delete(f"/images/{repo}:2")
    assert set(chains) <= {d.get("Deleted") for d in r.json()}          # the last one takes them along
    assert not any(_snapshot(engine, c).exists() for c in chains)
    assert not any(_blob(engine, b).exists() for b in layer_blobs + [sibling.doc["config"]["digest"]])
    # pulled again, the layers download again: nothing is left to say "Already exists"
    again = pull(engine, repo, "1")
    assert again.error is None and "Already exists" not in again.statuses()
    engine.api.delete(f"/images/{repo}:1")


def test_prune_reports_what_the_sweep_freed(engine) -> None:
    info = _import(engine, None)                     # no tag: dangling
    chain = chain_ids(info["RootFS"]["Layers"])[-1]
    size = engine.api.get("/system/df").json()["LayersSize"]
    reply = engine.api.post("/images/prune")
    assert reply.status_code == 200, reply.text
    r = reply.json()
    assert {"Deleted": info["Id"]} in r["ImagesDeleted"] and {"Deleted": chain} in r["ImagesDeleted"]
    assert r["SpaceReclaimed"] > 1_000_000           # the busybox rootfs it was made of
    assert not _snapshot(engine, chain).exists()
    assert engine.api.get("/system/df").json()["LayersSize"] < size


def test_a_collection_waits_for_a_pull_that_is_making_layers(engine, tmp_path: Path) -> None:
    """rmi while a pull is between "layer unpacked" and "image recorded": the sweep is put off
    (rmi lists no layer), and runs when the pull ends: the deleted image's layers go, the pulled
    image's stay."""
    storage = RegistryStorage(tmp_path / "registry")
    plain = Served(make_registry_app(storage))
    image = make_image("gc-slow", layers=2, arch=go_arch())
    held = image.doc["layers"][1]["digest"]
    release, reached = threading.Event(), threading.Event()

    @web.middleware
    async def hold(request: web.Request, handler):
        if request.path.endswith(f"/blobs/{held}"):
            reached.set()
            while not release.is_set():
                await asyncio.sleep(0.02)
        return await handler(request)

    app = make_registry_app(storage)
    app.middlewares.insert(0, hold)
    slow = Served(app)
    doomed = _import(engine, "gc-doomed")
    doomed_chain = chain_ids(doomed["RootFS"]["Layers"])[-1]
    try:
        with httpx.Client(base_url=plain.url) as c:
            Registry(plain, storage, c).push_image("gc/slow", image, tag="1")
        repo = f"{host(slow.url)}/gc/slow"
        result: list = []
        t = threading.Thread(target=lambda: result.append(pull(engine, repo, "1")))
        t.start()
        assert reached.wait(30)
        time.sleep(0.3)                        # the first layer is in by now, in no image yet
        r = engine.api.delete("/images/gc-doomed:1")
        assert r.status_code == 200 and {"Deleted": doomed["Id"]} in r.json()
        assert [d for d in r.json() if d.get("Deleted") == doomed_chain] == []   # put off
        assert _snapshot(engine, doomed_chain).exists()
        release.set()
        t.join(60)
        assert result and result[0].error is None, result[0].raw
        deadline = time.monotonic() + 10
        while _snapshot(engine, doomed_chain).exists():
            assert time.monotonic() < deadline, "the put-off collection never ran"
            time.sleep(0.05)
        pulled = inspect(engine, f"{repo}:1")
        assert all(_snapshot(engine, c).is_dir() for c in chain_ids(pulled["RootFS"]["Layers"]))
        engine.api.delete(f"/images/{repo}:1")
    finally:
        release.set()
        slow.close()
        plain.close()


def test_two_removals_at_once_sweep_one_after_the_other(engine) -> None:
    images = [_import(engine, f"gc-twin{i}") for i in range(4)]
    chains = [chain_ids(i["RootFS"]["Layers"])[-1] for i in images]
    replies: list = [None] * len(images)

    def rmi(n: int) -> None:
        replies[n] = engine.api.delete(f"/images/gc-twin{n}:1")

    threads = [threading.Thread(target=rmi, args=(n,)) for n in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None and r.status_code == 200 for r in replies), [r.text for r in replies if r]
    assert not any(_snapshot(engine, c).exists() for c in chains)
    assert not list((engine.root / "snapshots" / "snapshots").glob(".tmp-rm-*"))
    assert engine.api.get("/_ping").status_code == 200


def _stores(root: Path):
    """A real image store of its own (SQLite, content store, snapshots) under `root`."""
    from workbench.engine.services.image_io import ImageIO
    from workbench.engine.services.images import ImageService
    from workbench.engine.store.content import ContentStore
    from workbench.engine.store.metadata import Metadata
    from workbench.engine.store.snapshots import OverlaySnapshotter
    images = ImageService(Metadata(root / "db.sqlite"), ContentStore(root / "content"),
                          OverlaySnapshotter(root / "snapshots"))
    (root / "tmp").mkdir()
    return images, ImageIO(images, root / "tmp")


def test_a_blob_an_image_manifest_names_is_kept_when_its_layer_came_again_compressed_otherwise(tmp_path):
    """The `layers` table keeps one blob per diff ID; an image loaded later with the same layer
    compressed another way replaces that row. The first image's manifest still names its own blob,
    which save and push send: the collector keeps it."""
    import gzip
    import hashlib
    import io
    import tarfile

    from registry_support import layer_tar

    images, image_io = _stores(tmp_path)
    tar = layer_tar({"d": b"D" * 5000})
    (tmp_path / "t.tar").write_bytes(tar)
    one = image_io.import_(tmp_path / "t.tar", repo="one", tag="1")
    own_blob = json.loads(images.content.read(one.manifest_digest))["layers"][0]["digest"]
    (tmp_path / "u.tar").write_bytes(layer_tar({"u": os.urandom(100)}))
    image_io.import_(tmp_path / "u.tar", repo="unrelated", tag="1")

    def sha(b: bytes) -> str:
        return "sha256:" + hashlib.sha256(b).hexdigest()
    base, again = layer_tar({"b": b"B"}), gzip.compress(tar, compresslevel=9, mtime=1)
    cfg = json.dumps({"architecture": go_arch(), "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [sha(base), sha(tar)]}}).encode()
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfg),
                                 "size": len(cfg)},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(base),
                                  "size": len(base)},
                                 {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(again),
                                  "size": len(again)}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                           "digest": sha(man), "size": len(man)}]}).encode()
    archive = tmp_path / "two.tar"
    with tarfile.open(archive, "w") as out:
        for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)] + \
                [(f"blobs/sha256/{sha(b)[7:]}", b) for b in (man, cfg, base, again)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    list(image_io.load(archive))
    assert images.layer_info(sha(tar))["blob_digest"] == sha(again)        # the row moved on
    images.remove("unrelated:1")                                          # a collection runs
    assert images.content.exists(own_blob)
    saved = b"".join(image_io.save(["one:1"]))
    assert own_blob.split(":")[1].encode() in saved


def test_a_caller_cancelled_while_waiting_out_a_sweep_does_not_hold_collection_off(tmp_path):
    """`busy_async()` waits for a running sweep off the event loop; cancelled meanwhile (a build's
    client going away), it must still leave once its wait has entered, or nothing would ever be
    collected again."""
    from workbench.engine.services.layer_gc import Swept
    images, _ = _stores(tmp_path)
    gc = images.gc
    sweep = gc._sweep
    gc._sweep = lambda trash: (time.sleep(1.0), sweep(trash))[1]        # a sweep that takes a second

    async def a_build() -> None:
        async with gc.busy_async():
            await asyncio.sleep(30)

    async def scenario() -> None:
        rmi = threading.Thread(target=gc.collect)
        rmi.start()
        await asyncio.sleep(0.1)
        build = asyncio.create_task(a_build())
        await asyncio.sleep(0.2)
        build.cancel()
        await asyncio.gather(build, return_exceptions=True)
        await asyncio.to_thread(rmi.join, 10)
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    gc._sweep = sweep
    assert gc._busy == 0
    assert gc.collect() == Swept()                                        # ran, not put off
