"""Servers a notebook starts and keeps running beside the kernel: `%docker registry serve`.

The CLI's `registry serve` runs in the foreground; in a cell that would block the kernel forever, so
the magic starts the same command as a child process, waits until it answers `GET /v2/`, and returns
a handle whose `stop()` ends it (it also ends when the kernel exits).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from workbench.errors import Unavailable

__all__ = ["BackgroundServer", "serve_registry"]


@dataclass
class BackgroundServer:
    """A child process serving on `address`; `stop()` ends it."""

    name: str
    address: str
    process: subprocess.Popen[bytes]
    log: str

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """End the server and remove its log file."""
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        with contextlib.suppress(OSError):
            os.unlink(self.log)

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.process.returncode}"
        return f"<{self.name} on {self.address}, pid {self.process.pid}, {state}>"


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
        conn = http.client.HTTPConnection(host.strip("[]") or "127.0.0.1", int(port), timeout=1)
        conn.request("GET", "/v2/")
        status = conn.getresponse().status
        conn.close()
        return status in (200, 401)
    return False


def serve_registry(args: Any, timeout: float = 30.0) -> BackgroundServer:
    """Start `workbench registry serve` with the parsed `args` as a child; wait until it answers."""
    import tempfile

    argv = [sys.executable, "-m", "workbench.cli.main", "registry", "serve", "--root", args.root,
            "--addr", args.addr]
    if args.htpasswd:
        argv += ["--htpasswd", args.htpasswd]
    if args.read_only:
        argv.append("--read-only")
    log = tempfile.NamedTemporaryFile(prefix="wb-registry-", suffix=".log", delete=False)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    server = BackgroundServer("registry", args.addr, proc, log.name)
    atexit.register(server.stop)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log.name) as f:
                tail = f.read()[-500:].strip()
            raise Unavailable(f"the registry exited with {proc.returncode}: {tail}")
        if _answers(args.addr):
            print(f"registry serving {args.root} on http://{args.addr} (pid {proc.pid}); .stop() ends it")
            return server
        time.sleep(0.05)
    with open(log.name) as f:
        tail = f.read()[-500:].strip()
    server.stop()
    raise Unavailable(f"the registry did not answer on {args.addr} within {timeout:.0f} s: {tail or 'no output'}")
