"""How container monitors get started: forked by one monitor server per Runtime, or spawned.

A monitor is a small Python program (monitor.py), but an interpreter start still costs ~10 ms of
CPU, and on a two-core host that CPU came straight out of the container start it served (the
runtime's own processes wait for a core). So a Runtime keeps one **monitor server**
(`monitor.py --server`): an interpreter with the monitor already imported that forks a monitor
per container, for ~1 ms. The server is a child in its own session; the monitors it forks start
their own sessions at once, are reaped by the kernel when they end (the server ignores SIGCHLD),
and outlive the server and the daemon alike, as containers must.

Protocol, over a Unix stream socket that is the server's stdin: the daemon sends the monitor's
argument list as one line of JSON, with the write end of the container's sync pipe attached
(SCM_RIGHTS); the server forks, and replies `pid <n>` with a pidfd of the monitor attached (or
`err <message>`). The server passes the received fd to the monitor as its `sync=` flag. EOF on the
socket ends the server.

A request is sent once. If sending fails, the server is replaced and the request sent to the new
one; if the server refuses (`err`), the monitor is spawned directly, as before the server existed.
But once a request is delivered it is never sent again, even when no reply comes (a second monitor
of the same container would fight the first): the server is killed and the caller learns the
monitor's pid from its report and monitor.pid instead (`LaunchedMonitor.pid` None).
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["LaunchedMonitor", "MonitorLauncher", "alive", "monitor_pid", "pidfd_of", "read_report"]

REPLY_TIMEOUT = 10.0


class LaunchedMonitor:
    """A started monitor: its pid (None: delivered, unconfirmed), a pidfd on it when the server sent
    one (the caller owns it), and the Popen when we spawned it ourselves."""

    __slots__ = ("pid", "pidfd", "proc")

    def __init__(self, pid: int | None, proc: subprocess.Popen[bytes] | None = None,
                 pidfd: int | None = None) -> None:
        self.pid, self.proc, self.pidfd = pid, proc, pidfd


class _Refused(Exception):
    """The server answered `err` (it could not fork): spawn this monitor directly."""


class MonitorLauncher:
    """Starts monitors through the monitor server (see the module docstring); thread-safe."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], runc: Any) -> None:
        self._cmd = list(cmd)
        self._env = env
        self._runc = runc                  # holds the runtime's sealed copy open while we may need it
        self._pass_fds = tuple(runc.pass_fds)
        self._lock = threading.Lock()
        self._server: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._closed = False

    def warm(self) -> None:
        """Start the server ahead of the first container (in the background)."""
        threading.Thread(target=self._warm, name="monitor-server", daemon=True).start()

    def _warm(self) -> None:
        with self._lock:
            if self._sock is None and not self._closed:
                with contextlib.suppress(OSError):
                    self._start_server()

    def launch(self, args: list[str], sync_fd: int, cdir: Path) -> LaunchedMonitor:
        """Start the monitor of one container. `args` are monitor.py's arguments whose flags hold
        `sync=<sync_fd>`; `sync_fd` stays the caller's to close. Raises OSError when neither the
        server nor a direct spawn could start it."""
        with self._lock:
            for _ in range(0 if self._closed else 2):     # a server that died is replaced once
                try:
                    if self._sock is None:
                        self._start_server()
                    self._send(args, sync_fd)
                except OSError:
                    self._stop_server()
                    continue
                try:
                    pid, pidfd = self._reply()
                    return LaunchedMonitor(pid, None, pidfd)
                except _Refused:
                    break
                except (OSError, ValueError):                 # delivered, but no (good) reply
                    self._stop_server(kill=True)
                    return LaunchedMonitor(None)
        with open(cdir / "monitor.log", "ab") as log:
            proc = subprocess.Popen([*self._cmd, *args], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    pass_fds=(sync_fd, *self._pass_fds), start_new_session=True,
                                    env=self._env, cwd=cdir)
        return LaunchedMonitor(proc.pid, proc)

    def close(self) -> None:
        """Let the server go (it exits on EOF); monitors it forked keep running. Later launches
        spawn their monitors directly."""
        with self._lock:
            self._closed = True
            self._stop_server()

    # -- the server ------------------------------------------------------------------------------
    def _start_server(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._server = subprocess.Popen([*self._cmd, "--server"], stdin=theirs, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, pass_fds=self._pass_fds,
                                            start_new_session=True, env=self._env, cwd="/")
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(REPLY_TIMEOUT)
        self._sock = ours

    def _stop_server(self, *, kill: bool = False) -> None:
        sock, self._sock = self._sock, None
        server, self._server = self._server, None
        if sock is not None:
            sock.close()
        if server is not None:
            if kill:
                server.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(2)

    def _send(self, args: list[str], sync_fd: int) -> None:
        assert self._sock is not None
        line = json.dumps(args).encode() + b"\n"
        sent = self._sock.sendmsg([line], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [sync_fd]))])
        if sent < len(line):          # the fd went with the first byte: the rest follows as plain data
            self._sock.sendall(line[sent:])

    def _reply(self) -> tuple[int, int | None]:
        assert self._sock is not None
        reply, fds = b"", array.array("i")
        try:
            while not reply.endswith(b"\n"):
                chunk, ancillary, _, _ = self._sock.recvmsg(256, socket.CMSG_SPACE(4))
                for level, kind, payload in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(payload[: len(payload) - len(payload) % 4])
                if not chunk:
                    raise OSError("the monitor server went away")
                reply += chunk
            kind, _, rest = reply.decode().strip().partition(" ")
            if kind != "pid":
                raise _Refused(rest)
            pid = int(rest)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        for extra in fds[1:]:
            os.close(extra)
        return pid, (fds[0] if fds else None)


# ---- monitor processes, as the daemon sees them ----------------------------------------------

def pidfd_of(pid: int) -> int | None:
    """A pidfd on `pid` (readable once it exits), or None where pidfds are not to be had."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def read_report(fd: int, timeout: float) -> str:
    """The monitor's one-line start report from the sync pipe ("" on EOF or timeout)."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(left * 1000):
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").split("\n", 1)[0]


def monitor_pid(cdir: Path) -> tuple[int, str, str] | None:
    """(pid, start time, container id) from the monitor.pid the monitor wrote, or None."""
    try:
        fields = (cdir / "monitor.pid").read_text().split()
        return int(fields[0]), fields[1], fields[2]
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int, start: str) -> bool:
    """Whether `pid` runs and is the process that started at `start` (no zombie, no reused pid)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return stat[19] == start and stat[0] not in ("Z", "X")
