"""Fixtures for the network tests: a NetworkService on a temporary root with its own tag, and
`Box`, a busybox "container" without a runtime: a chroot dir (so /etc/hosts is the box's own
hosts file) whose processes are started inside the box's network namespace.

Only loopback and the tests' own namespaces are ever addressed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workbench.engine.network import netns
from workbench.engine.network.cleanup import leftovers, remove_engine_state
from workbench.engine.services.networks import NetworkService
from workbench.engine.store.metadata import Metadata


def require_net() -> None:
    if os.geteuid() != 0:
        pytest.fail("the network tests need root (namespaces, bridges, nftables)")
    if shutil.which("nft") is None:
        pytest.fail("nft is required: apt-get install nftables (make setup does it)")
    if not Path("/bin/busybox").exists():
        pytest.fail("busybox is required: apt-get install busybox-static")


@pytest.fixture
def netroot(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


@pytest.fixture
def netsvc(netroot: Path) -> Iterator[NetworkService]:
    """A started NetworkService; on exit everything it made must be gone."""
    require_net()
    tag = secrets.token_hex(3)
    svc = NetworkService(Metadata(netroot / "metadata.db"), netroot / "run", tag)
    svc.list()
    try:
        yield svc
    finally:
        svc.destroy()
        left = leftovers(tag, netroot / "run")
        remove_engine_state(tag, netroot / "run")
        assert not left["links"] and not left["table"], left


class Box:
    """A busybox chroot with its own hosts file, run inside a network namespace set up by the service."""

    def __init__(self, base: Path, name: str) -> None:
        self.name = name
        self.cid = secrets.token_hex(32)
        self.root = base / "boxes" / name
        for d in ("bin", "etc", "www", "tmp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        try:
            os.link("/bin/busybox", self.root / "bin" / "busybox")
        except OSError:
            shutil.copy2("/bin/busybox", self.root / "bin" / "busybox")
        for applet in ("sh", "wget", "nc", "ping", "httpd", "cat", "timeout", "sleep", "echo", "ip"):
            (self.root / "bin" / applet).symlink_to("busybox")
        self.hosts = self.root / "etc" / "hosts"
        self.hosts.write_text("")
        (self.root / "www" / "index.html").write_text(f"hello from {name}\n")
        self.net: Any = None
        self.procs: list[subprocess.Popen[bytes]] = []

    def setup(self, svc: NetworkService, mode: str = "bridge", endpoints: dict[str, Any] | None = None,
              ports: dict[str, Any] | None = None, exposed: list[str] | None = None, publish_all: bool = False):
        self.net = svc.setup_container(self.cid, self.name, self.name, mode, endpoints or {}, ports or {},
                                       exposed or [], publish_all, hosts_path=str(self.hosts))
        (self.root / "etc" / "resolv.conf").write_text(self.net.resolv_conf)
        return self.net

    def ip(self, network: str) -> str:
        return self.net.networks[network]["IPAddress"]

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen[bytes]:
        path = self.net.netns_path
        if path in (None, "host"):
            raise AssertionError("box has no namespace of its own")
        with netns.entered(path):
            p = subprocess.Popen(["chroot", str(self.root), "/bin/busybox", *args],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        self.procs.append(p)
        return p

    def run(self, *args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
        with netns.entered(self.net.netns_path):
            return subprocess.run(["chroot", str(self.root), "/bin/busybox", *args], capture_output=True,
                                  text=True, timeout=timeout)

    def httpd(self, port: int = 80) -> None:
        self.popen("httpd", "-f", "-p", str(port), "-h", "/www")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.fetch("127.0.0.1", port, timeout=1) is not None:
                return
            time.sleep(0.05)
        raise AssertionError("httpd did not start")

    def fetch(self, host: str, port: int = 80, timeout: int = 3) -> str | None:
        """GET http://host:port/index.html from inside the box; None when it cannot connect."""
        r = self.run("timeout", str(timeout), "wget", "-q", "-O-", f"http://{host}:{port}/index.html",
                     timeout=timeout + 5)
        return r.stdout if r.returncode == 0 else None

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs.clear()


@pytest.fixture
def boxes(netroot: Path) -> Iterator[Any]:
    made: list[Box] = []

    def make(name: str) -> Box:
        b = Box(netroot, name)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


def host_fetch(port: int, host: str = "127.0.0.1", timeout: int = 3) -> str | None:
    r = subprocess.run(["busybox", "timeout", str(timeout), "busybox", "wget", "-q", "-O-",
                        f"http://{host}:{port}/index.html"], capture_output=True, text=True, timeout=timeout + 5)
    return r.stdout if r.returncode == 0 else None


def free_subnet(prefix: int = 24) -> str:
    from workbench.engine.network import ipam
    pools = [ipam.PoolSpec("10.200.0.0/16", prefix), ipam.PoolSpec("10.201.0.0/16", prefix)]
    return str(ipam.pick_subnet([], ipam.host_routes(), pools))
