"""The standalone entry point: `serve()` in its own process, with htpasswd and two workers."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from registry_support import make_image

from workbench.engine.registry.auth import make_htpasswd_line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_standalone_with_workers(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(make_htpasswd_line("ci", "pw", rounds=4) + "\n")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workbench.engine.registry.standalone",
                             "--root", str(tmp_path / "root"), "--addr", f"127.0.0.1:{port}",
                             "--htpasswd", str(htpasswd), "--workers", "2"])
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{url}/v2/").status_code == 401:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        time.sleep(0.5)                               # the second worker binds the same port
        image = make_image("serve")
        # many short connections land on both workers; chunked uploads cross between them
        for d, data in image.blobs.items():
            with httpx.Client(base_url=url, auth=("ci", "pw")) as c:
                r = c.post("/v2/served/app/blobs/uploads/")
                loc = r.headers["Location"]
            half = len(data) // 2
            with httpx.Client(base_url=url, auth=("ci", "pw")) as c:
                r = c.patch(loc, content=data[:half], headers={"Content-Range": f"0-{half - 1}"})
                assert r.status_code == 202
            with httpx.Client(base_url=url, auth=("ci", "pw")) as c:
                assert c.put(f"{loc}?digest={d}", content=data[half:]).status_code == 201
        with httpx.Client(base_url=url, auth=("ci", "pw")) as c:
            r = c.put("/v2/served/app/manifests/v1", content=image.manifest,
                      headers={"Content-Type": image.media_type})
            assert r.status_code == 201
            for _ in range(10):
                assert c.get("/v2/served/app/manifests/v1").content == image.manifest
            assert c.get("/v2/_catalog").json() == {"repositories": ["served/app"]}
        assert httpx.get(f"{url}/v2/served/app/tags/list", auth=("ci", "bad")).status_code == 401
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    assert (tmp_path / "root" / "blobs" / "sha256").is_dir()


def test_serve_coroutine_token_auth_and_cancel(tmp_path: Path) -> None:
    """`asyncio.run(serve(...))` as the CLI calls it: token auth, read-only, stops on cancel."""
    import asyncio

    from workbench.engine.registry import serve

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(make_htpasswd_line("ci", "pw", rounds=4) + "\n")
    port = _free_port()

    async def scenario() -> None:
        task = asyncio.create_task(serve(tmp_path / "root", f"127.0.0.1:{port}", htpasswd, True,
                                         token_auth=True))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            for _ in range(100):
                try:
                    r = await c.get("/v2/")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.02)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer realm=")
            tok = (await c.get("/token", params={"service": "workbench-registry"}, auth=("ci", "pw"))).json()
            c.headers["Authorization"] = f"Bearer {tok['token']}"
            assert (await c.get("/v2/")).status_code == 200
            assert (await c.post("/v2/x/blobs/uploads/")).status_code == 405      # read-only
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        with socket.socket() as s:                     # the port is free again
            s.bind(("127.0.0.1", port))

    asyncio.run(scenario())
    assert (tmp_path / "root" / ".token-secret").stat().st_mode & 0o777 == 0o600


def test_blob_gets_are_sent_with_sendfile(tmp_path: Path) -> None:
    """strace on the registry process while it serves a 32 MB blob four times: the bytes go out
    through sendfile(2), and nothing near that many is read(2) into the process."""
    if shutil.which("strace") is None:
        pytest.fail("strace is required: apt-get install strace (make setup does it)")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workbench.engine.registry.standalone",
                             "--root", str(tmp_path / "root"), "--addr", f"127.0.0.1:{port}"])
    tracer = None
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(f"{url}/v2/")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        data = os.urandom(32 << 20)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert httpx.post(f"{url}/v2/sf/app/blobs/uploads/?digest={digest}", content=data,
                          timeout=60).status_code == 201
        trace = tmp_path / "strace.txt"
        tracer = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=sendfile,read,pread64,readv",
                                   "-o", str(trace), "-p", str(proc.pid)], stderr=subprocess.DEVNULL)
        time.sleep(0.5)                                  # attached to every thread
        for _ in range(4):
            with httpx.stream("GET", f"{url}/v2/sf/app/blobs/{digest}", timeout=60) as r:
                got = hashlib.sha256()
                for chunk in r.iter_raw():
                    got.update(chunk)
                assert "sha256:" + got.hexdigest() == digest
        tracer.terminate()
        tracer.wait(10)
        sent = read = 0
        for call, result in re.findall(r"^\d+\s+(\w+)\(.*\)\s+=\s+(\d+)", trace.read_text(), re.M):
            if call == "sendfile":                      # "1234 sendfile(12, 13, [0] => [..], N) = n"
                sent += int(result)
            else:
                read += int(result)
        assert sent >= 4 * len(data), f"sendfile moved {sent} bytes"
        assert read < len(data) // 8, f"the registry read {read} bytes to serve 4 x {len(data)}"
    finally:
        if tracer is not None and tracer.poll() is None:
            tracer.kill()
        proc.terminate()
        proc.wait(10)
