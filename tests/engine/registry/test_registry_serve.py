"""The standalone entry point: `serve()` in its own process, with htpasswd and two workers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
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
    proc = subprocess.Popen([sys.executable, "-m", "workbench.engine.registry.server",
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
