"""Push and pull through the engine with peers nobody here wrote and with auth: Debian's
docker-registry (CNCF distribution), the real docker CLI driving our daemon, Bearer-token and Basic
auth, and a malicious registry whose blobs do not match their digests.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from registry_support import Registry, Served, make_image, make_registry
from test_pushpull_helpers import (
    assert_no_unpack_left,
    host,
    inspect,
    pull,
    push,
    registry_auth,
    rmi,
    start_distribution,
    tag,
)

from workbench.engine.registry.auth import Htpasswd, TokenAuth
from workbench.oci.image import go_arch

pytestmark = pytest.mark.usefixtures("busybox")
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def token_registry(tmp_path: Path, htpasswd: Path) -> Iterator[Registry]:
    yield from make_registry(tmp_path, auth=TokenAuth(b"t" * 32, users=Htpasswd(htpasswd)))


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[str]:
    url, proc = start_distribution(tmp_path)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def basic_distribution(tmp_path: Path, htpasswd: Path) -> Iterator[str]:
    url, proc = start_distribution(tmp_path, htpasswd)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_round_trip_through_docker_registry(engine, distribution: str) -> None:
    repo = f"{host(distribution)}/peer/busybox"
    tag(engine, "busybox:latest", repo, "1")
    r = push(engine, repo, "1")
    assert r.status == 200 and r.error is None, r.raw
    digest = r.aux()["Digest"]
    theirs = httpx.get(f"{distribution}/v2/peer/busybox/manifests/1",
                       headers={"Accept": inspect(engine, f"{repo}:1")["Descriptor"]["mediaType"]})
    assert theirs.headers["Docker-Content-Digest"] == digest == _digest(theirs.content)
    again = push(engine, repo, "1")
    assert all(again.statuses(i) == ["Preparing", "Layer already exists"] for i in again.layer_ids())
    image_id = inspect(engine, f"{repo}:1")["Id"]
    rmi(engine, f"{repo}:1")
    r = pull(engine, repo, "1")
    assert r.status == 200 and r.error is None, r.raw
    assert r.statuses()[-2] == f"Digest: {digest}"
    back = inspect(engine, f"{repo}:1")
    assert back["Id"] == image_id and f"{repo}@{digest}" in back["RepoDigests"]


def test_fresh_pull_from_docker_registry(engine, distribution: str) -> None:
    image = make_image("distribution", layers=2, docker=True, arch=go_arch())
    c = httpx.Client(base_url=distribution)
    for d, data in image.blobs.items():
        loc = c.post("/v2/peer/fresh/blobs/uploads/").headers["Location"]
        assert c.put(loc + ("&" if "?" in loc else "?") + f"digest={d}", content=data).status_code == 201
    assert c.put("/v2/peer/fresh/manifests/1", content=image.manifest,
                 headers={"Content-Type": image.media_type}).status_code == 201
    repo = f"{host(distribution)}/peer/fresh"
    r = pull(engine, repo, "1")
    assert r.status == 200 and r.error is None, r.raw
    assert inspect(engine, f"{repo}:1")["Descriptor"]["digest"] == image.digest
    missing = pull(engine, f"{host(distribution)}/peer/none", "1")
    assert missing.status == 404
    assert missing.message == f"manifest for {host(distribution)}/peer/none:1 not found: " \
                              f"manifest unknown: manifest unknown"


def test_basic_auth_against_docker_registry(engine, basic_distribution: str) -> None:
    repo = f"{host(basic_distribution)}/private/busybox"
    tag(engine, "busybox:latest", repo, "1")
    r = push(engine, repo, "1")                                   # errors after the 200 go in-stream
    assert r.status == 200 and r.error and "no basic auth credentials" in r.error
    r = push(engine, repo, "1", auth=registry_auth("alice", "wrong"))
    assert r.status == 200 and r.error and "unauthorized" in r.error.lower()
    good = registry_auth("alice", "s3cret", host(basic_distribution))
    r = push(engine, repo, "1", auth=good)
    assert r.error is None, r.raw
    rmi(engine, f"{repo}:1")
    r = pull(engine, repo, "1", auth=registry_auth("alice", "wrong"))
    assert r.status == 500 and "unauthorized" in r.message.lower(), r.raw      # as dockerd 20.10 answers
    r = pull(engine, repo, "1", auth=good)
    assert r.status == 200 and r.error is None, r.raw


def test_token_auth_against_our_registry(engine, token_registry: Registry) -> None:
    image = make_image("token", layers=1, arch=go_arch())
    r = token_registry.client.get("/token", params={"service": "workbench-registry",
                                                    "scope": "repository:tok/app:pull,push"},
                                  auth=("alice", "s3cret"))
    token_registry.client.headers["Authorization"] = "Bearer " + r.json()["token"]
    token_registry.push_image("tok/app", image, tag="1")
    repo = f"{host(token_registry.url)}/tok/app"
    r = pull(engine, repo, "1")                                       # anonymous: refused before the stream
    assert r.status == 500 and "unauthorized" in r.message.lower(), r.raw      # dockerd's status, not 401
    r = pull(engine, repo, "1", auth=registry_auth("alice", "nope"))
    assert r.status == 500 and "unauthorized" in r.message.lower(), r.raw
    assert inspect(engine, f"{repo}:1") is None
    good = registry_auth("alice", "s3cret")
    r = pull(engine, repo, "1", auth=good)
    assert r.status == 200 and r.error is None, r.raw
    other = f"{host(token_registry.url)}/tok/copy"
    tag(engine, f"{repo}:1", other, "1")
    r = push(engine, other, "1", auth=good)                          # one token: push here, pull there
    assert r.error is None, r.raw
    assert all(r.statuses(i) == ["Preparing", "Mounted from tok/app"] for i in r.layer_ids())
    assert r.aux()["Digest"] == image.digest


# ---- a malicious registry --------------------------------------------------------------------

def test_a_denied_pull_reads_as_dockerd_words_it(engine) -> None:
    """A registry that answers 403 DENIED (Docker Hub does, for a private repository without the
    right login): 404 "pull access denied ... may require 'docker login'", as dockerd answers."""
    async def denied(request: web.Request) -> web.Response:
        return web.json_response({"errors": [{"code": "DENIED", "message": "requested access to the resource "
                                              "is denied"}]}, status=403)

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_route("*", "/v2/{name:.+}/manifests/{ref}", denied)
    served = Served(app)
    try:
        r = pull(engine, f"{host(served.url)}/secret/app", "1")
        assert r.status == 404, r.raw
        assert r.message.startswith(f"pull access denied for {host(served.url)}/secret/app, repository does not "
                                    "exist or may require 'docker login': ") and r.message.endswith(
                                    "denied: requested access to the resource is denied"), r.message
    finally:
        served.close()


def _layer(files: dict[str, bytes], level: int = 6) -> tuple[bytes, bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue(), gzip.compress(buf.getvalue(), compresslevel=level, mtime=0)


def _evil_app(manifest: bytes, blobs: dict[str, bytes]) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if tail == "":
            return web.json_response({})
        if "/manifests/" in tail:
            return web.Response(body=manifest, content_type="application/vnd.oci.image.manifest.v1+json")
        digest = tail.rsplit("/", 1)[-1]
        if "/blobs/" in tail and digest in blobs:
            return web.Response(body=blobs[digest], content_type="application/octet-stream")
        return web.json_response({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]}, status=404)

    app = web.Application()
    app.router.add_route("*", "/v2/{tail:.*}", handle)
    return app


@pytest.mark.parametrize("lie", ["other-content", "other-compression", "not-gzip", "truncated", "too-long"])
def test_digest_mismatch_from_a_malicious_registry(engine, lie: str) -> None:
    tar, honest = _layer({"etc/motd": f"honest {lie}\n".encode()})
    served_layer = {
        "other-content": _layer({"etc/motd": b"evil\n"})[1],
        "other-compression": gzip.compress(tar, compresslevel=1, mtime=0),   # same diff ID, other blob
        "not-gzip": b"\x00" * 2048,
        "truncated": honest[: len(honest) // 2],
        "too-long": honest + b"\x00" * 512,
    }[lie]
    size = len(honest) if lie == "too-long" else len(served_layer)   # the manifest's size matches the lie
    config = json.dumps({"architecture": go_arch(), "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [_digest(tar)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": _digest(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": _digest(honest), "size": size}]}).encode()
    served = Served(_evil_app(manifest, {_digest(config): config, _digest(honest): served_layer}))
    try:
        repo = f"{host(served.url)}/evil/app"
        r = pull(engine, repo, "1")
        assert r.status == 200 and r.error, r.raw
        assert "verification failed" in r.error or "failed to register layer" in r.error, r.error
        assert "Pull complete" not in r.statuses()
        assert inspect(engine, f"{repo}:1") is None and inspect(engine, _digest(config)) is None
        assert_no_unpack_left(engine)
    finally:
        served.close()


def test_a_lying_diff_id_in_a_later_layer_fails_the_pull_and_keeps_nothing(engine) -> None:
    # layers unpack in parallel and become snapshots in chain order: the third one's diff ID
    # check fails after the others may be committed; no image appears, no unpacked layer stays
    layers = [_layer({f"l{i}/big": os.urandom(300_000) + bytes(i)}) for i in range(3)]
    diff_ids = [_digest(tar) for tar, _ in layers]
    diff_ids[2] = _digest(b"something else")
    config = json.dumps({"architecture": go_arch(), "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": _digest(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": _digest(gz), "size": len(gz)} for _, gz in layers]}).encode()
    blobs = {_digest(gz): gz for _, gz in layers} | {_digest(config): config}
    served = Served(_evil_app(manifest, blobs))
    try:
        repo = f"{host(served.url)}/evil/diffid"
        r = pull(engine, repo, "1")
        assert r.status == 200 and r.error and "diff ID mismatch" in r.error, r.raw
        assert inspect(engine, f"{repo}:1") is None and inspect(engine, _digest(config)) is None
        assert_no_unpack_left(engine)
        assert engine.api.get("/_ping").status_code == 200
    finally:
        served.close()


def test_config_digest_mismatch_is_refused_before_the_stream(engine) -> None:
    tar, layer = _layer({"a": b"a"})
    config = json.dumps({"architecture": go_arch(), "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [_digest(tar)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                                          "digest": _digest(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": _digest(layer), "size": len(layer)}]}).encode()
    served = Served(_evil_app(manifest, {_digest(config): config.replace(b"linux", b"LINUX"),
                                         _digest(layer): layer}))
    try:
        r = pull(engine, f"{host(served.url)}/evil/config", "1")
        assert r.status == 400 and "verification failed" in r.message, r.raw
        assert inspect(engine, _digest(config)) is None
    finally:
        served.close()


# ---- the docker CLI, through our daemon ------------------------------------------------------

@pytest.fixture
def docker_cli(engine, tmp_path: Path):
    if not Path(DOCKER).exists():
        pytest.fail(f"the docker CLI is required at {DOCKER}")
    cfg = tmp_path / "dockercfg"
    cfg.mkdir()

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([DOCKER, "-H", engine.host, *args], capture_output=True, text=True, timeout=180,
                           stdin=subprocess.DEVNULL,
                           env={"DOCKER_CONFIG": str(cfg), "PATH": "/usr/bin:/bin:/usr/local/bin"})
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p
    return run


@pytest.mark.parametrize("peer", ["ours", "distribution"])
def test_docker_cli_push_and_pull_through_our_daemon(engine, docker_cli, tmp_path: Path, peer: str) -> None:
    if peer == "ours":
        gen = make_registry(tmp_path)
        url, stop = next(gen).url, gen.close
    else:
        url, proc = start_distribution(tmp_path)
        stop = proc.terminate
    try:
        name = f"{host(url)}/cli/busybox:1"
        docker_cli("tag", "busybox:latest", name)
        out = docker_cli("push", name).stdout
        assert f"The push refers to repository [{host(url)}/cli/busybox]" in out
        assert "Pushed" in out and "1: digest: sha256:" in out
        digest = out.split("digest: ", 1)[1].split()[0]
        docker_cli("rmi", name)
        out = docker_cli("pull", name).stdout
        assert f"Digest: {digest}" in out and f"Status: Downloaded newer image for {name}" in out
        listing = docker_cli("images", "--digests", "--format", "{{.Repository}} {{.Digest}}").stdout
        assert f"{host(url)}/cli/busybox {digest}" in listing
        bad = docker_cli("pull", f"{host(url)}/cli/nothing:1", check=False)
        assert bad.returncode != 0 and "not found" in bad.stderr
    finally:
        stop()


def test_docker_login_through_our_daemon(engine, docker_cli, basic_distribution: str) -> None:
    h = host(basic_distribution)
    docker_cli("tag", "busybox:latest", f"{h}/cli/login:1")
    # before a login: the pull fails and says why. A 401 from the daemon would make the CLI ask
    # for a username on stdin (a script would hang there); dockerd answers 500, and so do we
    bad = docker_cli("pull", f"{h}/cli/login:1", check=False)
    assert bad.returncode != 0 and "no basic auth credentials" in bad.stderr and "Username" not in bad.stdout
    bad = docker_cli("login", "-u", "alice", "-p", "wrong", h, check=False)
    assert bad.returncode != 0 and "401" in bad.stderr
    out = docker_cli("login", "-u", "alice", "-p", "s3cret", h).stdout
    assert "Login Succeeded" in out
    assert "1: digest: sha256:" in docker_cli("push", f"{h}/cli/login:1").stdout


def test_concurrent_pulls_of_one_image(engine, distribution: str) -> None:
    image = make_image("concurrent", layers=3, arch=go_arch())
    c = httpx.Client(base_url=distribution)
    for d, data in image.blobs.items():
        loc = c.post("/v2/peer/conc/blobs/uploads/").headers["Location"]
        c.put(loc + ("&" if "?" in loc else "?") + f"digest={d}", content=data)
    c.put("/v2/peer/conc/manifests/1", content=image.manifest, headers={"Content-Type": image.media_type})
    repo = f"{host(distribution)}/peer/conc"

    async def both() -> list[int]:
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(engine.sock)),
                                     base_url="http://d", timeout=120) as api:
            async def one() -> int:
                r = await api.post("/images/create", params={"fromImage": repo, "tag": "1"})
                assert "error" not in r.text, r.text
                return r.status_code
            return await asyncio.gather(one(), one(), one())

    assert asyncio.run(both()) == [200, 200, 200]
    assert inspect(engine, f"{repo}:1")["Id"] == image.doc["config"]["digest"]
