"""Helpers for the push/pull tests: engine API calls, progress-stream readers, peer registries.

Everything is real: the session engine daemon over its Unix socket, our registry server on a
loopback port (registry_support.Served, in a thread), Debian's docker-registry as a process.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

DISTRIBUTION = shutil.which("docker-registry")


@dataclass
class Reply:
    status: int
    events: list[dict[str, Any]]
    raw: bytes

    @property
    def message(self) -> str:
        return json.loads(self.raw).get("message", "") if self.status != 200 else ""

    @property
    def error(self) -> str | None:
        for ev in self.events:
            if "error" in ev:
                return str(ev["error"])
        return None

    def statuses(self, id: str | None = None) -> list[str]:
        """Statuses in order (for one layer id), consecutive repeats folded."""
        out: list[str] = []
        for ev in self.events:
            if "status" in ev and (id is None or ev.get("id") == id):
                if not out or out[-1] != ev["status"]:
                    out.append(ev["status"])
        return out

    def layer_ids(self) -> list[str]:
        ids: list[str] = []
        for ev in self.events:
            if "progressDetail" in ev and ev.get("id") and ev["id"] not in ids:
                ids.append(ev["id"])
        return ids

    def aux(self) -> dict[str, Any]:
        return next(ev["aux"] for ev in self.events if "aux" in ev)


def registry_auth(user: str = "", password: str = "", server: str = "") -> str:
    """X-Registry-Auth as the docker CLI sends it (base64url JSON)."""
    doc = {k: v for k, v in {"username": user, "password": password, "serveraddress": server}.items() if v}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


def _call(engine: Any, path: str, params: dict[str, str], auth: str | None) -> Reply:
    headers = {"X-Registry-Auth": auth if auth is not None else "e30="}
    with engine.api.stream("POST", path, params=params, headers=headers, timeout=120) as r:
        raw = r.read()
    events = [json.loads(line) for line in raw.splitlines() if line.strip()] if r.status_code == 200 else []
    return Reply(r.status_code, events, raw)


def push(engine: Any, name: str, tag: str | None = "1", auth: str | None = None) -> Reply:
    return _call(engine, f"/images/{name}/push", {"tag": tag} if tag else {}, auth)


def pull(engine: Any, image: str, tag: str | None = "1", auth: str | None = None,
         platform: str | None = None) -> Reply:
    params = {"fromImage": image}
    if tag:
        params["tag"] = tag
    if platform:
        params["platform"] = platform
    return _call(engine, "/images/create", params, auth)


def tag(engine: Any, source: str, repo: str, tag: str = "1") -> None:
    r = engine.api.post(f"/images/{source}/tag", params={"repo": repo, "tag": tag})
    assert r.status_code == 201, r.text


def inspect(engine: Any, name: str) -> dict[str, Any] | None:
    r = engine.api.get(f"/images/{name}/json")
    return r.json() if r.status_code == 200 else None


def rmi(engine: Any, name: str) -> None:
    r = engine.api.delete(f"/images/{name}", params={"force": 1})
    assert r.status_code == 200, r.text


def host(url: str) -> str:
    return url.removeprefix("http://")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_distribution(root: Path, htpasswd: Path | None = None) -> tuple[str, subprocess.Popen]:
    """Debian's docker-registry (CNCF distribution) on a free loopback port, with its own storage."""
    if DISTRIBUTION is None:
        pytest.fail("docker-registry is required: apt-get install docker-registry (make setup does it)")
    port = free_port()
    config = root / "distribution.yml"
    auth = f"auth: {{htpasswd: {{realm: basic-realm, path: {htpasswd}}}}}\n" if htpasswd else ""
    config.write_text(f"""version: 0.1
log: {{level: error}}
storage:
  filesystem: {{rootdirectory: {root / 'distribution'}}}
  delete: {{enabled: true}}
http: {{addr: 127.0.0.1:{port}}}
{auth}""")
    proc = subprocess.Popen([DISTRIBUTION, "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/v2/", timeout=1)
            return url, proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("docker-registry did not start")


def assert_no_unpack_left(engine) -> None:
    """Layers unpacked for a failed pull are dropped, not left in the snapshot store."""
    snaps = engine.root / "snapshots" / "snapshots"
    for _ in range(100):
        left = sorted(p.name for p in snaps.glob(".tmp-*"))
        if not left:
            return
        time.sleep(0.05)   # a cancelled layer's directory is removed off the event loop
    inside = {name: sorted(str(p.relative_to(snaps / name)) for p in (snaps / name).rglob("*")) for name in left}
    raise AssertionError(f"left behind in {snaps}: {inside}")
