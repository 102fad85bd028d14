"""Helpers for the live tests: free loopback ports and a `workbench registry serve` process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(tmp: Path, htpasswd: Path | None = None, *extra: str) -> tuple[subprocess.Popen, str]:
    """`workbench registry serve --root tmp/reg` on a free port (`extra` options added)."""
    addr = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "workbench.cli.main", "registry", "serve", "--root", str(tmp / "reg"),
            "--addr", addr, *extra]
    if htpasswd:
        argv += ["--htpasswd", str(htpasswd)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    log = tmp / "registry.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    host, port = addr.split(":")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), 0.2).close()
            return proc, addr
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"registry exited:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("registry did not start")
