"""The sharp edges of issue 4, each on its own, plus errors, names and concurrency."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import socket

import pytest
from registry_support import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Registry,
    digest_of,
    make_artifact,
    make_image,
    make_index,
)

R = "edge/repo"


def test_out_of_order_chunk_gets_416_with_inclusive_range(registry: Registry) -> None:
    c = registry.client
    r = c.post(f"/v2/{R}/blobs/uploads/")
    location = r.headers["Location"]
    assert location.startswith("/v2/")                      # relative Location
    r = c.patch(location, content=b"a" * 10, headers={"Content-Range": "0-9"})
    assert r.status_code == 202 and r.headers["Range"] == "0-9"
    r = c.patch(location, content=b"b" * 10, headers={"Content-Range": "20-29"})
    assert r.status_code == 416
    assert r.headers["Range"] == "0-9" and r.headers["Location"]
    assert r.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    r = c.patch(location, content=b"b" * 5, headers={"Content-Range": "10-19"})   # length ≠ range
    assert r.status_code == 400
    r = c.get(location)
    assert r.status_code == 204 and r.headers["Range"] == "0-9"   # the failed chunks left nothing


def test_streamed_patch_and_last_chunk_on_put(registry: Registry) -> None:
    c = registry.client
    data = os.urandom(300_000)
    d = digest_of(data)
    r = c.post(f"/v2/{R}/blobs/uploads/")
    r = c.patch(r.headers["Location"], content=iter([data[:100_000], data[100_000:200_000]]))
    assert r.status_code == 202 and r.headers["Range"] == "0-199999"
    r = c.put(r.headers["Location"] + f"?digest={d}", content=data[200_000:],
              headers={"Content-Range": "200000-299999"})
    assert r.status_code == 201 and r.headers["Location"] == f"/v2/{R}/blobs/{d}"
    assert c.get(f"/v2/{R}/blobs/{d}").content == data


@pytest.mark.parametrize("path", [
    f"/v2/{R}/blobs/sha256:123", f"/v2/{R}/blobs/md5:abc", f"/v2/{R}/blobs/nodigest",
    f"/v2/{R}/referrers/sha256:XYZ", f"/v2/{R}/manifests/sha256:short",
])
def test_malformed_digest_is_400(registry: Registry, path: str) -> None:
    r = registry.client.get(path)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_malformed_digest_on_upload_is_400(registry: Registry) -> None:
    c = registry.client
    assert c.post(f"/v2/{R}/blobs/uploads/?digest=sha256:nope", content=b"x").status_code == 400
    assert c.post(f"/v2/{R}/blobs/uploads/?mount=bogus&from=other").status_code == 400
    r = c.post(f"/v2/{R}/blobs/uploads/")
    r = c.put(r.headers["Location"] + "?digest=sha256:nope", content=b"x")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    r = c.post(f"/v2/{R}/blobs/uploads/")
    assert c.put(r.headers["Location"], content=b"x").status_code == 400     # no digest at all


@pytest.mark.parametrize("name", ["..%2Fx", "../x", "UPPER/case", "a" * 256, "a//b", "-x", "x/"])
def test_bad_names(registry: Registry, name: str) -> None:
    # a raw socket, so no client library normalises the path first
    with socket.create_connection(("127.0.0.1", registry.served.port)) as s:
        s.sendall(f"GET /v2/{name}/tags/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"NAME_INVALID" in body


def test_manifest_byte_for_byte_and_head_matches_get(registry: Registry) -> None:
    im = make_image("bytes")                        # indented JSON: not canonical
    registry.push_image(R, im, tag="t")
    for ref in ("t", im.digest):
        g = registry.client.get(f"/v2/{R}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        h = registry.client.head(f"/v2/{R}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert g.content == im.manifest
        for k in ("Content-Type", "Content-Length", "Docker-Content-Digest"):
            assert g.headers[k] == h.headers[k]
        assert h.content == b""


def test_content_type_as_pushed(registry: Registry) -> None:
    im = make_image("docker", docker=True)
    registry.push_image(R, im, tag="d")
    r = registry.client.get(f"/v2/{R}/manifests/d", headers={"Accept": DOCKER_MANIFEST})
    assert r.headers["Content-Type"] == DOCKER_MANIFEST


def test_accept_headers_merged_and_index_fallback(registry: Registry) -> None:
    amd, arm = make_image("amd", docker=True), make_image("arm", docker=True, arch="arm64")
    registry.push_image(R, arm)
    registry.push_image(R, amd)
    idx = make_index([amd, arm], docker=True)
    registry.push_manifest(R, "multi", idx.manifest, DOCKER_LIST)
    c = registry.client
    # list accepted through the second of two Accept headers
    r = c.get(f"/v2/{R}/manifests/multi", headers=[("Accept", DOCKER_MANIFEST), ("Accept", DOCKER_LIST)])
    assert r.headers["Content-Type"] == DOCKER_LIST
    # an old client that reads only schema 2 manifests gets the linux/amd64 one
    r = c.get(f"/v2/{R}/manifests/multi", headers={"Accept": DOCKER_MANIFEST})
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == amd.digest
    # a docker schema 2 manifest is served whatever the client accepts (as CNCF distribution does);
    # an OCI manifest only to a client that lists it
    registry.push_manifest(R, "single", amd.manifest, DOCKER_MANIFEST)
    r = c.get(f"/v2/{R}/manifests/single", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200 and r.headers["Content-Type"] == DOCKER_MANIFEST
    oci = make_image("ocionly")
    registry.push_image(R, oci, tag="oci")
    r = c.get(f"/v2/{R}/manifests/oci", headers={"Accept": DOCKER_MANIFEST})
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    # no Accept, */*, or by digest: served as stored
    for headers in ({}, {"Accept": "*/*"}):
        assert c.get(f"/v2/{R}/manifests/oci", headers=headers).status_code == 200
    assert c.get(f"/v2/{R}/manifests/{oci.digest}", headers={"Accept": DOCKER_MANIFEST}).status_code == 200
    # an index without a linux/amd64 entry has nothing to fall back to
    armonly = make_index([arm], docker=True, extra={"manifests": [
        arm.descriptor(platform={"os": "linux", "architecture": "arm64"})]})
    registry.push_manifest(R, "armonly", armonly.manifest, DOCKER_LIST)
    r = c.get(f"/v2/{R}/manifests/armonly", headers={"Accept": DOCKER_MANIFEST})
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    # the ETag is the digest: asked again with If-None-Match, 304 and no body
    r = c.get(f"/v2/{R}/manifests/oci", headers={"If-None-Match": f'"{oci.digest}"'})
    assert r.status_code == 304 and r.content == b"" and r.headers["Docker-Content-Digest"] == oci.digest
    assert c.get(f"/v2/{R}/manifests/oci", headers={"If-None-Match": '"sha256:other"'}).status_code == 200


def test_tags_pagination(registry: Registry) -> None:
    im = make_image("tags", layers=1)
    registry.push_image(R, im, tag="a")
    for t in ("b", "c", "d", "e"):
        registry.push_manifest(R, t, im.manifest)
    c = registry.client
    assert c.get(f"/v2/{R}/tags/list").json() == {"name": R, "tags": ["a", "b", "c", "d", "e"]}
    assert c.get(f"/v2/{R}/tags/list?n=0").json()["tags"] == []
    assert c.get(f"/v2/{R}/tags/list?last=b").json()["tags"] == ["c", "d", "e"]     # last is exclusive
    r = c.get(f"/v2/{R}/tags/list?n=2&last=a")
    assert r.json()["tags"] == ["b", "c"]
    assert r.headers["Link"] == f'</v2/{R}/tags/list?n=2&last=c>; rel="next"'
    assert "Link" not in c.get(f"/v2/{R}/tags/list?n=2&last=c").headers
    assert c.get(f"/v2/{R}/tags/list?n=-1").status_code == 400
    r = c.get("/v2/never/pushed/tags/list")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_referrers_never_404_and_artifact_type_from_config(registry: Registry) -> None:
    c = registry.client
    for repo in (R, "not/a/repo/yet"):
        r = c.get(f"/v2/{repo}/referrers/{digest_of(b'nothing')}")
        assert r.status_code == 200 and r.json()["manifests"] == []
    subj = make_image("subj")
    art = make_artifact(subj, None, config_type="application/vnd.example.config+json")
    for blob in art.blobs.values():
        registry.push_blob(R, blob)
    r = registry.push_manifest(R, art.digest, art.manifest)
    assert r.headers["OCI-Subject"] == subj.digest
    got = c.get(f"/v2/{R}/referrers/{subj.digest}").json()["manifests"]
    assert got == [{"mediaType": OCI_MANIFEST, "digest": art.digest, "size": len(art.manifest),
                    "artifactType": "application/vnd.example.config+json",
                    "annotations": art.doc["annotations"]}]
    r = c.get(f"/v2/{R}/referrers/{subj.digest}?artifactType=other/type")
    assert r.json()["manifests"] == [] and r.headers["OCI-Filters-Applied"] == "artifactType"
    assert r.headers["Content-Type"] == OCI_INDEX


def test_mount_fallbacks(registry: Registry) -> None:
    c = registry.client
    d = registry.push_blob("other/repo", b"mount me")
    # from a repository that does not have it, from a bad name, of a blob nobody has: 202 sessions
    for params in ({"mount": d, "from": "third/repo"}, {"mount": d, "from": "BAD NAME"},
                   {"mount": digest_of(b"nobody"), "from": "other/repo"}):
        r = c.post(f"/v2/{R}/blobs/uploads/", params=params)
        assert r.status_code == 202 and "/blobs/uploads/" in r.headers["Location"], params


def test_concurrent_uploads_of_the_same_blob(registry: Registry) -> None:
    data = os.urandom(2 << 20)
    d = digest_of(data)

    def push(i: int) -> int:
        import httpx
        with httpx.Client(base_url=registry.url, timeout=60) as c:
            r = c.post(f"/v2/{R}{i % 3}/blobs/uploads/")
            loc = r.headers["Location"]
            for off in range(0, len(data), 1 << 19):
                part = data[off:off + (1 << 19)]
                r = c.patch(loc, content=part, headers={"Content-Range": f"{off}-{off + len(part) - 1}"})
                loc = r.headers["Location"]
            return c.put(f"{loc}?digest={d}").status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(push, range(8))) == [201] * 8
    blob = registry.storage.blobs_dir / "sha256" / d[7:]
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == d[7:]
    assert not any(registry.storage.uploads_dir.iterdir())
    for i in range(3):
        assert registry.client.get(f"/v2/{R}{i}/blobs/{d}").content == data


def test_broken_upload_leaves_nothing(registry: Registry) -> None:
    c = registry.client
    data = os.urandom(3 << 20)
    r = c.post(f"/v2/{R}/blobs/uploads/")
    loc = r.headers["Location"]
    # a client that dies 2.5 MB into a 3 MB chunk (the server has written 2 MB of it by then)
    with socket.create_connection(("127.0.0.1", registry.served.port)) as s:
        s.sendall(f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n"
                  f"Content-Range: 0-{len(data) - 1}\r\n\r\n".encode() + data[:5 << 19])
    # the dead request's bytes are cut away: the whole chunk can be sent again from offset 0
    # (this PATCH waits for the dead one to let go of the session)
    r = c.patch(loc, content=data, headers={"Content-Range": f"0-{len(data) - 1}"})
    assert r.status_code == 202 and r.headers["Range"] == f"0-{len(data) - 1}"
    # a wrong digest at the end: the session and its bytes are gone, no blob appears
    r = c.put(f"{loc}?digest={digest_of(b'something else')}")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert c.get(loc).status_code == 404
    assert not any(registry.storage.uploads_dir.iterdir())
    assert not (registry.storage.blobs_dir / "sha256" / digest_of(data)[7:]).exists()


def test_upload_session_belongs_to_its_repository(registry: Registry) -> None:
    r = registry.client.post(f"/v2/{R}/blobs/uploads/")
    uid = r.headers["Docker-Upload-UUID"]
    r = registry.client.get(f"/v2/other/blobs/uploads/{uid}")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_invalid_manifests(registry: Registry) -> None:
    c = registry.client
    for body, ctype in [(b"not json", OCI_MANIFEST), (b"[]", OCI_MANIFEST),
                        (b'{"schemaVersion": 1}', "application/json"),
                        (b'{"schemaVersion": 2, "mediaType": "%s"}' % OCI_INDEX.encode(), OCI_MANIFEST),
                        (b'{"schemaVersion": 2, "config": {"digest": "bad"}, "layers": []}', OCI_MANIFEST)]:
        r = c.put(f"/v2/{R}/manifests/t", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "MANIFEST_INVALID", body
    r = c.put(f"/v2/{R}/manifests/bad%20tag!", content=b"{}")
    assert r.status_code == 400


def test_strict_references(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from registry_support import make_registry
    gen = make_registry(tmp_path, strict_references=True)
    reg = next(gen)
    try:
        im = make_image("strict")
        r = reg.client.put(f"/v2/{R}/manifests/t", content=im.manifest,
                           headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
        reg.push_image(R, im, tag="t")
    finally:
        gen.close()


def test_unknown_endpoints_answer_with_a_code_from_the_spec(registry: Registry) -> None:
    """The spec's error codes are a closed list: an endpoint the registry does not have is 404
    UNSUPPORTED, not a code of our own."""
    for path in ("/v2/app/x/nothing-here", "/v2/app/x/blobs", "/v2/_catalog/extra"):
        r = registry.client.get(path)
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "UNSUPPORTED", (path, r.text)


def test_an_oversized_manifest_is_413_size_invalid(registry: Registry) -> None:
    """Manifests are capped (8 MiB, as the server reads them into memory): a bigger one is refused
    with 413 SIZE_INVALID, stored nowhere, and the registry keeps serving."""
    from workbench.engine.registry import MAX_MANIFEST
    big = b'{"schemaVersion":2,"annotations":{"x":"' + b"x" * (MAX_MANIFEST + 1) + b'"}}'
    r = registry.client.put(f"/v2/{R}/manifests/huge", content=big,
                            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 413 and r.json()["errors"][0]["code"] == "SIZE_INVALID"
    assert registry.client.get(f"/v2/{R}/manifests/huge").status_code == 404
    assert registry.client.get("/v2/").status_code == 200


def test_a_reference_that_is_no_tag_is_an_unknown_manifest(registry: Registry) -> None:
    """GET/HEAD/DELETE of `.INVALID_MANIFEST_NAME` is 404 MANIFEST_UNKNOWN (the OCI conformance
    suite's "nonexistent manifest" checks); pushing a manifest under it is 400 TAG_INVALID."""
    path = f"/v2/{R}/manifests/.INVALID_MANIFEST_NAME"
    r = registry.client.get(path)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert registry.client.head(path).status_code == 404
    assert registry.client.delete(path).status_code == 404
    image = make_image("notag", layers=1)
    for blob in image.blobs.values():
        registry.push_blob(R, blob)
    r = registry.client.put(path, content=image.manifest, headers={"Content-Type": image.media_type})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "TAG_INVALID"
