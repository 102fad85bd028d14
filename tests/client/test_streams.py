"""Streams and request shapes against a scripted Unix-socket server (no engine needed)."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.client.stub import StubServer, json_reply
from workbench.client import Client, LogFrame
from workbench.errors import APIError, BuildError, InvalidArgument
from workbench.oci.streams import frame


def _query(path: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(path).query)


def _lines(*objs: dict) -> list[bytes]:
    return [json.dumps(o).encode() + b"\r\n" for o in objs]


def test_logs_are_demultiplexed_across_chunk_boundaries():
    payload = frame(1, b"out\n") + frame(2, b"err-line\n") + frame(1, b"x" * 70000)
    chunks = [payload[:3], payload[3:13], payload[13:]]
    routes = {("GET", "/containers/c1/logs"): lambda h: (200, {}, chunks)}
    with StubServer(routes) as server, Client(server.host) as client:
        frames = client.containers.logs("c1", tty=False, tail=5)
        assert frames[:2] == [LogFrame(1, b"out\n"), LogFrame(2, b"err-line\n")]
        assert frames[2].data == b"x" * 70000
        q = _query(server.seen[-1][1])
        assert q["tail"] == ["5"] and q["stdout"] == ["1"] and q["stderr"] == ["1"]


def test_tty_logs_are_raw_and_tty_is_read_from_inspect():
    routes = {("GET", "/containers/t/json"): lambda h: json_reply({"Id": "t", "Config": {"Tty": True}}),
              ("GET", "/containers/t/logs"): lambda h: (200, {}, [b"raw\r\n", b"more"])}
    with StubServer(routes) as server, Client(server.host) as client:
        with client.containers.stream_logs("t") as logs:
            assert b"".join(f.data for f in logs) == b"raw\r\nmore"
            assert logs.raw
        assert _query(server.seen[-1][1])["follow"] == ["1"]


def test_pull_progress_and_in_stream_error():
    good = _lines({"status": "Pulling from library/busybox", "id": "latest"},
                  {"status": "Downloading", "id": "abc", "progressDetail": {"current": 5, "total": 10}},
                  {"status": "Status: Downloaded newer image for busybox:latest"})
    bad = _lines({"status": "Pulling fs layer", "id": "abc"},
                 {"errorDetail": {"message": "unauthorized"}, "error": "unauthorized"})
    routes = {("POST", "/images/create"): lambda h: (200, {}, bad if "bad" in h.path else good)}
    with StubServer(routes) as server, Client(server.host) as client:
        with client.images.pull("busybox") as progress:
            events = list(progress)
        assert [e.status for e in events][-1].startswith("Status: Downloaded")
        assert events[1].current == 5 and events[1].total == 10
        q = _query(server.seen[-1][1])
        assert q == {"fromImage": ["busybox"], "tag": ["latest"]}
        assert server.seen[-1][2]["X-Registry-Auth"] == "e30="
        with pytest.raises(APIError, match="unauthorized"), client.images.pull("bad:1") as progress:
            list(progress)


def test_pull_by_digest_sends_the_digest_as_tag():
    digest = "sha256:" + "a" * 64
    with StubServer({("POST", "/images/create"): lambda h: (200, {}, [])}) as server, \
            Client(server.host) as client:
        client.images.pull(f"127.0.0.1:5000/app@{digest}").drain()
        assert _query(server.seen[-1][1]) == {"fromImage": ["127.0.0.1:5000/app"], "tag": [digest]}


def test_stored_credentials_go_into_x_registry_auth(tmp_path):
    from workbench.client import AuthConfig

    with StubServer({("POST", "/images/create"): lambda h: (200, {}, []),
                     ("POST", "/images/127.0.0.1:5000/app/push"): lambda h: (200, {}, [])}) as server:
        with Client(server.host, config_dir=tmp_path) as client:
            client.credentials.store("127.0.0.1:5000", AuthConfig(username="u", password="p"))
            client.images.pull("127.0.0.1:5000/app:1").drain()
            client.images.push("127.0.0.1:5000/app:1").drain()
        for seen in server.seen[-2:]:
            auth = json.loads(base64.urlsafe_b64decode(seen[2]["X-Registry-Auth"]))
            assert auth == {"username": "u", "password": "p", "serveraddress": "127.0.0.1:5000"}
        assert _query(server.seen[-1][1]) == {"tag": ["1"]}


def test_build_sends_context_and_params_and_finds_the_image_id(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    (tmp_path / "keep.txt").write_text("k")
    (tmp_path / "skip.log").write_text("s")
    (tmp_path / ".dockerignore").write_text("*.log\n")
    image_id = "sha256:" + "b" * 64
    reply = _lines({"stream": "Step 1/1 : FROM busybox\n"}, {"aux": {"ID": image_id}},
                   {"stream": "Successfully built bbbbbbbbbbbb\n"})
    with StubServer({("POST", "/build"): lambda h: (200, {}, reply)}) as server, \
            Client(server.host) as client:
        with client.build(tmp_path, tags=["app:1", "app:latest"], buildargs={"A": "1"}, nocache=True,
                          labels={"k": "v"}, target="final") as progress:
            streams = [e.stream for e in progress if e.stream]
        assert progress.image_id == image_id
        assert streams[0] == "Step 1/1 : FROM busybox\n"
        method, path, headers, body = server.seen[-1]
        q = _query(path)
        assert q["t"] == ["app:1", "app:latest"] and json.loads(q["buildargs"][0]) == {"A": "1"}
        assert q["nocache"] == ["1"] and q["target"] == ["final"] and q["dockerfile"] == ["Dockerfile"]
        assert json.loads(q["labels"][0]) == {"k": "v"} and q["version"] == ["1"]
        names = tarfile.open(fileobj=io.BytesIO(body)).getnames()
        assert sorted(names) == [".dockerignore", "Dockerfile", "keep.txt"]
        assert base64.urlsafe_b64decode(headers["X-Registry-Config"]) == b"{}"


def test_build_failure_raises_build_error_with_log():
    reply = _lines({"stream": "Step 1/2 : FROM busybox\n"}, {"stream": "Step 2/2 : RUN exit 7\n"},
                   {"stream": " ---> Running in abc\n"},
                   {"errorDetail": {"code": 7, "message": "The command '/bin/sh -c exit 7' returned a "
                                    "non-zero code: 7"}, "error": "The command ... 7"})
    with StubServer({("POST", "/build"): lambda h: (200, {}, reply)}) as server, \
            Client(server.host) as client:
        stream = client.build(dockerfile_text="FROM busybox\nRUN exit 7\n")
        with pytest.raises(BuildError) as caught:
            stream.result()
        assert caught.value.code == 7 and caught.value.step == "Step 2/2 : RUN exit 7"
        assert "Running in abc" in caught.value.log
        body = server.seen[-1][3]
        tar = tarfile.open(fileobj=io.BytesIO(body))
        assert tar.extractfile("Dockerfile").read() == b"FROM busybox\nRUN exit 7\n"


def test_quiet_build_id_comes_from_the_stream_line():
    image_id = "sha256:" + "c" * 64
    with StubServer({("POST", "/build"): lambda h: (200, {}, _lines({"stream": image_id + "\n"}))}) as s, \
            Client(s.host) as client:
        assert client.build(b"not-really-a-tar", quiet=True).result() == image_id
        assert s.seen[-1][3] == b"not-really-a-tar"


def test_import_load_and_save():
    image_id = "sha256:" + "d" * 64
    routes = {
        ("POST", "/images/create"): lambda h: (200, {}, _lines({"status": image_id})),
        ("POST", "/images/load"): lambda h: (200, {}, _lines({"stream": "Loaded image: a:1\n"},
                                                              {"stream": "Loaded image ID: sha256:ee\n"})),
        ("GET", "/images/get"): lambda h: (200, {"Content-Type": "application/x-tar"}, [b"tar", b"bytes"]),
    }
    with StubServer(routes) as server, Client(server.host) as client:
        assert client.images.import_(b"rootfs", repository="base:1", changes=['CMD ["sh"]', "ENV A=1"],
                                     message="m") == image_id
        method, path, headers, body = server.seen[-1]
        assert body == b"rootfs"
        assert _query(path) == {"fromSrc": ["-"], "repo": ["base:1"], "changes": ['CMD ["sh"]', "ENV A=1"],
                                "message": ["m"]}
        assert client.images.load(io.BytesIO(b"x" * 300000)) == ["a:1", "sha256:ee"]
        assert len(server.seen[-1][3]) == 300000
        with client.images.save(["a:1", "b:2"]) as tar:
            assert tar.read() == b"tarbytes"
        assert _query(server.seen[-1][1]) == {"names": ["a:1", "b:2"]}


def test_create_sends_the_spec_and_returns_id_and_warnings():
    def create(h):
        h.server.body = json.loads(h.body)
        return json_reply({"Id": "f" * 64, "Warnings": ["careful"]}, 201)

    with StubServer({("POST", "/containers/create"): create}) as server, Client(server.host) as client:
        created = client.containers.create("busybox", "sh -c 'echo hi'", name="x", env={"A": "1"},
                                           ports={"80/tcp": ("127.0.0.1", 8080)}, memory="64m", cpus=0.5,
                                           auto_remove=True, restart_policy="on-failure:2")
        assert created.id == "f" * 64 and created.warnings == ("careful",)
        body = server.body
        assert body["Cmd"] == ["sh", "-c", "echo hi"] and body["Env"] == ["A=1"]
        assert body["ExposedPorts"] == {"80/tcp": {}}
        host = body["HostConfig"]
        assert host["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
        assert host["Memory"] == 64 * 1024 * 1024 and host["NanoCpus"] == 500_000_000
        assert host["AutoRemove"] is True and host["NetworkMode"] == "default"
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert _query(server.seen[-1][1]) == {"name": ["x"]}
        with pytest.raises(TypeError):
            client.containers.create("busybox", no_such_option=1)


def test_wait_archive_and_attach_without_upgrade():
    stat = base64.b64encode(json.dumps({"name": "etc", "size": 4096, "mode": 2147484141,
                                        "mtime": "2024-01-01T00:00:00Z", "linkTarget": ""}).encode()).decode()
    routes = {
        ("POST", "/containers/c/wait"): lambda h: (200, {}, [b'{"Error":null,"StatusCode":3}\n']),
        ("GET", "/containers/c/archive"): lambda h: (200, {"X-Docker-Container-Path-Stat": stat}, [b"tar"]),
        ("POST", "/containers/c/attach"): lambda h: (200, {}, [frame(1, b"hello\n")]),
    }
    with StubServer(routes) as server, Client(server.host) as client:
        result = client.containers.wait("c", "next-exit")
        assert (result.status_code, result.error) == (3, None)
        assert _query(server.seen[-1][1]) == {"condition": ["next-exit"]}
        with client.containers.get_archive("c", "/etc") as archive:
            assert archive.stat.name == "etc" and archive.stat.is_dir
            assert archive.read() == b"tar"
        with client.containers.attach("c", tty=False) as attached:
            assert not attached.writable
            with pytest.raises(InvalidArgument):
                attached.send(b"x")
            assert list(attached) == [LogFrame(1, b"hello\n")]
        assert server.seen[-1][2]["Upgrade"] == "tcp"
