"""Push and pull through the engine (`POST /images/{name}/push`, `POST /images/create?fromImage=`)
against our registry server on a loopback port: round trips with stable digests, pulls by tag and
digest, Docker's progress streams, skipped and mounted blobs, multi-platform indexes, 404s.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import pytest
import zstandard
from registry_support import (OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZ, OCI_MANIFEST, Image, Registry, digest_of,
                              layer_tar, make_image, make_registry)
from test_pushpull_helpers import assert_no_unpack_left, host, inspect, pull, push, rmi, tag

from workbench.oci.image import go_arch

pytestmark = pytest.mark.usefixtures("busybox")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layers_dir(engine, name: str) -> list[Path]:
    info = inspect(engine, name)
    assert info is not None
    lower = info["GraphDriver"]["Data"].get("LowerDir", "")
    return [Path(p) for p in lower.split(":") if p]


def test_push_stream_and_round_trip(engine, registry: Registry) -> None:
    repo = f"{host(registry.url)}/pp/busybox"
    tag(engine, "busybox:latest", repo, "1")
    r = push(engine, repo, "1")
    assert r.status == 200 and r.error is None, r.raw
    assert r.events[0] == {"status": f"The push refers to repository [{repo}]"}
    image = inspect(engine, f"{repo}:1")
    layer_id = image["RootFS"]["Layers"][-1].split(":")[1][:12]      # push ids are diff IDs
    assert r.statuses(layer_id)[0] == "Preparing" and r.statuses(layer_id)[-1] == "Pushed"
    pushing = [ev for ev in r.events if ev.get("status") == "Pushing"]
    assert pushing and all(set(ev) == {"status", "progressDetail", "progress", "id"} for ev in pushing)
    assert pushing[-1]["progressDetail"]["current"] == pushing[-1]["progressDetail"]["total"]
    assert pushing[-1]["progress"].startswith("[" + "=" * 50 + ">]")
    aux = r.aux()
    assert set(aux) == {"Tag", "Digest", "Size"} and aux["Tag"] == "1"
    assert r.events[-2] == {"status": f"1: digest: {aux['Digest']} size: {aux['Size']}"}
    assert r.events[-1] == {"progressDetail": {}, "aux": aux}
    # the registry holds the engine's manifest byte for byte
    served = registry.client.get("/v2/pp/busybox/manifests/1",
                                 headers={"Accept": image["Descriptor"]["mediaType"]})
    assert served.headers["Docker-Content-Digest"] == aux["Digest"] == image["Descriptor"]["digest"]
    assert len(served.content) == aux["Size"]
    assert f"{repo}@{aux['Digest']}" in inspect(engine, f"{repo}:1")["RepoDigests"]
    # delete locally, pull back: same image, same manifest digest; a second pull is up to date
    rmi(engine, f"{repo}:1")
    assert inspect(engine, f"{repo}:1") is None
    r = pull(engine, repo, "1")
    assert r.status == 200 and r.error is None, r.raw
    assert r.events[0] == {"status": "Pulling from pp/busybox", "id": "1"}
    assert r.statuses()[-2:] == [f"Digest: {aux['Digest']}", f"Status: Downloaded newer image for {repo}:1"]
    back = inspect(engine, f"{repo}:1")
    assert back["Id"] == image["Id"] and back["Descriptor"]["digest"] == aux["Digest"]
    assert f"{repo}@{aux['Digest']}" in back["RepoDigests"]
    again = pull(engine, repo, "1")
    assert again.statuses()[-1] == f"Status: Image is up to date for {repo}:1"


def test_pull_downloads_verifies_and_unpacks(engine, registry: Registry) -> None:
    image = make_image("fresh", layers=3, arch=go_arch())
    registry.push_image("pp/fresh", image, tag="1")
    repo = f"{host(registry.url)}/pp/fresh"
    r = pull(engine, repo, "1")
    assert r.status == 200 and r.error is None, r.raw
    ids = [d["digest"].split(":")[1][:12] for d in image.doc["layers"]]    # pull ids are blob digests
    assert set(r.layer_ids()) == set(ids)
    for lid in ids:
        seen = r.statuses(lid)
        assert seen[0] == "Pulling fs layer" and seen[-1] == "Pull complete", seen
        order = ["Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Download complete",
                 "Extracting", "Pull complete"]
        assert [s for s in order if s in seen] == seen, seen
        downloading = [ev for ev in r.events if ev.get("id") == lid and ev["status"] == "Downloading"]
        assert downloading[-1]["progressDetail"]["total"] == next(
            d["size"] for d in image.doc["layers"] if d["digest"].split(":")[1].startswith(lid))
    config = json.loads(image.blobs[image.doc["config"]["digest"]])
    info = inspect(engine, f"{repo}:1")
    assert info["Id"] == image.doc["config"]["digest"]
    assert info["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
    assert info["Descriptor"]["digest"] == image.digest
    assert info["RepoDigests"] == [f"{repo}@{image.digest}"]
    files = {p.name for d in _layers_dir(engine, f"{repo}:1") for p in d.iterdir()}
    assert {"file0.txt", "file1.txt", "file2.txt"} <= files
    # pushed elsewhere, the pulled image keeps its manifest digest (stored byte for byte)
    tag(engine, f"{repo}:1", f"{host(registry.url)}/pp/copy", "2")
    r = push(engine, f"{host(registry.url)}/pp/copy", "2")
    assert r.error is None and r.aux()["Digest"] == image.digest


def test_pull_of_plain_zstd_and_multi_member_gzip_layers(engine, registry: Registry) -> None:
    """Every codec a layer may come in goes through the same one-copy reading (`TeeReader` peeks
    the magic; the decompressor reads straight from the socket), and each is verified."""
    tars = [layer_tar({"plain.txt": b"p" * 70_000}), layer_tar({"zstd.txt": os.urandom(300_000)}),
            layer_tar({"multi.txt": b"m" * 200_000, "more.bin": os.urandom(100_000)})]
    zstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    blobs_in = [(tars[0], OCI_LAYER), (zstandard.ZstdCompressor().compress(tars[1]), zstd),
                (gzip.compress(tars[2][:100_000], mtime=0) + gzip.compress(tars[2][100_000:], mtime=0),
                 OCI_LAYER_GZ)]
    blobs = {digest_of(data): data for data, _ in blobs_in}
    config = json.dumps({"architecture": go_arch(), "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [digest_of(t) for t in tars]}}).encode()
    blobs[digest_of(config)] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
                           "layers": [{"mediaType": mt, "digest": digest_of(data), "size": len(data)}
                                      for data, mt in blobs_in]}).encode()
    registry.push_image("pp/codecs", Image(manifest, OCI_MANIFEST, blobs), tag="1")
    repo = f"{host(registry.url)}/pp/codecs"
    r = pull(engine, repo, "1")
    assert r.status == 200 and r.error is None, r.raw
    files = {p.name: p for d in _layers_dir(engine, f"{repo}:1") for p in d.iterdir()}
    assert files["plain.txt"].read_bytes() == b"p" * 70_000 and files["multi.txt"].stat().st_size == 200_000
    assert files["zstd.txt"].stat().st_size == 300_000 and files["more.bin"].stat().st_size == 100_000
    assert inspect(engine, f"{repo}:1")["RootFS"]["Layers"] == [digest_of(t) for t in tars]


def test_pull_by_digest(engine, registry: Registry) -> None:
    image = make_image("bydigest", layers=1, arch=go_arch())
    registry.push_image("pp/bydigest", image, tag="1")
    repo = f"{host(registry.url)}/pp/bydigest"
    r = pull(engine, repo, image.digest)                           # tag=sha256:...
    assert r.status == 200 and r.error is None, r.raw
    assert r.events[0] == {"status": "Pulling from pp/bydigest", "id": image.digest}
    assert r.statuses()[-1] == f"Status: Downloaded newer image for {repo}@{image.digest}"
    info = inspect(engine, f"{repo}@{image.digest}")
    assert info["Id"] == image.doc["config"]["digest"] and info["RepoTags"] == []
    assert info["RepoDigests"] == [f"{repo}@{image.digest}"]
    r = pull(engine, f"{repo}@{image.digest}", None)                # fromImage=repo@sha256:...
    assert r.status == 200 and r.statuses()[-1] == f"Status: Image is up to date for {repo}@{image.digest}"
    wrong = "sha256:" + "0" * 64
    r = pull(engine, repo, wrong)
    assert r.status == 404 and "not found" in r.message


def test_a_bare_name_pulls_every_tag(engine, registry: Registry) -> None:
    """`POST /images/create?fromImage=name` without a tag pulls all tags, as dockerd does (what
    `docker pull -a` sends): each tag's progress and digest, then one status for the repository."""
    one, two = make_image("alltags1", layers=1, arch=go_arch()), make_image("alltags2", layers=1, arch=go_arch())
    registry.push_image("pp/alltags", one, tag="a")
    registry.push_image("pp/alltags", two, tag="b")
    registry.push_manifest("pp/alltags", "c", two.manifest, two.media_type)
    repo = f"{host(registry.url)}/pp/alltags"
    r = pull(engine, repo, None)
    assert r.status == 200 and r.error is None, r.raw
    assert [ev for ev in r.events if ev.get("status", "").startswith("Pulling from")] == [
        {"status": "Pulling from pp/alltags", "id": t} for t in ("a", "b", "c")]
    assert [ev["status"] for ev in r.events if ev.get("status", "").startswith("Digest:")] == [
        f"Digest: {one.digest}", f"Digest: {two.digest}", f"Digest: {two.digest}"]
    assert r.events[-1] == {"status": f"Status: Downloaded newer image for {repo}"}
    for t, image in (("a", one), ("b", two), ("c", two)):
        assert inspect(engine, f"{repo}:{t}")["Id"] == image.doc["config"]["digest"]
    again = pull(engine, repo, None)
    assert again.events[-1] == {"status": f"Status: Image is up to date for {repo}"}
    missing = pull(engine, f"{host(registry.url)}/pp/notthere", None)
    assert missing.status == 404


def test_unknown_images_are_404_before_the_stream(engine, registry: Registry) -> None:
    repo = f"{host(registry.url)}/pp/missing"
    r = pull(engine, repo, "1")
    assert r.status == 404
    assert r.message.startswith(f"manifest for {repo}:1 not found: manifest unknown: manifest unknown")
    r = push(engine, f"{host(registry.url)}/pp/not-local", "1")
    assert r.status == 404
    assert r.message == f"An image does not exist locally with the tag: {host(registry.url)}/pp/not-local"
    r = pull(engine, "127.0.0.1:1/pp/unreachable", "1")          # worded as dockerd's Go errors are
    assert r.status == 500 and r.message == ('Get "http://127.0.0.1:1/v2/pp/unreachable/manifests/1": '
                                             "dial tcp 127.0.0.1:1: connect: connection refused"), r.message
    r = pull(engine, repo, "bad:tag")
    assert r.status == 400 and r.message == "invalid tag format"


def test_second_push_skips_layers_and_mounts_across_repositories(engine, registry: Registry) -> None:
    image = make_image("mount", layers=2, arch=go_arch())
    registry.push_image("pp/origin", image, tag="1")
    origin = f"{host(registry.url)}/pp/origin"
    assert pull(engine, origin, "1").error is None
    # the same registry, same repository: every blob is already there
    r = push(engine, origin, "1")
    assert r.error is None, r.raw
    ids = r.layer_ids()
    assert len(ids) == 2 and all(r.statuses(i) == ["Preparing", "Layer already exists"] for i in ids)
    assert r.aux()["Digest"] == image.digest
    # another repository of the same registry: mounted from where the engine got them
    other = f"{host(registry.url)}/pp/other"
    tag(engine, f"{origin}:1", other, "1")
    r = push(engine, other, "1")
    assert r.error is None, r.raw
    assert all(r.statuses(i) == ["Preparing", "Mounted from pp/origin"] for i in r.layer_ids())
    assert registry.client.head(f"/v2/pp/other/blobs/{image.doc['layers'][0]['digest']}").status_code == 200
    assert f"{other}@{image.digest}" in inspect(engine, f"{other}:1")["RepoDigests"]


def test_push_all_tags_of_a_repository(engine, registry: Registry) -> None:
    repo = f"{host(registry.url)}/pp/alltags"
    tag(engine, "busybox:latest", repo, "a")
    tag(engine, "busybox:latest", repo, "b")
    r = push(engine, repo, None)
    assert r.status == 200 and r.error is None, r.raw
    tags = [ev["aux"]["Tag"] for ev in r.events if "aux" in ev]
    assert tags == ["a", "b"]
    assert registry.client.get("/v2/pp/alltags/tags/list").json()["tags"] == ["a", "b"]


def _platform_images() -> tuple[Image, Image, Image]:
    other = "arm64" if go_arch() != "arm64" else "amd64"
    ours, theirs = make_image("ours", layers=1, arch=go_arch()), make_image("theirs", layers=1, arch=other)
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        theirs.descriptor(platform={"os": "linux", "architecture": other}),
        ours.descriptor(platform={"os": "linux", "architecture": go_arch()})]}
    index = Image(json.dumps(doc).encode(), "application/vnd.oci.image.index.v1+json")
    return index, ours, theirs


def test_multi_platform_index_resolves_to_the_daemon_platform(engine, registry: Registry) -> None:
    index, ours, theirs = _platform_images()
    for im in (ours, theirs):
        registry.push_image("pp/multi", im)
    registry.push_manifest("pp/multi", "1", index.manifest, index.media_type)
    repo = f"{host(registry.url)}/pp/multi"
    r = pull(engine, repo, "1")
    assert r.status == 200 and r.error is None, r.raw
    assert r.statuses()[-2] == f"Digest: {index.digest}"           # the digest the tag names
    info = inspect(engine, f"{repo}:1")
    assert info["Id"] == ours.doc["config"]["digest"] and info["Architecture"] == go_arch()
    assert info["Descriptor"]["digest"] == ours.digest
    assert info["RepoDigests"] == [f"{repo}@{index.digest}"]
    other = json.loads(theirs.blobs[theirs.doc["config"]["digest"]])["architecture"]
    r = pull(engine, repo, "1", platform=f"linux/{other}")
    assert r.error is None and inspect(engine, f"{repo}:1")["Architecture"] == other
    r = pull(engine, repo, "1", platform="linux/s390x")
    assert r.status == 404 and r.message == "no matching manifest for linux/s390x in the manifest list entries"


def test_docker_v2_manifests_and_duplicate_layers(engine, registry: Registry) -> None:
    image = make_image("v2s2", layers=1, docker=True, arch=go_arch())
    doc = image.doc
    doc["layers"] = doc["layers"] * 2                               # one blob used twice
    config = json.loads(image.blobs[doc["config"]["digest"]])
    config["rootfs"]["diff_ids"] *= 2
    cfg = json.dumps(config).encode()
    image.blobs = {k: v for k, v in image.blobs.items() if k != doc["config"]["digest"]}
    image.blobs[_digest(cfg)] = cfg
    doc["config"].update(digest=_digest(cfg), size=len(cfg))
    image.manifest = json.dumps(doc).encode()
    registry.push_image("pp/v2", image, tag="1")
    repo = f"{host(registry.url)}/pp/v2"
    r = pull(engine, repo, "1")
    assert r.status == 200 and r.error is None, r.raw
    assert r.layer_ids() == [doc["layers"][0]["digest"][7:19]]
    info = inspect(engine, f"{repo}:1")
    assert info["Descriptor"] == {"mediaType": image.media_type, "digest": image.digest}
    assert len(info["RootFS"]["Layers"]) == 2
    r = push(engine, f"{repo}", "1")
    assert r.error is None and r.aux()["Digest"] == image.digest


def test_pull_of_a_large_layer_streams(engine, registry: Registry) -> None:
    import gzip
    import io
    import tarfile
    payload = os.urandom(6 << 20) + b"x" * (6 << 20)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("big.bin")
        ti.size = len(payload)
        tar.addfile(ti, io.BytesIO(payload))
    layer = gzip.compress(buf.getvalue(), compresslevel=1)
    config = json.dumps({"architecture": go_arch(), "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [_digest(buf.getvalue())]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": _digest(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": _digest(layer), "size": len(layer)}]}).encode()
    registry.push_image("pp/large", Image(manifest, "application/vnd.oci.image.manifest.v1+json",
                                          {_digest(layer): layer, _digest(config): config}), tag="1")
    repo = f"{host(registry.url)}/pp/large"
    r = pull(engine, repo, "1")
    assert r.error is None, r.raw
    counts = [ev["progressDetail"]["current"] for ev in r.events if ev.get("status") == "Downloading"]
    assert counts == sorted(counts) and counts[-1] == len(layer)
    (big,) = [d / "big.bin" for d in _layers_dir(engine, f"{repo}:1") if (d / "big.bin").exists()]
    assert big.stat().st_size == len(payload)
    with open(big, "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(payload).digest()


def _big_image(seed: str, mb: int = 16) -> Image:
    import gzip
    import io
    import tarfile
    layers, diff_ids, blobs = [], [], {}
    for i in range(2):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = os.urandom(mb << 19) + seed.encode() * ((mb << 19) // len(seed))
            ti = tarfile.TarInfo(f"{seed}{i}.bin")
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        gz = gzip.compress(buf.getvalue(), compresslevel=1)
        blobs[_digest(gz)] = gz
        diff_ids.append(_digest(buf.getvalue()))
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _digest(gz),
                       "size": len(gz)})
    config = json.dumps({"architecture": go_arch(), "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    blobs[_digest(config)] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": _digest(config), "size": len(config)},
                           "layers": layers}).encode()
    return Image(manifest, "application/vnd.oci.image.manifest.v1+json", blobs)


def test_layers_move_in_parallel_both_ways(engine, registry: Registry, tmp_path: Path) -> None:
    """Pull and push move layers at once: a second layer is already moving before the first is
    through (Docker's stream shows it as interleaved per-layer progress)."""
    image = _big_image("parallel", mb=8)
    registry.push_image("pp/parallel", image, tag="1")
    repo = f"{host(registry.url)}/pp/parallel"
    r = pull(engine, repo, "1")
    assert r.status == 200 and r.error is None, r.raw
    first_done = next(n for n, ev in enumerate(r.events) if ev.get("status") == "Download complete")
    moving = {ev["id"] for ev in r.events[:first_done] if ev.get("status") == "Downloading"}
    assert len(moving) == 2, r.events[:first_done]
    gen = make_registry(tmp_path / "other")              # an empty registry: every layer is uploaded
    other = next(gen)
    try:
        target = f"{host(other.url)}/pp/parallel"
        tag(engine, f"{repo}:1", target, "1")
        r = push(engine, target, "1")
        assert r.status == 200 and r.error is None, r.raw
        first_pushed = next(n for n, ev in enumerate(r.events) if ev.get("status") == "Pushed")
        moving = {ev["id"] for ev in r.events[:first_pushed] if ev.get("status") == "Pushing"}
        assert len(moving) == 2, r.events[:first_pushed]
    finally:
        gen.close()


def test_client_going_away_mid_pull_leaves_a_clean_engine(engine, registry: Registry) -> None:
    image = _big_image("gone")
    registry.push_image("pp/gone", image, tag="1")
    repo = f"{host(registry.url)}/pp/gone"
    with engine.api.stream("POST", "/images/create", params={"fromImage": repo, "tag": "1"}) as r:
        assert r.status_code == 200
        first = next(r.iter_lines())
        assert json.loads(first) == {"status": "Pulling from pp/gone", "id": "1"}
    # the connection is gone mid-transfer: nothing is registered, and the next pull is whole
    assert inspect(engine, f"{repo}:1") is None
    assert_no_unpack_left(engine)
    again = pull(engine, repo, "1")
    assert again.status == 200 and again.error is None, again.raw
    assert inspect(engine, f"{repo}:1")["Id"] == image.doc["config"]["digest"]
    assert engine.api.get("/_ping").status_code == 200


def test_push_to_an_unreachable_registry_fails_in_stream(engine) -> None:
    tag(engine, "busybox:latest", "127.0.0.1:1/pp/nowhere", "1")
    r = push(engine, "127.0.0.1:1/pp/nowhere", "1")
    assert r.status == 200 and r.events[0] == {"status": "The push refers to repository [127.0.0.1:1/pp/nowhere]"}
    assert r.error and "dial tcp 127.0.0.1:1: connect: connection refused" in r.error
