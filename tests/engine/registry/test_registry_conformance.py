"""Our mirror of the OCI distribution-spec conformance suite, workflow by workflow.

The official suite is a Go program that cannot be fetched here; these tests make the same
requests and hold the replies to the same expectations (with every optional API on: blob and
manifest digest headers required, upload cancel, anonymous mount, tag parameters, referrers,
sha512, sparse manifests, empty blobs, large manifests), over real HTTP against a served
registry. Each data set runs push → list → head → pull → referrers → delete, as the suite does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from registry_support import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    Registry,
    digest_of,
    make_artifact,
    make_image,
    make_index,
)

REPO, REPO2 = "conformance/repo1", "conformance/repo2"
ACCEPT = [("Accept", OCI_INDEX), ("Accept", OCI_MANIFEST),     # several headers, merged
          ("Accept", f"{DOCKER_MANIFEST}, {DOCKER_LIST}")]


def loc(r: httpx.Response, **params: str) -> str:
    """The Location of a reply, as a URL relative to the registry, with extra query params."""
    location = r.headers["Location"]
    url = httpx.URL(location) if location.startswith("http") else httpx.URL("http://x" + location)
    return str(url.copy_merge_params(params).raw_path.decode())


# ---- blob push APIs, each as the suite drives it ---------------------------------------------

def push_post_only(reg: Registry, repo: str, data: bytes, d: str, bad: bool = False) -> None:
    r = reg.client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": d}, content=data,
                        headers={"Content-Type": "application/octet-stream"})
    if bad:
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
        return
    assert r.status_code == 201, r.text
    check_created(reg, r, d, data)


def push_post_put(reg: Registry, repo: str, data: bytes, d: str, bad: bool = False) -> None:
    r = reg.client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202 and r.headers["Location"]
    r = reg.client.put(loc(r, digest=d), content=data, headers={"Content-Type": "application/octet-stream"})
    if bad:
        assert r.status_code == 400, r.text
        return
    assert r.status_code == 201, r.text
    check_created(reg, r, d, data)


def push_stream(reg: Registry, repo: str, data: bytes, d: str, bad: bool = False) -> None:
    r = reg.client.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status_code == 202

    def body() -> Any:                        # chunked transfer encoding, no Content-Range
        for i in range(0, len(data), 700):
            yield data[i:i + 700]
    r = reg.client.patch(loc(r), content=body(), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, r.text
    assert r.headers["Range"] == f"0-{len(data) - 1}"
    r = reg.client.put(loc(r, digest=d), headers={"Content-Length": "0"})
    if bad:
        assert r.status_code == 400
        return
    assert r.status_code == 201, r.text
    check_created(reg, r, d, data)


def push_chunked(reg: Registry, repo: str, data: bytes, d: str, bad: bool = False, *,
                 put_last: bool = False, out_of_order: bool = False, chunk: int = 1024) -> None:
    r = reg.client.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status_code == 202
    location, last = loc(r), -1
    while last < len(data) - 1:
        if out_of_order:
            bad_start = last + 1 + chunk
            bad_start = 0 if bad_start >= len(data) else bad_start
            bad_end = min(bad_start + chunk, len(data)) - 1
            if bad_start == last + 1:       # nothing can be out of order for the last chunk
                bad_start, bad_end = 0, 0
            r = reg.client.patch(location, content=data[bad_start:bad_end + 1],
                                 headers={"Content-Range": f"{bad_start}-{bad_end}"})
            assert r.status_code == 416, r.text
            r = reg.client.get(location)
            assert r.status_code == 204
            assert r.headers["Range"] == f"0-{max(last, 0)}"
            location = loc(r)
        start, last = last + 1, min(last + chunk, len(data) - 1)
        headers = {"Content-Range": f"{start}-{last}", "Content-Type": "application/octet-stream"}
        if put_last and last == len(data) - 1:
            r = reg.client.put(loc(reg.client.get(location), digest=d), content=data[start:last + 1],
                               headers=headers)
            break
        r = reg.client.patch(location, content=data[start:last + 1], headers=headers)
        assert r.status_code == 202, r.text
        assert r.headers["Range"] == f"0-{last}"
        location = loc(r)
    else:
        r = reg.client.put(_q(location, digest=d), headers={"Content-Length": "0"})
    if bad:
        assert r.status_code == 400, r.text
        return
    assert r.status_code == 201, r.text
    check_created(reg, r, d, data)


def _q(location: str, **params: str) -> str:
    return location + ("&" if "?" in location else "?") + "&".join(f"{k}={v}" for k, v in params.items())


def check_created(reg: Registry, r: httpx.Response, d: str, data: bytes) -> None:
    assert r.headers["Docker-Content-Digest"] == d
    got = reg.client.get(loc(r))
    assert got.status_code == 200 and got.content == data


def check_blob(reg: Registry, repo: str, d: str, data: bytes) -> None:
    h = reg.client.head(f"/v2/{repo}/blobs/{d}")
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Length"] == str(len(data))
    assert h.headers["Docker-Content-Digest"] == d
    g = reg.client.get(f"/v2/{repo}/blobs/{d}")
    assert g.status_code == 200 and g.content == data
    assert g.headers["Content-Length"] == str(len(data)) and g.headers["Docker-Content-Digest"] == d


def delete_blob(reg: Registry, repo: str, d: str) -> None:
    assert reg.client.delete(f"/v2/{repo}/blobs/{d}").status_code == 202
    assert reg.client.head(f"/v2/{repo}/blobs/{d}").status_code == 404


PUSHERS: dict[str, Callable[..., None]] = {
    "post only": push_post_only, "post+put": push_post_put, "stream": push_stream,
    "chunked single": lambda *a, **k: push_chunked(*a, chunk=4096, **k),
    "chunked multi": push_chunked,
    "chunked multi and put chunk": lambda *a, **k: push_chunked(*a, put_last=True, **k),
    "chunked out-of-order": lambda *a, **k: push_chunked(*a, out_of_order=True, **k),
    "chunked out-of-order and put chunk":
        lambda *a, **k: push_chunked(*a, out_of_order=True, put_last=True, **k),
}


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
@pytest.mark.parametrize("api", list(PUSHERS))
def test_push_blob_apis(registry: Registry, api: str, algo: str) -> None:
    data = os.urandom(1024 * 3 - 5)
    d = digest_of(data, algo)
    PUSHERS[api](registry, REPO, data, d)
    check_blob(registry, REPO, d, data)
    delete_blob(registry, REPO, d)


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
@pytest.mark.parametrize("api", ["post only", "post+put", "chunked multi", "chunked multi and put chunk",
                                 "stream"])
def test_push_blob_bad_digest(registry: Registry, api: str, algo: str) -> None:
    data = os.urandom(1024 * 3 - 5)
    d = digest_of(data, algo)
    PUSHERS[api](registry, REPO, data + b"oh no", d, bad=True)
    assert registry.client.head(f"/v2/{REPO}/blobs/{d}").status_code == 404
    assert not any(registry.storage.uploads_dir.iterdir()), "a broken upload left a session"


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
@pytest.mark.parametrize("content", [b"", b"{}"], ids=["empty", "emptyJSON"])
def test_well_known_blobs(registry: Registry, content: bytes, algo: str) -> None:
    d = digest_of(content, algo)
    push_post_put(registry, REPO, content, d)
    check_blob(registry, REPO, d, content)
    delete_blob(registry, REPO, d)


def test_get_missing_blob(registry: Registry) -> None:
    r = registry.client.get(f"/v2/{REPO}/blobs/{digest_of(os.urandom(8))}")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_mount(registry: Registry, algo: str) -> None:
    data = os.urandom(512)
    d = digest_of(data, algo)
    push_post_put(registry, REPO2, data, d)
    r = registry.client.post(f"/v2/{REPO}/blobs/uploads/", params={"mount": d, "from": REPO2})
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == d
    check_created(registry, r, d, data)
    # anonymous mount: no `from`
    data2 = os.urandom(512)
    d2 = digest_of(data2, algo)
    push_post_put(registry, REPO2, data2, d2)
    r = registry.client.post(f"/v2/{REPO}/blobs/uploads/", params={"mount": d2})
    assert r.status_code == 201
    check_blob(registry, REPO, d2, data2)
    for repo in (REPO, REPO2):
        delete_blob(registry, repo, d)
        delete_blob(registry, repo, d2)


def test_mount_missing_falls_back_to_session(registry: Registry) -> None:
    data = os.urandom(512)
    d = digest_of(data)
    r = registry.client.post(f"/v2/{REPO}/blobs/uploads/", params={"mount": d, "from": REPO2})
    assert r.status_code == 202 and r.headers["Location"]
    r = registry.client.put(loc(r, digest=d), content=data)
    assert r.status_code == 201
    check_blob(registry, REPO, d, data)


def test_post_cancel(registry: Registry) -> None:
    r = registry.client.post(f"/v2/{REPO}/blobs/uploads/")
    location = loc(r)
    registry.client.patch(location, content=b"abc")
    assert registry.client.delete(location, headers={"Content-Length": "0"}).status_code == 204
    r = registry.client.get(location)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    assert not any(registry.storage.uploads_dir.iterdir())


RANGES = [("500-1499", 500, 1500), ("500-", 500, 2048), ("-500", 1548, 2048), ("2000-5000", 2000, 2048)]


@pytest.mark.parametrize("spec,start,end", RANGES)
def test_range_requests(registry: Registry, spec: str, start: int, end: int) -> None:
    data = os.urandom(2048)
    d = registry.push_blob(REPO, data)
    r = registry.client.get(f"/v2/{REPO}/blobs/{d}", headers={"Range": f"bytes={spec}"})
    assert r.status_code == 206 and r.content == data[start:end]
    assert r.headers["Content-Length"] == str(end - start)
    assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/2048"


@pytest.mark.parametrize("spec", ["500-0", "5000-10000"])
def test_range_unsatisfiable(registry: Registry, spec: str) -> None:
    d = registry.push_blob(REPO, os.urandom(2048))
    r = registry.client.get(f"/v2/{REPO}/blobs/{d}", headers={"Range": f"bytes={spec}"})
    assert r.status_code == 416


# ---- data sets: push, list, head, pull, referrers, delete --------------------------------------

@dataclass
class DataSet:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: list[tuple[str, bytes, str]] = field(default_factory=list)   # digest, body, media type
    tags: dict[str, str] = field(default_factory=dict)
    referrers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tag_param: bool = False

    def add(self, image: Image, tag: str | None = None, blobs: bool = True) -> Image:
        if blobs:
            self.blobs.update(image.blobs)
        self.manifests.append((image.digest, image.manifest, image.media_type))
        if tag:
            self.tags[tag] = image.digest
        doc = image.doc
        if "subject" in doc:
            at = doc.get("artifactType") or doc.get("config", {}).get("mediaType")
            desc = {"mediaType": image.media_type, "digest": image.digest, "size": len(image.manifest),
                    "artifactType": at, "annotations": doc.get("annotations")}
            self.referrers.setdefault(doc["subject"]["digest"], []).append(desc)
        return image


def _image_sets() -> dict[str, Callable[[], DataSet]]:
    def single(**kw: Any) -> Callable[[], DataSet]:
        def build() -> DataSet:
            ds = DataSet()
            ds.add(make_image("img", **kw), tag="image")
            return ds
        return build

    def index(docker: bool = False, nested: bool = False, empty: bool = False,
              algo: str = "sha256", tag_param: bool = False) -> Callable[[], DataSet]:
        def build() -> DataSet:
            ds = DataSet(tag_param=tag_param)
            tops = []
            for _ in range(2 if nested else 1):
                ims = [] if empty else [ds.add(make_image(a, docker=docker, arch=a, algo=algo))
                                        for a in ("amd64", "arm64")]
                tops.append(ds.add(make_index(ims, docker=docker)))
            top = tops[0]
            if nested:
                top = ds.add(make_index(tops))
            if algo == "sha256":
                ds.tags["index"] = top.digest
            if tag_param:
                for i, (dig, _, _) in enumerate(ds.manifests):
                    ds.tags[f"tag-param-{i}"] = dig
            return ds
        return build

    def subject(with_index: bool = False, missing: bool = False) -> Callable[[], DataSet]:
        def build() -> DataSet:
            ds = DataSet()
            subj = make_image("subject")
            if with_index:
                subj = make_index([ds.add(make_image("s1"))])
            if not missing:
                ds.add(subj, tag="image")
            ds.add(make_artifact(subj, None, config_type="application/vnd.oci.image.config.v1+json"))
            ds.add(make_artifact(subj, "application/vnd.example.sig"), tag="tagged-artifact1")
            ds.add(make_artifact(subj, "application/vnd.example.sbom"), tag="tagged-artifact2")
            return ds
        return build

    def sparse() -> DataSet:
        ds = DataSet()
        im = make_image("sparse")
        first_layer = im.doc["layers"][0]["digest"]
        ds.blobs.update({k: v for k, v in im.blobs.items() if k != first_layer})
        ds.add(im, tag="sparse-image", blobs=False)
        other = ds.add(make_image("other"))
        missing = Image(os.urandom(1024), OCI_MANIFEST)
        ds.add(make_index([other, missing]), tag="sparse-index")
        ds.manifests = [m for m in ds.manifests if m[0] != missing.digest]
        return ds

    def nondistributable() -> DataSet:
        ds = DataSet()
        im = make_image("nd", layers=1)
        doc = im.doc
        foreign = digest_of(os.urandom(256))
        doc["layers"].insert(0, {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                                 "digest": foreign, "size": 123456,
                                 "urls": [f"https://store.example.com/blobs/sha256/{foreign[7:]}"]})
        ds.add(Image(json.dumps(doc).encode(), OCI_MANIFEST, im.blobs), tag="non-distributable-image")
        return ds

    def data_field() -> DataSet:
        ds = DataSet()
        im = make_image("data")
        doc = im.doc
        import base64
        cfg = im.blobs[doc["config"]["digest"]]
        doc["config"]["data"] = base64.b64encode(cfg).decode()
        ds.add(Image(json.dumps(doc).encode(), OCI_MANIFEST, im.blobs), tag="data-field")
        return ds

    def artifacts() -> DataSet:
        ds = DataSet()
        a = ds.add(make_artifact(None, "application/vnd.example.conf"), tag="artifact")
        ds.add(make_index([a], extra={"artifactType": "application/vnd.example.conf"}),
               tag="artifact-index")
        return ds

    return {
        "image": single(), "image-uncompressed": single(compress=False),
        "large-manifest": single(extra={"annotations": {f"large-annotation-{i}": "A" * 10000
                                                        for i in range(390)}}),
        "custom-fields": single(extra={"org.example.custom": {"x": [1, 2]}}),
        "no-layers": single(layers=0), "docker-v2s2": single(docker=True),
        "index": index(), "docker-list": index(docker=True), "nested-index": index(nested=True),
        "empty-index": index(empty=True), "sha512": index(algo="sha512"),
        "tag-param-sha256": index(tag_param=True), "tag-param-sha512": index(algo="sha512", tag_param=True),
        "artifacts-with-subject": subject(), "index-with-subject": subject(with_index=True),
        "missing-subject": subject(missing=True), "sparse": sparse,
        "non-distributable-layers": nondistributable, "data-field": data_field, "artifact": artifacts,
    }


DATA_SETS = _image_sets()


@pytest.mark.parametrize("name", list(DATA_SETS))
def test_data_set_workflows(registry: Registry, name: str) -> None:
    ds = DATA_SETS[name]()
    c = registry.client
    # push: blobs, then manifests by digest (with tag params where asked), then tags
    for d, data in ds.blobs.items():
        push_post_put(registry, REPO, data, d)
    for d, body, media_type in ds.manifests:
        params = [("tag", t) for t, td in ds.tags.items() if td == d] if ds.tag_param else []
        r = c.put(f"/v2/{REPO}/manifests/{d}", content=body, headers={"Content-Type": media_type},
                  params=params)
        assert r.status_code == 201, r.text
        assert r.headers["Docker-Content-Digest"] == d
        subject = json.loads(body).get("subject")
        if subject:
            assert r.headers["OCI-Subject"] == subject["digest"]
        if params:
            assert {t.strip() for v in r.headers.get_list("OCI-Tag") for t in v.split(",")} == \
                {t for _, t in params}
        g = c.get(loc(r), headers=ACCEPT)
        assert g.status_code == 200 and g.content == body and g.headers["Content-Type"] == media_type
    bodies = {d: (body, mt) for d, body, mt in ds.manifests}
    if not ds.tag_param:
        for tag, d in ds.tags.items():
            registry.push_manifest(REPO, tag, bodies[d][0], bodies[d][1])
    # list
    tags = c.get(f"/v2/{REPO}/tags/list").json()["tags"]
    assert set(ds.tags) <= set(tags) and tags == sorted(tags)
    if len(tags) >= 2:
        last = tags[len(tags) // 2 - 1]
        part = c.get(f"/v2/{REPO}/tags/list", params={"last": last}).json()["tags"]
        assert part == tags[len(tags) // 2:]
    # head and pull, by tag and by digest
    for ref, d in [*ds.tags.items(), *((d, d) for d in bodies)]:
        body, media_type = bodies[d]
        for method in ("HEAD", "GET"):
            r = c.request(method, f"/v2/{REPO}/manifests/{ref}", headers=ACCEPT)
            assert r.status_code == 200, (ref, r.text)
            assert r.headers["Content-Type"] == media_type
            assert r.headers["Content-Length"] == str(len(body))
            assert r.headers["Docker-Content-Digest"] == d
            assert r.content == (body if method == "GET" else b"")
    for d, data in ds.blobs.items():
        check_blob(registry, REPO, d, data)
    # referrers, all and filtered
    for subj, goals in ds.referrers.items():
        r = c.get(f"/v2/{REPO}/referrers/{subj}")
        assert r.status_code == 200 and r.headers["Content-Type"] == OCI_INDEX
        idx = r.json()
        assert idx["mediaType"] == OCI_INDEX and idx["schemaVersion"] == 2
        for goal in goals:
            assert any(_desc_matches(m, goal) for m in idx["manifests"]), goal
        for at in {g["artifactType"] for g in goals}:
            r = c.get(f"/v2/{REPO}/referrers/{subj}", params={"artifactType": at})
            assert "artifactType" in r.headers["OCI-Filters-Applied"]
            got = r.json()["manifests"]
            assert all(m["artifactType"] == at for m in got)
            assert all(any(_desc_matches(m, g) for m in got) for g in goals if g["artifactType"] == at)
    # delete: tags, manifests newest first, blobs; each gone at once
    for tag in ds.tags:
        assert c.delete(f"/v2/{REPO}/manifests/{tag}").status_code == 202
        assert c.head(f"/v2/{REPO}/manifests/{tag}", headers=ACCEPT).status_code == 404
    for d in reversed(list(bodies)):
        assert c.delete(f"/v2/{REPO}/manifests/{d}").status_code == 202
        assert c.head(f"/v2/{REPO}/manifests/{d}", headers=ACCEPT).status_code == 404
    for d in ds.blobs:
        delete_blob(registry, REPO, d)
    for subj in ds.referrers:
        assert c.get(f"/v2/{REPO}/referrers/{subj}").json()["manifests"] == []


def _desc_matches(got: dict[str, Any], goal: dict[str, Any]) -> bool:
    return (got["digest"] == goal["digest"] and got["mediaType"] == goal["mediaType"]
            and got["size"] == goal["size"] and got.get("artifactType") == goal["artifactType"]
            and all(got.get("annotations", {}).get(k) == v for k, v in (goal["annotations"] or {}).items()))


def test_bad_digest_manifest(registry: Registry) -> None:
    im = make_image("bad")
    for data in im.blobs.values():
        registry.push_blob(REPO, data)
    r = registry.client.put(f"/v2/{REPO}/manifests/{im.digest}", content=im.manifest + b"  ",
                            headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    r = registry.client.put(f"/v2/{REPO}/manifests/sha256:baddigeststring", content=im.manifest,
                            headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400
    r = registry.client.get(f"/v2/{REPO}/manifests/sha256:baddigeststring", headers=ACCEPT)
    assert r.status_code in (400, 404)


def test_missing_manifests(registry: Registry) -> None:
    for ref in (digest_of(os.urandom(1024)), "missing-" + os.urandom(8).hex()):
        r = registry.client.get(f"/v2/{REPO}/manifests/{ref}", headers=ACCEPT)
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_empty_repository(registry: Registry) -> None:
    r = registry.client.get(f"/v2/{REPO}/tags/list")
    assert r.status_code in (200, 404)
    r = registry.client.get(f"/v2/{REPO}/referrers/{digest_of(os.urandom(16))}")
    assert r.status_code == 200 and r.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                 "manifests": []}


def test_ping(registry: Registry) -> None:
    r = registry.client.get("/v2/")
    assert r.status_code == 200 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_catalog_pagination(registry: Registry) -> None:
    names = [f"cat/r{i}" for i in range(5)]
    for name in names:
        registry.push_image(name, make_image(name, layers=1), tag="t")
    assert registry.client.get("/v2/_catalog").json()["repositories"] == names
    r = registry.client.get("/v2/_catalog", params={"n": 2})
    assert r.json()["repositories"] == names[:2]
    assert r.headers["Link"] == '</v2/_catalog?n=2&last=cat%2Fr1>; rel="next"'
    r = registry.client.get("/v2/_catalog", params={"n": 2, "last": "cat/r3"})
    assert r.json()["repositories"] == names[4:] and "Link" not in r.headers


def test_docker_list_media_type_kept(registry: Registry) -> None:
    ds = DATA_SETS["docker-list"]()
    for data in ds.blobs.values():
        registry.push_blob(REPO, data)
    for d, body, media_type in ds.manifests:
        registry.push_manifest(REPO, d, body, media_type)
    top = ds.manifests[-1]
    r = registry.client.get(f"/v2/{REPO}/manifests/{top[0]}", headers={"Accept": DOCKER_LIST})
    assert r.headers["Content-Type"] == DOCKER_LIST and r.content == top[1]
    assert OCI_EMPTY  # the empty descriptor type is part of the artifact data sets
