"""Session fixtures: ONE engine daemon per test session on a temporary root and socket, and a
busybox image bootstrapped once from the host's static busybox.

`engine.host` is "unix:///...", `engine.root` the daemon's root, `engine.api` an httpx client on
the socket, `engine.client()` a workbench.client.Client.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.helpers import busybox_rootfs_tar, forget_engine, mounts_under, ping


@dataclass
class EngineHandle:
    root: Path
    sock: Path
    proc: subprocess.Popen
    api: httpx.Client
    log: Path
    extra: dict = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def client(self):
        from workbench.client import Client
        return Client(self.host)

    def restart(self, kill: bool = False) -> None:
        """Stop (SIGTERM, or SIGKILL when `kill`) and start the daemon again on the same root."""
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.proc.wait(30)
        self.proc = start_daemon(self.root, self.sock, self.log)


def start_daemon(root: Path, sock: Path, log: Path, extra_args: list[str] = (),
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    with open(log, "ab") as lf:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.engine.daemon", "--root", str(root),
                                 "--host", f"unix://{sock}", *extra_args], stdout=lf, stderr=lf, env=full_env,
                                start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        if ping(str(sock)):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"daemon did not answer:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def own_engine(prefix: str = "wbt-", env: dict[str, str] | None = None,
               args: list[str] = ()) -> Iterator[EngineHandle]:
    """A daemon on a temporary root of its own (with `env` added to its environment and `args` to
    its command line), torn down afterwards: containers removed, daemon stopped, bridge and mounts
    gone."""
    if os.geteuid() != 0:
        pytest.fail("the engine tests need root (namespaces, overlay mounts, cgroups)")
    if shutil.which("runc") is None:
        pytest.fail("runc is required: apt-get install runc (make setup does it)")
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root, sock, log = base / "root", base / "engine.sock", base / "engine.log"
    proc = start_daemon(root, sock, log, list(args), env=env)
    api = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://docker", timeout=60)
    handle = EngineHandle(root, sock, proc, api, log)
    try:
        yield handle
    finally:
        _teardown(handle, base)


@pytest.fixture(scope="session")
def engine() -> Iterator[EngineHandle]:
    with own_engine() as handle:
        yield handle


def _teardown(h: EngineHandle, base: Path) -> None:
    try:
        for c in h.api.get("/containers/json", params={"all": 1}).json():
            h.api.delete(f"/containers/{c['Id']}", params={"force": 1, "v": 1})
    except Exception:
        pass
    h.api.close()
    h.proc.send_signal(signal.SIGTERM)
    try:
        h.proc.wait(30)
    except subprocess.TimeoutExpired:
        h.proc.kill()
    forget_engine(h.root)
    for m in sorted(mounts_under(base), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox(engine: EngineHandle) -> str:
    """busybox:latest in the session engine, imported once; returns the image ID."""
    r = engine.api.post("/images/create", params={"fromSrc": "-", "repo": "busybox", "tag": "latest",
                                                  "changes": 'CMD ["sh"]'},
                        content=busybox_rootfs_tar(), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    return r.json()["status"]
