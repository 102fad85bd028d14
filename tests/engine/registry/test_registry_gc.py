"""Garbage collection: keeps everything referenced, sweeps the rest, safe while uploads run."""

from __future__ import annotations

import os
import time

from registry_support import Registry, digest_of, make_artifact, make_image, make_index

from workbench.engine.registry.gc import collect, gc


def _age(registry: Registry, seconds: float = 7200) -> None:
    """Make every file in the registry look old, so the grace period protects nothing."""
    past = time.time() - seconds
    for dirpath, _, files in os.walk(registry.storage.root):
        for f in files:
            os.utime(os.path.join(dirpath, f), (past, past))


def test_gc_keeps_referenced_and_sweeps_the_rest(registry: Registry) -> None:
    amd, arm = make_image("amd"), make_image("arm", arch="arm64")
    registry.push_image("app/a", amd)
    registry.push_image("app/a", arm)
    idx = make_index([amd, arm])
    registry.push_manifest("app/a", "multi", idx.manifest, idx.media_type)
    sig = make_artifact(amd)
    registry.push_image("app/a", sig)                          # a referrer, untagged
    other = make_image("other", layers=1)
    registry.push_image("app/b", other, tag="v1")
    orphan = registry.push_blob("app/b", os.urandom(5000))    # uploaded, never referenced
    dropped = make_image("dropped", layers=1)
    registry.push_image("app/b", dropped, tag="gone")
    registry.client.delete(f"/v2/app/b/manifests/{dropped.digest}")
    _age(registry)

    dry = gc(registry.storage.root, dry_run=True)
    expect = {orphan, *dropped.blobs, dropped.digest}
    assert set(dry.removed_blobs) == expect and dry.dry_run
    assert (registry.storage.blobs_dir / "sha256" / orphan[7:]).exists()       # dry run removed nothing

    result = gc(registry.storage.root)
    assert set(result.removed_blobs) == expect
    assert result.freed_bytes > 5000
    assert f"app/b@{orphan}" in result.removed_links
    for image in (amd, arm, sig, other):
        for d, data in image.blobs.items():
            assert registry.client.get(f"/v2/app/{'b' if image is other else 'a'}/blobs/{d}").content == data
    assert registry.client.get("/v2/app/a/manifests/multi").content == idx.manifest
    assert registry.client.get(f"/v2/app/b/blobs/{orphan}").status_code == 404
    assert gc(registry.storage.root).removed_blobs == ()


def test_gc_grace_period_and_inflight_uploads(registry: Registry) -> None:
    data = os.urandom(4096)
    young = registry.push_blob("app/c", data)                  # just uploaded: manifest not yet pushed
    r = registry.client.post("/v2/app/c/blobs/uploads/")      # an upload in progress
    loc = r.headers["Location"]
    registry.client.patch(loc, content=data[:1000], headers={"Content-Range": "0-999"})
    result = collect(registry.storage, grace_period=3600)
    assert young not in result.removed_blobs and result.removed_uploads == ()
    # the session still works after gc, and finishes into a blob
    r = registry.client.patch(loc, content=data[1000:], headers={"Content-Range": f"1000-{len(data) - 1}"})
    assert registry.client.put(r.headers["Location"] + f"?digest={digest_of(data)}").status_code == 201
    # re-linking an old blob (a deduplicated upload) makes it young again
    _age(registry)
    registry.push_blob("app/d", data)
    assert young not in collect(registry.storage, grace_period=3600).removed_blobs


def test_gc_removes_stale_uploads(registry: Registry) -> None:
    r = registry.client.post("/v2/app/e/blobs/uploads/")
    uid = r.headers["Docker-Upload-UUID"]
    _age(registry, 3 * 86400)
    assert collect(registry.storage, dry_run=True).removed_uploads == (uid,)
    assert (registry.storage.uploads_dir / uid).exists()
    assert collect(registry.storage).removed_uploads == (uid,)
    assert not (registry.storage.uploads_dir / uid).exists()


def test_gc_while_pushing(registry: Registry) -> None:
    """Pushes racing a gc loop never lose a blob: every image is whole at the end."""
    import threading
    stop = threading.Event()
    runs = []

    def loop() -> None:
        while not stop.is_set():
            runs.append(collect(registry.storage))

    t = threading.Thread(target=loop)
    t.start()
    try:
        images = []
        for i in range(6):
            im = make_image(f"race{i}", layers=1)
            registry.push_image("app/race", im, tag=f"t{i}")
            images.append(im)
    finally:
        stop.set()
        t.join()
    assert runs and not any(r.removed_blobs for r in runs)
    _age(registry)
    assert collect(registry.storage).removed_blobs == ()      # all referenced, even when old
    for im in images:
        for d, data in im.blobs.items():
            assert registry.client.get(f"/v2/app/race/blobs/{d}").content == data
