"""Blob downloads in the pull's worker threads (`registry.download`): the body read over http.client
from a real registry (sizes, errors, progress, abort), redirects to blob storage, 401 challenges
answered by the registry client, and a pull through an HTTP proxy (Debian's tinyproxy), which
reads blobs through httpx instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from registry_support import Registry, Served, make_image, make_registry
from test_pushpull_helpers import free_port, host, inspect, pull, registry_auth

from tests.conftest import own_engine
from tests.helpers import self_signed_tls
from workbench.engine.registry.auth import Htpasswd, TokenAuth
from workbench.engine.registry.client import Credentials, RegistryClient, RegistryRequestError
from workbench.engine.registry.download import (
    BlobBody,
    BlobRequest,
    Challenge,
    Connections,
    SizeMismatch,
    direct,
)
from workbench.engine.registry.errors import dial_text
from workbench.engine.registry.server import make_registry_app
from workbench.engine.registry.storage import RegistryStorage
from workbench.errors import WorkbenchError
from workbench.oci.image import go_arch


def _drain(body: BlobBody, via: str = "read") -> bytes:
    if via == "read":
        return b"".join(iter(lambda: body.read(1 << 20), b""))
    buf, out = bytearray(300_000), bytearray()
    while n := body.readinto(buf):          # what the decompressor calls: no bytes object per read
        out += buf[:n]
    return bytes(out)


@pytest.mark.parametrize("via", ["read", "readinto"])
def test_body_reads_a_blob_checks_its_size_and_reports_progress(registry: Registry, via: str) -> None:
    data = os.urandom(3 << 20)
    digest = registry.push_blob("dl/app", data)
    url = f"{registry.url}/v2/dl/app/blobs/{digest}"
    calls: list[tuple[int, bool]] = []
    with BlobBody(BlobRequest(url), size=len(data), progress=lambda n, done: calls.append((n, done))) as body:
        body.open()
        assert body.readinto(bytearray()) == 0 and body.count == 0   # nowhere to put a byte: not the end
        assert _drain(body, via) == data
        assert body.read() == b"" and body.readinto(bytearray(10)) == 0   # past the end: no second "done"
    assert calls[-1] == (len(data), True) and [done for _, done in calls].count(True) == 1
    assert [n for n, _ in calls] == sorted(n for n, _ in calls)
    for size, text in ((len(data) - 1, f"more than {len(data) - 1} bytes"),
                       (len(data) + 1, f"got {len(data)} of {len(data) + 1} bytes")):
        with BlobBody(BlobRequest(url), size=size) as body:
            body.open()
            with pytest.raises(SizeMismatch, match=text):
                _drain(body, via)
    missing = "sha256:" + "1" * 64
    with pytest.raises(RegistryRequestError) as err, BlobBody(
            BlobRequest(f"{registry.url}/v2/dl/app/blobs/{missing}")) as body:
        body.open()
    assert err.value.status == 404 and err.value.code == "BLOB_UNKNOWN"
    assert err.value.message.startswith(f'Get "{registry.url}/v2/dl/app/blobs/{missing}": blob unknown')


def test_abort_stops_a_read_blocked_on_the_socket() -> None:
    """A pull that is cancelled (client gone, another layer failed) must not leave its worker
    thread waiting on a registry that sends nothing more."""
    started, done = threading.Event(), threading.Event()

    async def trickle(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(headers={"Content-Length": str(10 << 20)})
        await reply.prepare(request)
        await reply.write(b"x" * 1000)
        started.set()
        while not done.is_set():           # then nothing more, until the test is over
            await asyncio.sleep(0.05)
        return reply

    app = web.Application()
    app.router.add_get("/v2/x/blobs/{d}", trickle)
    served = Served(app)
    try:
        body = BlobBody(BlobRequest(f"{served.url}/v2/x/blobs/sha256:{'2' * 64}", timeout=60), size=10 << 20)
        body.open()
        failure: list[BaseException] = []

        def reader() -> None:
            try:
                _drain(body)
            except BaseException as err:   # the test inspects it
                failure.append(err)

        t = threading.Thread(target=reader)
        t.start()
        assert started.wait(10)
        time.sleep(0.2)
        body.abort()
        t.join(5)
        assert not t.is_alive()
        assert isinstance(failure[0], WorkbenchError) and failure[0].message == "pull cancelled"
        body.close()
    finally:
        done.set()
        served.close()


def test_connections_are_kept_alive_and_stale_ones_replaced() -> None:
    """A body read to its end hands its connection back for the next GET to the same origin (no
    new TCP or TLS handshake per layer); one the server has dropped meanwhile is replaced."""
    data = os.urandom(300_000)
    peers: list[tuple[str, int]] = []

    async def blob(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        return web.Response(body=data)

    app = web.Application()
    app.router.add_get("/v2/x/blobs/{d}", blob)
    served = Served(app)
    pool = Connections()
    url = f"{served.url}/v2/x/blobs/sha256:{'3' * 64}"
    try:
        for _ in range(3):
            with BlobBody(BlobRequest(url, connections=pool), size=len(data)) as body:
                body.open()
                assert _drain(body) == data
            assert pool.idle(url) == 1
        assert len(set(peers)) == 1 and len(peers) == 3                 # one connection, three GETs
        stale, _ = pool.take(url, 10)
        stale.sock.shutdown(socket.SHUT_RDWR)                          # dropped while idle
        pool.give(url, stale)
        with BlobBody(BlobRequest(url, connections=pool), size=len(data)) as body:
            body.open()
            assert _drain(body) == data
        assert len(peers) == 4 and peers[-1] != peers[0]
        with BlobBody(BlobRequest(url, connections=pool), size=len(data) + 1) as body:
            body.open()
            with pytest.raises(SizeMismatch):
                _drain(body)
        assert pool.idle(url) == 0      # a body that failed closes its connection
    finally:
        pool.close()
        served.close()


def test_redirects_send_authorization_to_the_registry_origin_only() -> None:
    data = os.urandom(200_000)
    seen: list[tuple[str, str | None]] = []

    async def storage(request: web.Request) -> web.Response:
        seen.append(("storage", request.headers.get("Authorization")))
        return web.Response(body=data)

    store = web.Application()
    store.router.add_get("/blob", storage)
    elsewhere = Served(store)

    async def blobs(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        seen.append((name, request.headers.get("Authorization")))
        if name == "same":
            raise web.HTTPTemporaryRedirect("/v2/x/blobs/final")          # relative, same origin
        if name == "away":
            raise web.HTTPFound(f"{elsewhere.url}/blob?sig=abc")         # blob storage elsewhere
        if name == "loop":
            raise web.HTTPTemporaryRedirect("/v2/x/blobs/loop")
        return web.Response(body=data)

    app = web.Application()
    app.router.add_get("/v2/x/blobs/{name}", blobs)
    served = Served(app)
    auth = {"Authorization": "Bearer secret"}
    try:
        for name in ("same", "away"):
            seen.clear()
            with BlobBody(BlobRequest(f"{served.url}/v2/x/blobs/{name}", auth), size=len(data)) as body:
                body.open()
                assert _drain(body) == data
            if name == "same":
                assert seen == [("same", "Bearer secret"), ("final", "Bearer secret")]
            else:
                assert seen == [("away", "Bearer secret"), ("storage", None)]
        with pytest.raises(WorkbenchError, match="stopped after 10 redirects"), BlobBody(
                BlobRequest(f"{served.url}/v2/x/blobs/loop", auth)) as body:
            body.open()
    finally:
        served.close()
        elsewhere.close()


def test_a_challenge_comes_back_to_the_client_before_any_byte(tmp_path: Path, htpasswd: Path) -> None:
    gen = make_registry(tmp_path, auth=TokenAuth(b"c" * 32, users=Htpasswd(htpasswd)))
    reg = next(gen)
    data = os.urandom(100_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def go() -> None:
        async with RegistryClient(host(reg.url), Credentials("alice", "s3cret"),
                                  scopes=["repository:dl/tok:pull,push"]) as c:
            await c.upload_blob("dl/tok", digest, len(data), lambda: io.BytesIO(data))
        async with RegistryClient(host(reg.url), Credentials("alice", "s3cret")) as c:
            # before the registry answered anything, no direct GET (TLS or plain HTTP is not known)
            assert c.blob_request("dl/tok", digest) is None
            with pytest.raises(Challenge) as ch, BlobBody(BlobRequest(f"{reg.url}/v2/dl/tok/blobs/{digest}")) as body:
                body.open()
            assert ch.value.status == 401 and ch.value.sent is None
            assert ch.value.header.startswith("Bearer realm=") and "repository:dl/tok:pull" in ch.value.header
            assert await c.answer_challenge("GET", ch.value.url, ch.value.header, ch.value.sent)
            assert await c.blob_exists("dl/tok", digest)            # with the token; plain HTTP now known
            request = c.blob_request("dl/tok", digest)
            assert request is not None and request.headers["Authorization"].startswith("Bearer ")
            with BlobBody(request, size=len(data)) as body:
                body.open()
                assert _drain(body) == data
            # the same challenge answered again changes nothing: the caller must give up
            assert not await c.answer_challenge("GET", ch.value.url, ch.value.header,
                                                request.headers["Authorization"])
    try:
        asyncio.run(go())
    finally:
        gen.close()


def test_pull_answers_a_challenge_on_a_layer_get(engine, tmp_path: Path, htpasswd: Path) -> None:
    """A token registry that wants more than the manifest's token on a blob (401 with
    error="insufficient_scope"): the pull answers the challenge on the event loop and the worker
    thread makes the GET once more."""
    storage = RegistryStorage(tmp_path / "registry")
    open_app = Served(make_registry_app(storage))                  # for pushing the image in
    image = make_image("challenged", layers=2, arch=go_arch())
    first_layer = image.doc["layers"][0]["digest"]
    gets: list[str | None] = []

    @web.middleware
    async def once(request: web.Request, handler):
        if request.method == "GET" and request.path.endswith(f"/blobs/{first_layer}"):
            gets.append(request.headers.get("Authorization"))
            if len(gets) == 1:    # the registry's own challenge, as to a request without a token
                anonymous = request.clone(headers={k: v for k, v in request.headers.items()
                                                   if k.lower() != "authorization"})
                try:
                    reply = await handler(anonymous)
                except web.HTTPException as refused:
                    reply = refused
                assert reply.status == 401
                reply.headers["WWW-Authenticate"] += ',error="insufficient_scope"'
                return reply
        return await handler(request)

    app = make_registry_app(storage, auth=TokenAuth(b"s" * 32, users=Htpasswd(htpasswd)))
    app.middlewares.insert(0, once)          # outermost: before the registry's own auth check
    served = Served(app)
    try:
        with httpx.Client(base_url=open_app.url) as c:
            Registry(open_app, storage, c).push_image("dl/chal", image, tag="1")
        repo = f"{host(served.url)}/dl/chal"
        r = pull(engine, repo, "1", auth=registry_auth("alice", "s3cret"))
        assert r.status == 200 and r.error is None, r.raw
        assert len(gets) == 2 and gets[0] and gets[0] == gets[1] and gets[0].startswith("Bearer ")
        assert inspect(engine, f"{repo}:1")["RootFS"]["Layers"] == json.loads(
            image.blobs[image.doc["config"]["digest"]])["rootfs"]["diff_ids"]
    finally:
        served.close()
        open_app.close()


def test_pull_from_a_loopback_registry_over_tls_with_a_self_signed_certificate(engine, tmp_path: Path) -> None:
    """Loopback registries are insecure ones, which dockerd tries over TLS without checking the
    certificate before plain HTTP: a local registry behind a self-signed certificate works."""
    tls = self_signed_tls(tmp_path)
    storage = RegistryStorage(tmp_path / "registry")
    plain = Served(make_registry_app(storage))
    secure = Served(make_registry_app(storage), tls=tls)      # the same storage, over TLS only
    try:
        image = make_image("tls", layers=2, arch=go_arch())
        with httpx.Client(base_url=plain.url) as c:
            Registry(plain, storage, c).push_image("dl/tls", image, tag="1")
        repo = f"127.0.0.1:{secure.port}/dl/tls"
        r = pull(engine, repo, "1")
        assert r.status == 200 and r.error is None, r.raw
        assert inspect(engine, f"{repo}:1")["Id"] == image.doc["config"]["digest"]
        assert httpx.get(f"{secure.url}/v2/", verify=False).status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{secure.port}/v2/")          # it really speaks only TLS
    finally:
        secure.close()
        plain.close()


def test_an_insecure_registry_that_answered_over_tls_is_never_downgraded(tmp_path: Path) -> None:
    """TLS first, plain HTTP only if TLS never answers: once the registry has answered over TLS, a
    dropped connection is an error, and the next requests still go over TLS."""
    async def handler(request: web.Request) -> web.StreamResponse:
        if "/drop/" in request.path:                          # a reset mid-conversation
            request.transport.close()
            await asyncio.sleep(1)
        return web.json_response({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    served = Served(app, tls=self_signed_tls(tmp_path))

    async def go() -> None:
        async with RegistryClient(f"127.0.0.1:{served.port}") as c:
            await c.ping()
            assert c.url.startswith("https://")
            with pytest.raises(RegistryRequestError, match=r'Get "https://'):
                await c.tags("x/drop")
            assert c.url.startswith("https://")
            await c.ping()
            assert c.blob_request("x", "sha256:" + "0" * 64).url.startswith("https://")
    try:
        asyncio.run(go())
    finally:
        served.close()


def test_failed_connections_read_as_dockerd_words_them() -> None:
    """Go's net errors, which dockerd passes on: what a user searching for the message finds."""
    blob = f"http://127.0.0.1:1/v2/x/blobs/sha256:{'4' * 64}"
    with pytest.raises(RegistryRequestError) as err, BlobBody(BlobRequest(blob, timeout=10)) as body:
        body.open()
    assert err.value.message == f'Get "{blob}": dial tcp 127.0.0.1:1: connect: connection refused'
    lookup = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert dial_text(lookup, "https://registry.invalid/v2/") == "dial tcp: lookup registry.invalid: no such host"
    wrapped = OSError("All connection attempts failed")         # as anyio wraps the attempts
    wrapped.__cause__ = ConnectionRefusedError(111, "Connect call failed")
    assert dial_text(wrapped, "https://[::1]:5000/v2/") == "dial tcp [::1]:5000: connect: connection refused"
    assert dial_text(TimeoutError(), "http://h/v2/") is None      # no errno: the caller's own words


def test_direct_unless_a_proxy_applies(monkeypatch) -> None:
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert direct("http://127.0.0.1:5000/v2/x/blobs/d") and direct("https://reg.example/v2/")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert direct("http://127.0.0.1:5000/v2/") and not direct("https://reg.example/v2/")
    monkeypatch.setenv("NO_PROXY", "reg.example,127.0.0.1")
    assert direct("https://reg.example/v2/") and not direct("https://other.example/v2/")
    monkeypatch.setenv("ALL_PROXY", "http://proxy.example:3128")
    assert not direct("http://10.1.2.3:5000/v2/") and direct("http://127.0.0.1:5000/v2/")
    proxied, bypassed = RegistryClient("other.example"), RegistryClient("reg.example")
    assert proxied.blob_request("x", "sha256:" + "0" * 64) is None                # → httpx, via the proxy
    assert bypassed.blob_request("x", "sha256:" + "0" * 64).url.startswith("https://reg.example/v2/x/")
    for client in (proxied, bypassed):
        asyncio.run(client.aclose())


def test_pull_through_an_http_proxy(tmp_path: Path, registry: Registry) -> None:
    """With HTTP_PROXY in the daemon's environment (as dockerd reads it) every request to a
    registry that is not on loopback, blob GETs included, goes through the proxy (here Debian's
    tinyproxy); a loopback registry is reached directly, as dockerd does."""
    if shutil.which("tinyproxy") is None:
        pytest.fail("tinyproxy is required: apt-get install tinyproxy (make setup does it)")
    port, log = free_port(), tmp_path / "tinyproxy.log"
    conf = tmp_path / "tinyproxy.conf"
    conf.write_text(f'Port {port}\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nMaxClients 50\n'
                    f'LogFile "{log}"\nLogLevel Info\nDisableViaHeader Yes\n')
    proxy = subprocess.Popen(["tinyproxy", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT)
    image = make_image("proxied", layers=2, arch=go_arch())
    env = {"HTTP_PROXY": f"http://127.0.0.1:{port}", "NO_PROXY": ""}
    private = ["--insecure-registry", "10.0.0.0/8", "--insecure-registry", "172.16.0.0/12",
               "--insecure-registry", "192.168.0.0/16"]
    far = None
    try:
        deadline = time.monotonic() + 10
        while not (log.exists() and "listening on" in log.read_text().lower()):
            assert proxy.poll() is None and time.monotonic() < deadline, "tinyproxy did not start"
            time.sleep(0.05)
        with own_engine("wbtp-", env, private) as eng:
            # a registry on this host's bridge address: not loopback, so the proxy applies
            gateway = eng.api.get("/networks/bridge").json()["IPAM"]["Config"][0]["Gateway"]
            far = Served(make_registry_app(RegistryStorage(tmp_path / "far")), host=gateway)
            with httpx.Client(base_url=far.url) as c:
                Registry(far, RegistryStorage(tmp_path / "far"), c).push_image("dl/proxied", image, tag="1")
            near = make_image("near", layers=2, arch=go_arch())
            registry.push_image("dl/near", near, tag="1")
            for repo, img in ((f"{host(far.url)}/dl/proxied", image), (f"{host(registry.url)}/dl/near", near)):
                r = pull(eng, repo, "1")
                assert r.status == 200 and r.error is None, r.raw
                assert inspect(eng, f"{repo}:1")["Id"] == img.doc["config"]["digest"]
                assert r.statuses(img.doc["layers"][0]["digest"].split(":")[1][:12])[-1] == "Pull complete"
        proxied = log.read_text()
        assert f"GET {far.url}/v2/dl/proxied/manifests/1" in proxied
        for layer in image.doc["layers"]:
            assert f"GET {far.url}/v2/dl/proxied/blobs/{layer['digest']}" in proxied
        assert registry.url not in proxied
    finally:
        if far is not None:
            far.close()
        proxy.terminate()
        proxy.wait(10)
