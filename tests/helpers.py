"""Test helpers shared by the suites: busybox rootfs tars, mount listing, socket pings."""

from __future__ import annotations

import socket
import ssl
import subprocess
from functools import lru_cache
from pathlib import Path


def ping(sock: str) -> bool:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(sock)
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        ok = s.recv(32).startswith(b"HTTP/1.1 200")
        s.close()
        return ok
    except OSError:
        return False


def mounts_under(base: Path) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if mp.startswith(str(base)):
            out.append(mp)
    return out


def forget_engine(root: Path) -> None:
    """After a test's engine on `root` has stopped: remove its bridge, veths, rules and netns mounts
    (a stopped engine keeps them for its containers), so test runs do not use up the address pools."""
    from workbench.engine.config import DaemonConfig
    from workbench.engine.network.cleanup import remove_engine_state
    remove_engine_state(DaemonConfig(root=root).tag, root / "run")


@lru_cache(maxsize=1)
def busybox_rootfs_tar() -> bytes:
    """The rootfs tar `workbench image bootstrap busybox` imports (host's static busybox + applets)."""
    from workbench.cli.bootstrap import busybox_rootfs
    return busybox_rootfs()


def self_signed_tls(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate (openssl), files in `directory`."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=registry.test"], check=True, capture_output=True)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    return tls
