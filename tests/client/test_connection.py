"""Host resolution, version negotiation and transport errors, against a scripted Unix-socket server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.client.stub import StubServer, json_reply
from workbench.client import DEFAULT_HOST, Client, Host, resolve_host
from workbench.errors import Conflict, InvalidArgument, NotFound, Unavailable


@pytest.mark.parametrize("text,expected", [
    ("unix:///run/x.sock", Host("unix", "/run/x.sock")),
    ("/run/x.sock", Host("unix", "/run/x.sock")),
    ("tcp://127.0.0.1:2375", Host("http", "127.0.0.1:2375")),
    ("tcp://localhost", Host("http", "localhost:2375")),
    ("http://10.0.0.1:80", Host("http", "10.0.0.1:80")),
    ("https://h:2376", Host("https", "h:2376")),
    ("tcp://[::1]:2375", Host("http", "[::1]:2375")),
])
def test_resolve_host_forms(text, expected):
    assert resolve_host(text, env={}) == expected


def test_resolve_host_order_explicit_then_env_then_default():
    env = {"WORKBENCH_HOST": "unix:///env.sock"}
    assert resolve_host("unix:///arg.sock", env=env).address == "/arg.sock"
    assert resolve_host(None, env=env).address == "/env.sock"
    assert resolve_host(None, env={}).url == DEFAULT_HOST
    assert resolve_host(None, env={}).address == "/run/workbench/engine.sock"


@pytest.mark.parametrize("bad", ["ssh://x", "unix://", "tcp://", "fd://"])
def test_resolve_host_rejects_bad_addresses(bad):
    with pytest.raises(InvalidArgument):
        resolve_host(bad, env={})


def test_host_url_round_trips():
    assert Host("unix", "/a.sock").url == "unix:///a.sock"
    assert Host("http", "h:1").url == "tcp://h:1"


def test_version_is_negotiated_once_and_prefixes_paths():
    routes = {("GET", "/version"): lambda h: json_reply({"Version": "x", "ApiVersion": h.api_version})}
    with StubServer(routes, api_version="1.40") as server:
        client = Client(server.host)
        assert client.system.version().api_version == "1.40"
        assert client.system.version().api_version == "1.40"
        pings = [s for s in server.seen if s[1] == "/_ping"]
        assert len(pings) == 1
        assert [s[1] for s in server.seen if s[1] != "/_ping"] == ["/v1.40/version", "/v1.40/version"]
        client.close()


def test_newer_daemon_is_spoken_to_at_141():
    with StubServer({("GET", "/info"): lambda h: json_reply({"v": h.api_version})}, api_version="1.47") as s:
        with Client(s.host) as client:
            assert client.system.info() == {"v": "1.41"}


def test_missing_api_version_header_falls_back_to_124():
    with StubServer({("GET", "/info"): lambda h: json_reply({"v": h.api_version})}, api_version=None) as s:
        with Client(s.host) as client:
            assert client.api_version == "1.24"


def test_explicit_version_skips_the_ping():
    with StubServer({("GET", "/info"): lambda h: json_reply({})}) as server:
        with Client(server.host, version="1.41") as client:
            client.system.info()
        assert [s[1] for s in server.seen] == ["/v1.41/info"]


def test_daemon_errors_carry_their_message():
    routes = {
        ("GET", "/images/nope/json"): lambda h: json_reply({"message": "No such image: nope:latest"}, 404),
        ("DELETE", "/containers/busy"): lambda h: json_reply(
            {"message": "You cannot remove a running container busy. Stop the container before "
                        "attempting removal or force remove"}, 409),
    }
    with StubServer(routes) as server, Client(server.host) as client:
        with pytest.raises(NotFound, match="No such image: nope:latest"):
            client.images.inspect("nope")
        with pytest.raises(Conflict, match="Stop the container before"):
            client.containers.remove("busy")


def test_no_engine_is_unavailable_with_the_address(tmp_path):
    client = Client(f"unix://{tmp_path}/none.sock")
    with pytest.raises(Unavailable, match=f"unix://{tmp_path}/none.sock"):
        client.system.ping()


def test_creating_a_client_sends_nothing(tmp_path):
    Client(f"unix://{tmp_path}/none.sock")  # no engine there, and no error either


def test_importing_the_client_is_cheap():
    code = ("import sys; from workbench.client import Client; c = Client('unix:///x');"
            "print(sorted(m for m in ('httpx', 'tarfile', 'workbench.client.containers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
