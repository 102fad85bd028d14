"""Registry credentials in a docker-style config.json."""

from __future__ import annotations

import json
import stat

from workbench.client import AuthConfig, CredentialStore
from workbench.client._config import DOCKER_HUB_KEY, config_dir, registry_key, registry_of


def test_config_dir_precedence(tmp_path):
    assert config_dir(tmp_path / "x", env={"DOCKER_CONFIG": "/d", "HOME": "/h"}) == tmp_path / "x"
    assert str(config_dir(None, env={"DOCKER_CONFIG": "/d", "HOME": "/h"})) == "/d"
    assert str(config_dir(None, env={"HOME": "/h"})) == "/h/.workbench"


def test_registry_keys():
    assert registry_key(None) == DOCKER_HUB_KEY
    assert registry_key("docker.io") == registry_key("index.docker.io") == DOCKER_HUB_KEY
    assert registry_key("https://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    assert registry_of("busybox") == "docker.io"
    assert registry_of("127.0.0.1:5000/a/b:1") == "127.0.0.1:5000"
    assert registry_of("localhost/x@sha256:" + "a" * 64) == "localhost"


def test_store_get_erase_round_trip(tmp_path):
    store = CredentialStore(tmp_path / "cfg")
    assert store.get("127.0.0.1:5000") is None
    store.store("127.0.0.1:5000", AuthConfig(username="alice", password="s3:cret"))
    store.store(None, AuthConfig(username="bob", password="pw"))
    doc = json.loads(store.path.read_text())
    assert set(doc["auths"]) == {"127.0.0.1:5000", DOCKER_HUB_KEY}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    got = store.get("http://127.0.0.1:5000")
    assert (got.username, got.password, got.serveraddress) == ("alice", "s3:cret", "127.0.0.1:5000")
    assert store.get("docker.io").username == "bob"
    assert store.erase("127.0.0.1:5000") is True
    assert store.erase("127.0.0.1:5000") is False
    assert store.registries() == [DOCKER_HUB_KEY]


def test_reads_docker_written_files_and_keeps_other_keys(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"https://reg.example:443": {"auth": "dTpw"},
                                          "tok.example": {"identitytoken": "T"}},
                                "credsStore": "desktop", "proxies": {"default": {}}}))
    store = CredentialStore(tmp_path)
    assert store.get("reg.example:443") == AuthConfig(username="u", password="p", serveraddress="reg.example:443")
    assert store.get("tok.example").identitytoken == "T"
    store.store("new:1", AuthConfig(username="n", password="m"))
    doc = json.loads(path.read_text())
    assert doc["credsStore"] == "desktop" and doc["proxies"] == {"default": {}}
    assert "https://reg.example:443" in doc["auths"] and "new:1" in doc["auths"]


def test_auth_config_wire_drops_empty_fields():
    assert AuthConfig(username="u", password="p").to_wire() == {"username": "u", "password": "p"}
