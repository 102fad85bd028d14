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
(SCM_RIGHTS); the server forks, and replies `pid <n>` (or `err <message>`). The server passes
the received fd to the monitor as its `sync=` flag. EOF on the socket ends the server.

When the server cannot be reached (it died, or the host refuses fork), `launch` spawns the
monitor directly, as before the server existed.
"""

from __future__ import annotations

import array
import contextlib
import json
import socket
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["LaunchedMonitor", "MonitorLauncher"]

REPLY_TIMEOUT = 10.0


class LaunchedMonitor:
    """A started monitor: its pid, and the Popen when we spawned it ourselves (else None)."""

    __slots__ = ("pid", "proc")

    def __init__(self, pid: int, proc: subprocess.Popen[bytes] | None) -> None:
        self.pid, self.proc = pid, proc


class MonitorLauncher:
    """Starts monitors through the monitor server (see the module docstring); thread-safe."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], pass_fds: Sequence[int]) -> None:
        self._cmd = list(cmd)
        self._env = env
        self._pass_fds = tuple(pass_fds)
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
                    return LaunchedMonitor(self._ask(args, sync_fd), None)
                except (OSError, ValueError):
                    self._stop_server()
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

    def _stop_server(self) -> None:
        sock, self._sock = self._sock, None
        server, self._server = self._server, None
        if sock is not None:
            sock.close()
        if server is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(2)

    def _ask(self, args: list[str], sync_fd: int) -> int:
        assert self._sock is not None
        line = json.dumps(args).encode() + b"\n"
        self._sock.sendmsg([line], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [sync_fd]))])
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = self._sock.recv(256)
            if not chunk:
                raise OSError("the monitor server went away")
            reply += chunk
        kind, _, rest = reply.decode().strip().partition(" ")
        if kind != "pid":
            raise OSError(f"the monitor server could not fork: {rest}")
        return int(rest)
