"""The registry client and the distribution pieces without a daemon: X-Registry-Auth decoding,
Docker's progress encoding, reference normalisation, endpoints, and the client's uploads, mounts
and auth flows against our registry server and Debian's docker-registry over real loopback HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import types
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from registry_support import Served, make_registry
from test_pushpull_helpers import start_distribution

from workbench.engine.api.distribution import decode_registry_auth, encode_progress, routes
from workbench.engine.registry.auth import Htpasswd, HtpasswdAuth, TokenAuth, make_htpasswd_line
from workbench.engine.registry.client import (
    Credentials,
    RegistryClient,
    RegistryRequestError,
    _with_digest,
    parse_challenge,
)
from workbench.engine.registry.progress import Progress, progress_text
from workbench.engine.registry.pull import pull_reference
from workbench.engine.registry.transfer import Transfers, registry_domain
from workbench.engine.registry.transport import base_url
from workbench.errors import InvalidArgument
from workbench.oci.digest import DigestMismatch


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---- pure pieces -----------------------------------------------------------------------------

def test_x_registry_auth_decoding() -> None:
    assert decode_registry_auth(None) is None and decode_registry_auth("") is None
    assert decode_registry_auth("e30=") is None and decode_registry_auth("e30") is None
    doc = b'{"username":"u~?","password":"p>>?","serveraddress":"127.0.0.1:5000"}'
    for text in (base64.urlsafe_b64encode(doc).decode(), base64.urlsafe_b64encode(doc).decode().rstrip("="),
                 base64.b64encode(doc).decode()):
        assert decode_registry_auth(text) == Credentials("u~?", "p>>?")
    auth_field = base64.b64encode(b'{"auth":"' + base64.b64encode(b"bob:pw") + b'"}').decode()
    assert decode_registry_auth(auth_field) == Credentials("bob", "pw")
    token = base64.b64encode(b'{"identitytoken":"refresh-me"}').decode()
    assert decode_registry_auth(token) == Credentials(identity_token="refresh-me")
    with pytest.raises(InvalidArgument):
        decode_registry_auth("!!!not base64 json!!!")


def test_progress_is_encoded_as_dockerd_writes_it() -> None:
    assert progress_text(22773, 2152262) == "[>" + " " * 50 + "]  22.77kB/2.152MB"
    assert progress_text(1170811, 1170811) == "[" + "=" * 50 + ">]  1.171MB/1.171MB"
    assert progress_text(512, 1249) == "[" + "=" * 20 + ">" + " " * 30 + "]     512B/1.249kB"
    assert encode_progress(Progress("Pulling from library/busybox", "latest")) == {
        "status": "Pulling from library/busybox", "id": "latest"}
    assert encode_progress(Progress("Pull complete", "abc", layer=True)) == {
        "status": "Pull complete", "progressDetail": {}, "id": "abc"}
    ev = encode_progress(Progress("Downloading", "abc", 10, 100, layer=True))
    assert list(ev) == ["status", "progressDetail", "progress", "id"]
    assert ev["progressDetail"] == {"current": 10, "total": 100}
    assert encode_progress(Progress(layer=True, aux={"Tag": "1"})) == {"progressDetail": {}, "aux": {"Tag": "1"}}
    assert encode_progress(Progress("Digest: sha256:x")) == {"status": "Digest: sha256:x"}


def test_references_are_normalised_like_docker() -> None:
    ref = pull_reference("busybox", "latest")
    assert (ref.domain, ref.path, ref.tag, ref.familiar) == ("docker.io", "library/busybox", "latest",
                                                            "busybox:latest")
    ref = pull_reference("busybox", None)             # bare: dockerd pulls every tag
    assert (ref.path, ref.tag, ref.digest) == ("library/busybox", None, None)
    assert pull_reference("busybox:1.36", None).tag == "1.36"
    d = "sha256:" + "a" * 64
    ref = pull_reference("busybox", d)
    assert ref.digest == d and ref.tag is None and ref.familiar == f"busybox@{d}"
    ref = pull_reference(f"user/app@{d}", None)
    assert ref.path == "user/app" and ref.digest == d
    ref = pull_reference("127.0.0.1:5000/team/app:old", "new")
    assert (ref.domain, ref.path, ref.tag) == ("127.0.0.1:5000", "team/app", "new")
    with pytest.raises(InvalidArgument):
        pull_reference("library/UPPER", "1")
    with pytest.raises(InvalidArgument):
        pull_reference("busybox", "sha256:short")


def test_endpoints_plain_http_only_for_loopback_and_insecure() -> None:
    assert base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert base_url("127.9.9.9:5000") == "http://127.9.9.9:5000"
    assert base_url("localhost:5000") == "http://localhost:5000"
    assert base_url("[::1]:5000") == "http://[::1]:5000"
    assert base_url("docker.io") == "https://registry-1.docker.io"
    assert base_url("registry.example.com:5000") == "https://registry.example.com:5000"
    assert base_url("10.1.2.3:5000") == "https://10.1.2.3:5000"
    assert base_url("10.1.2.3:5000", ["10.0.0.0/8"]) == "http://10.1.2.3:5000"
    assert base_url("reg.lan:5000", ["reg.lan:5000"]) == "http://reg.lan:5000"
    assert registry_domain("https://index.docker.io/v1/") == "docker.io" and registry_domain("") == "docker.io"
    assert registry_domain("http://127.0.0.1:5000/") == "127.0.0.1:5000"


def test_challenges_and_locations() -> None:
    scheme, params = parse_challenge('Bearer realm="https://auth.example/token",service="reg",'
                                     'scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"')
    assert scheme == "bearer" and params["scope"] == "repository:a/b:pull,push repository:c:pull"
    assert params["realm"] == "https://auth.example/token" and params["error"] == "insufficient_scope"
    assert parse_challenge('Basic realm="basic-realm"') == ("basic", {"realm": "basic-realm"})
    assert _with_digest("http://r/v2/x/blobs/uploads/u?_state=abc", "sha256:ff") == \
        "http://r/v2/x/blobs/uploads/u?_state=abc&digest=sha256%3Aff"
    assert _with_digest("http://r/v2/x/blobs/uploads/u", "sha256:ff") == "http://r/v2/x/blobs/uploads/u?digest=sha256%3Aff"


# ---- the client against real registries -------------------------------------------------------

@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text(make_htpasswd_line("ci", "pw", rounds=4) + "\n")
    return path


@pytest.fixture(params=["ours", "distribution"])
def any_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "ours":
        gen = make_registry(tmp_path)
        yield next(gen).url.removeprefix("http://")
        gen.close()
    else:
        url, proc = start_distribution(tmp_path)
        yield url.removeprefix("http://")
        proc.terminate()
        proc.wait(10)


def _run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("chunk", [None, 1 << 20, 333_333])
def test_uploads_monolithic_and_chunked(any_registry: str, chunk: int | None) -> None:
    data = os.urandom(2_500_000)
    digest = _digest(data)
    seen: list[int] = []

    async def go() -> None:
        async with RegistryClient(any_registry) as c:
            assert not await c.blob_exists("up/load", digest)
            await c.upload_blob("up/load", digest, len(data), lambda: io.BytesIO(data), chunk_size=chunk,
                                progress=seen.append)
            assert await c.blob_exists("up/load", digest)
            async with c.blob("up/load", digest) as r:
                got = b"".join([part async for part in r.aiter_raw()])
            assert got == data
            assert await c.fetch_blob("up/load", digest) == data
    _run(go())
    assert seen[-1] == len(data)


def test_bad_uploads_are_refused(any_registry: str) -> None:
    data = os.urandom(10_000)

    async def go() -> None:
        async with RegistryClient(any_registry) as c:
            with pytest.raises(RegistryRequestError) as err:
                await c.upload_blob("up/bad", _digest(b"other"), len(data), lambda: io.BytesIO(data))
            assert err.value.remote_status == 400 and "digest" in err.value.message.lower()
            with pytest.raises(RegistryRequestError) as err:
                await c.get_manifest("up/bad", "nope")
            assert err.value.remote_status == 404 and err.value.code == "MANIFEST_UNKNOWN"
    _run(go())


def test_mount_and_its_fallback(any_registry: str) -> None:
    data = os.urandom(50_000)
    digest = _digest(data)

    async def go() -> None:
        async with RegistryClient(any_registry) as c:
            await c.upload_blob("mnt/src", digest, len(data), lambda: io.BytesIO(data))
            assert await c.mount_blob("mnt/dst", digest, "mnt/src") is None           # 201: mounted
            assert await c.blob_exists("mnt/dst", digest)
            other = os.urandom(1000)
            location = await c.mount_blob("mnt/dst", _digest(other), "mnt/src")       # 202: a session
            assert location is not None
            await c.upload_blob("mnt/dst", _digest(other), len(other), lambda: io.BytesIO(other),
                                location=location)
            assert await c.blob_exists("mnt/dst", _digest(other))
    _run(go())


def test_manifests_and_blobs_are_verified(tmp_path: Path) -> None:
    from aiohttp import web
    good, evil = b'{"schemaVersion":2,"layers":[]}', b'{"schemaVersion":2,"layers":[{}]}'

    async def lie(request: web.Request) -> web.Response:          # serves `evil` whatever is asked
        return web.Response(body=evil, content_type="application/vnd.oci.image.manifest.v1+json")

    app = web.Application()
    app.router.add_get("/v2/{tail:.*}", lie)
    served = Served(app)
    try:
        async def go() -> None:
            async with RegistryClient(served.url.removeprefix("http://")) as c:
                by_tag = await c.get_manifest("x/y", "1")
                assert by_tag.data == evil and by_tag.digest == _digest(evil)
                with pytest.raises(DigestMismatch):
                    await c.get_manifest("x/y", _digest(good))
                for algo in ("sha512",):                    # by a digest of another algorithm too
                    with pytest.raises(DigestMismatch):
                        await c.get_manifest("x/y", f"{algo}:" + hashlib.new(algo, good).hexdigest())
                    right = f"{algo}:" + hashlib.new(algo, evil).hexdigest()
                    assert (await c.get_manifest("x/y", right)).digest == right
                with pytest.raises(DigestMismatch):
                    await c.fetch_blob("x/y", _digest(good))
                assert await c.fetch_blob("x/y", _digest(evil)) == evil
        _run(go())
    finally:
        served.close()


def test_basic_and_token_auth_flows(tmp_path: Path, htpasswd: Path) -> None:
    url, proc = start_distribution(tmp_path, htpasswd)
    gen = make_registry(tmp_path, auth=TokenAuth(b"z" * 32, users=Htpasswd(htpasswd)))
    token_reg = next(gen)
    try:
        async def go(domain: str) -> None:
            data = os.urandom(5000)
            async with RegistryClient(domain, Credentials("ci", "pw"), scopes=["repository:a/b:pull,push"]) as c:
                await c.ping()
                await c.upload_blob("a/b", _digest(data), len(data), lambda: io.BytesIO(data), chunk_size=2000)
                assert await c.blob_exists("a/b", _digest(data))
            async with RegistryClient(domain, Credentials("ci", "wrong")) as c:
                with pytest.raises(RegistryRequestError) as err:
                    await c.blob_exists("a/b", _digest(data))
                assert err.value.status == 401 and "unauthorized" in err.value.message.lower()
            async with RegistryClient(domain) as c:
                with pytest.raises(RegistryRequestError) as err:
                    await c.blob_exists("a/b", _digest(data))
                assert err.value.status == 401

        _run(go(url.removeprefix("http://")))
        _run(go(token_reg.url.removeprefix("http://")))
    finally:
        gen.close()
        proc.terminate()
        proc.wait(10)


def test_login_route(tmp_path: Path, htpasswd: Path) -> None:
    """`POST /auth` as the daemon serves it, in an app of its own (the route needs no image store)."""
    from workbench.engine.api.app import make_app
    engine = types.SimpleNamespace(images=None, image_io=None, config=types.SimpleNamespace(insecure_registries=()),
                                   extra={})
    api = Served(make_app([routes(engine)]))
    url, proc = start_distribution(tmp_path, htpasswd)
    gen = make_registry(tmp_path, auth=HtpasswdAuth(htpasswd))
    ours = next(gen)
    try:
        for server in (url, ours.url.removeprefix("http://")):
            ok = httpx.post(f"{api.url}/v1.41/auth", json={"username": "ci", "password": "pw",
                                                           "serveraddress": server})
            assert ok.status_code == 200 and ok.json() == {"Status": "Login Succeeded", "IdentityToken": ""}
            bad = httpx.post(f"{api.url}/auth", json={"username": "ci", "password": "no", "serveraddress": server})
            assert bad.status_code == 401
            assert bad.json()["message"] == \
                f"login attempt to http://{server.removeprefix('http://')}/v2/ failed with status: 401 Unauthorized"
        assert httpx.post(f"{api.url}/auth", json={"password": "x", "serveraddress": url}).status_code == 400
    finally:
        gen.close()
        proc.terminate()
        proc.wait(10)
        api.close()


def test_transfers_login_with_a_token_registry(tmp_path: Path, htpasswd: Path) -> None:
    gen = make_registry(tmp_path, auth=TokenAuth(b"y" * 32, users=Htpasswd(htpasswd)))
    reg = next(gen)
    transfers = Transfers(None, None)
    try:
        _run(transfers.login(reg.url, Credentials("ci", "pw")))
        with pytest.raises(RegistryRequestError) as err:
            _run(transfers.login(reg.url, Credentials("ci", "bad")))
        assert err.value.status == 401 and "unauthorized" in err.value.message
    finally:
        transfers.close()
        gen.close()


def test_identity_token_refresh_grant(tmp_path: Path, htpasswd: Path) -> None:
    """An identity token (what `docker login` may store instead of a password) buys access tokens
    through the OAuth2 refresh-token grant."""
    gen = make_registry(tmp_path, auth=TokenAuth(b"r" * 32, users=Htpasswd(htpasswd)))
    reg = next(gen)
    try:
        reply = httpx.post(f"{reg.url}/token", data={"grant_type": "password", "username": "ci", "password": "pw",
                                                     "service": "workbench-registry", "client_id": "test"})
        refresh = reply.json()["refresh_token"]
        data = os.urandom(3000)

        async def go(creds: Credentials) -> None:
            async with RegistryClient(reg.url.removeprefix("http://"), creds,
                                      scopes=["repository:id/tok:pull,push"]) as c:
                await c.upload_blob("id/tok", _digest(data), len(data), lambda: io.BytesIO(data))
                assert await c.blob_exists("id/tok", _digest(data))

        _run(go(Credentials(identity_token=refresh)))
        with pytest.raises(RegistryRequestError) as err:
            _run(go(Credentials(identity_token="not-a-token")))
        assert err.value.status == 401
    finally:
        gen.close()
