"""Basic (htpasswd, bcrypt) and Bearer token auth, and read-only mode, over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from registry_support import Registry, make_image, make_registry

from workbench.engine.registry.auth import Htpasswd, HtpasswdAuth, Scope, TokenAuth, make_htpasswd_line

R = "secure/app"


@pytest.fixture
def basic_registry(tmp_path: Path, htpasswd: Path) -> Iterator[Registry]:
    yield from make_registry(tmp_path, auth=HtpasswdAuth(htpasswd))


@pytest.fixture
def token_registry(tmp_path: Path, htpasswd: Path) -> Iterator[Registry]:
    yield from make_registry(tmp_path, auth=TokenAuth(b"k" * 32, users=Htpasswd(htpasswd)))


def test_basic_auth(basic_registry: Registry) -> None:
    c = basic_registry.client
    r = c.get("/v2/")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="Workbench Registry"'
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    r = c.get(f"/v2/{R}/tags/list", auth=("alice", "wrong"))
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert c.get("/v2/", auth=("mallory", "s3cret")).status_code == 401
    c.auth = ("alice", "s3cret")
    assert c.get("/v2/").status_code == 200
    basic_registry.push_image(R, make_image("basic"), tag="v1")
    assert c.get(f"/v2/{R}/tags/list").json()["tags"] == ["v1"]


def test_htpasswd_reloaded_when_changed(basic_registry: Registry, htpasswd: Path) -> None:
    import os
    import time
    htpasswd.write_text(make_htpasswd_line("bob", "pw", rounds=4) + "\n")
    os.utime(htpasswd, (time.time() + 5, time.time() + 5))
    assert basic_registry.client.get("/v2/", auth=("bob", "pw")).status_code == 200
    assert basic_registry.client.get("/v2/", auth=("alice", "s3cret")).status_code == 401


def _challenge(r: httpx.Response) -> dict[str, str]:
    header = r.headers["WWW-Authenticate"]
    assert header.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def test_token_flow(token_registry: Registry) -> None:
    c = token_registry.client
    r = c.post(f"/v2/{R}/blobs/uploads/")
    assert r.status_code == 401
    ch = _challenge(r)
    assert ch["realm"] == f"{token_registry.url}/token" and ch["service"] == "workbench-registry"
    assert ch["scope"] == f"repository:{R}:pull,push"
    # the token endpoint wants the user's password
    r = c.get("/token", params={"service": ch["service"], "scope": ch["scope"]})
    assert r.status_code == 401
    r = c.get("/token", params={"service": ch["service"], "scope": ch["scope"]}, auth=("alice", "nope"))
    assert r.status_code == 401
    r = c.get("/token", params={"service": ch["service"], "scope": ch["scope"]}, auth=("alice", "s3cret"))
    assert r.status_code == 200
    token = r.json()["token"]
    assert r.json()["access_token"] == token and r.json()["expires_in"] > 0
    c.headers["Authorization"] = f"Bearer {token}"
    token_registry.push_image(R, make_image("token"), tag="v1")
    # the token is for R only: another repository asks again, with insufficient_scope
    r = c.get("/v2/other/repo/tags/list")
    assert r.status_code == 401 and _challenge(r)["error"] == "insufficient_scope"
    # and pull-only tokens cannot push
    pull = c.get("/token", params={"service": ch["service"], "scope": f"repository:{R}:pull"},
                 auth=("alice", "s3cret")).json()["token"]
    c.headers["Authorization"] = f"Bearer {pull}"
    assert c.get(f"/v2/{R}/tags/list").status_code == 200
    assert c.delete(f"/v2/{R}/manifests/v1").status_code == 401
    c.headers["Authorization"] = "Bearer garbage.token.here"
    r = c.get(f"/v2/{R}/tags/list")
    assert r.status_code == 401 and _challenge(r)["error"] == "invalid_token"


def test_token_oauth_post_and_refresh(token_registry: Registry) -> None:
    c = token_registry.client
    form = {"grant_type": "password", "username": "alice", "password": "s3cret",
            "service": "workbench-registry", "scope": f"repository:{R}:pull", "client_id": "test"}
    r = c.post("/token", data=form)
    assert r.status_code == 200 and r.json()["refresh_token"]
    r = c.post("/token", data={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"],
                               "service": "workbench-registry", "scope": "registry:catalog:*"})
    assert r.status_code == 200
    c.headers["Authorization"] = "Bearer " + r.json()["access_token"]
    assert c.get("/v2/_catalog").status_code == 200
    assert c.post("/token", data={**form, "password": "bad"}).status_code == 401


def test_expired_and_foreign_tokens() -> None:
    auth = TokenAuth(b"a" * 32, ttl=-1)
    token = auth.issue("alice", [f"repository:{R}:pull"])["token"]
    scope = [Scope("repository", R, ("pull",))]
    with pytest.raises(Exception, match="invalid or expired"):
        auth.authorize(f"Bearer {token}", scope, "http://x")
    good = TokenAuth(b"a" * 32).issue("alice", [f"repository:{R}:pull"])["token"]
    assert TokenAuth(b"a" * 32).authorize(f"Bearer {good}", scope, "http://x") == "alice"
    with pytest.raises(Exception, match="invalid or expired"):
        TokenAuth(b"b" * 32).authorize(f"Bearer {good}", scope, "http://x")


def test_read_only(tmp_path: Path) -> None:
    gen = make_registry(tmp_path)
    reg = next(gen)
    reg.push_image(R, make_image("ro"), tag="v1")
    gen.close()
    gen = make_registry(tmp_path, read_only=True)
    reg = next(gen)
    try:
        c = reg.client
        assert c.get(f"/v2/{R}/manifests/v1").status_code == 200
        for method, path in [("POST", f"/v2/{R}/blobs/uploads/"), ("PUT", f"/v2/{R}/manifests/v2"),
                             ("DELETE", f"/v2/{R}/manifests/v1"), ("PATCH", f"/v2/{R}/blobs/uploads/x")]:
            r = c.request(method, path, content=b"{}")
            assert r.status_code == 405 and r.json()["errors"][0]["code"] == "UNSUPPORTED", path
    finally:
        gen.close()
