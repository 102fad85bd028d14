"""The registry under misbehaving clients: requests racing on one upload session, clients that
stall or vanish mid-body, a push whose HEAD-skipped blobs meet gc, and the registry the engine
daemon serves itself (`--registry`)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx
from registry_support import Registry, digest_of, make_image
from test_pushpull_helpers import free_port, host, push, registry_auth, tag

from tests.conftest import own_engine
from tests.helpers import busybox_rootfs_tar
from workbench.engine.registry import BlobUploadUnknown
from workbench.engine.registry import server as registry_server
from workbench.engine.registry import storage as registry_storage
from workbench.engine.registry.auth import make_htpasswd_line
from workbench.engine.registry.gc import collect


def _session(registry: Registry, repo: str) -> str:
    r = registry.client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202
    return r.headers["Location"]


def _stalled(registry: Registry, method: str, target: str, length: int, sent: bytes) -> socket.socket:
    """A request whose body stops after `sent` (of `length`) bytes, connection left open."""
    s = socket.create_connection(("127.0.0.1", registry.served.port))
    s.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
              f"Content-Length: {length}\r\n\r\n".encode() + sent)
    return s


def test_a_closing_put_never_publishes_bytes_a_racing_patch_adds(registry: Registry) -> None:
    """PATCH 1000 bytes, then a slow second PATCH on the same session while the closing PUT names
    the digest of the first 1000: the PUT waits for the PATCH and then finds the digest wrong."""
    good = os.urandom(1000)
    loc = _session(registry, "rb/race")
    assert registry.client.patch(loc, content=good, headers={"Content-Range": "0-999"}).status_code == 202
    loc = registry.client.get(loc).headers["Location"]
    extra = os.urandom(3000)
    started = threading.Event()

    def slow_body():
        yield extra[:1000]
        started.set()
        time.sleep(0.4)
        yield extra[1000:]

    patched: list[int] = []
    t = threading.Thread(target=lambda: patched.append(httpx.patch(
        registry.url + loc, content=slow_body(), timeout=30).status_code))
    t.start()
    assert started.wait(10)
    time.sleep(0.1)
    put = registry.client.put(loc + ("&" if "?" in loc else "?") + f"digest={digest_of(good)}")
    t.join(30)
    assert patched == [202]
    assert put.status_code == 400 and put.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert registry.client.head(f"/v2/rb/race/blobs/{digest_of(good)}").status_code == 404
    assert not any(registry.storage.uploads_dir.iterdir())          # the session is gone


def test_a_request_that_waited_for_a_committed_session_never_writes_to_the_blob(registry: Registry) -> None:
    """The guard behind the test above, made deterministic: a writer that got the session's lock
    only after the commit moved its file into the blob store finds the session gone."""
    storage = registry.storage
    session = storage.upload_start("rb/guard")
    path, f = storage._open_session("rb/guard", session.uuid)         # hold the lock as a commit does
    failure: list[BaseException] = []

    def late_writer() -> None:
        try:
            storage.upload_writer("rb/guard", session.uuid, None).close()
        except BaseException as err:   # the test inspects it
            failure.append(err)

    t = threading.Thread(target=late_writer)
    t.start()
    time.sleep(0.2)
    os.rename(path / "data", path.parent / "moved-as-by-a-commit")      # what commit_file does
    f.close()
    t.join(10)
    assert failure and isinstance(failure[0], BlobUploadUnknown)
    assert (path.parent / "moved-as-by-a-commit").stat().st_size == 0   # nothing written to it


def test_stalled_uploads_do_not_stall_the_registry(registry: Registry, monkeypatch) -> None:
    """Twelve PATCHes stalled on one session: other requests still answer at once, the waiting
    ones get 416 after a bounded wait, and the stalled writer is cut off so the session is usable."""
    monkeypatch.setattr(registry_storage, "SESSION_LOCK_WAIT", 0.5)
    monkeypatch.setattr(registry_server, "BODY_IDLE_TIMEOUT", 2.0)
    loc = _session(registry, "rb/stall")
    socks = [_stalled(registry, "PATCH", loc, 1000, b"x" * 10) for _ in range(12)]
    try:
        time.sleep(0.2)
        t0 = time.monotonic()
        assert registry.client.get("/v2/rb/stall/tags/list").status_code in (200, 404)
        assert registry.client.post("/v2/rb/other/blobs/uploads/").status_code == 202
        assert time.monotonic() - t0 < 1.0
        replies = []
        for s in socks:
            s.settimeout(10)
            replies.append(s.recv(200).split(b"\r\n", 1)[0])
        assert replies.count(b"HTTP/1.1 416 Requested Range Not Satisfiable") >= 11, replies
        assert all(r.startswith((b"HTTP/1.1 416", b"HTTP/1.1 400")) for r in replies), replies
    finally:
        for s in socks:
            s.close()
    data = os.urandom(500)
    r = registry.client.put(loc + ("&" if "?" in loc else "?") + f"digest={digest_of(data)}", content=data)
    assert r.status_code == 201, r.text                    # the session took nothing from the stalled
    assert registry.client.get(f"/v2/rb/stall/blobs/{digest_of(data)}").content == data


def test_a_monolithic_upload_cut_short_leaves_no_session(registry: Registry) -> None:
    data = os.urandom(1000)
    s = _stalled(registry, "POST", f"/v2/rb/mono/blobs/uploads/?digest={digest_of(data)}", 1000, data[:10])
    time.sleep(0.2)
    assert len(list(registry.storage.uploads_dir.iterdir())) == 1
    s.close()                                              # the client vanishes mid-body
    deadline = time.monotonic() + 10
    while any(registry.storage.uploads_dir.iterdir()):
        assert time.monotonic() < deadline, "the session of the broken upload was left behind"
        time.sleep(0.05)
    assert registry.client.head(f"/v2/rb/mono/blobs/{digest_of(data)}").status_code == 404


def test_a_blob_a_pusher_was_told_exists_survives_gc_until_its_manifest(registry: Registry) -> None:
    """HEAD 200 lets a pusher skip a blob; gc running before the manifest PUT must not sweep it."""
    image = make_image("headskip", layers=2)
    for blob in image.blobs.values():
        registry.push_blob("rb/old", blob)                 # uploaded long ago, never referenced
    past = time.time() - 7200
    for dirpath, _, files in os.walk(registry.storage.root):
        for name in files:
            os.utime(os.path.join(dirpath, name), (past, past))
    for d in image.blobs:                                  # a new push asks first, and skips them
        assert registry.client.head(f"/v2/rb/old/blobs/{d}").status_code == 200
    assert collect(registry.storage).removed_blobs == ()
    registry.push_manifest("rb/old", "1", image.manifest, image.media_type)
    for d, data in image.blobs.items():
        assert registry.client.get(f"/v2/rb/old/blobs/{d}").content == data
    leftover = os.urandom(100)
    d = registry.push_blob("rb/old", leftover)           # without a HEAD, an old orphan still goes
    for p in (registry.storage.root / "blobs" / "sha256" / d.split(":")[1],
              registry.storage.repos_dir / "rb/old" / "_layers" / "sha256" / d.split(":")[1]):
        os.utime(p, (past, past))
    assert collect(registry.storage).removed_blobs == (d,)


def test_the_engine_daemon_serves_a_registry(tmp_path: Path) -> None:
    """`workbench engine start --registry HOST:PORT --registry-htpasswd FILE`: the daemon serves
    the Distribution API too (Basic auth from the htpasswd file), and can push to it."""
    port = free_port()
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(make_htpasswd_line("eve", "pw", rounds=4) + "\n")
    with own_engine("wbtr-", args=["--registry", f"127.0.0.1:{port}", "--registry-htpasswd", str(htpasswd)]) as eng:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/v2/", timeout=10).status_code == 401
        ping = httpx.get(f"{base}/v2/", timeout=10, auth=("eve", "pw"))
        assert ping.status_code == 200 and ping.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        r = eng.api.post("/images/create", params={"fromSrc": "-", "repo": "tiny", "tag": "1"},
                         content=busybox_rootfs_tar(), headers={"Content-Type": "text/plain"})
        assert r.status_code == 200, r.text
        repo = f"{host(base)}/served/tiny"
        tag(eng, "tiny:1", repo, "1")
        assert push(eng, repo, "1").error                                   # no credentials
        reply = push(eng, repo, "1", auth=registry_auth("eve", "pw"))
        assert reply.status == 200 and reply.error is None, reply.raw
        assert httpx.get(f"{base}/v2/_catalog", auth=("eve", "pw")).json() == {"repositories": ["served/tiny"]}
        assert httpx.get(f"{base}/v2/served/tiny/tags/list", auth=("eve", "pw")).json()["tags"] == ["1"]
        assert (eng.root / "registry" / "repositories" / "served" / "tiny" / "_tags" / "1").is_file()
