"""The notebook's connection to the engine and its per-kernel state.

`load_ipython_extension` creates one `NotebookSession` and makes it current; the magics, the views and
the widgets all use `current_client()`, so one kernel talks to one engine. Without the extension (plain
Python, views only) `current_client()` makes a `Client()` for `WORKBENCH_HOST` on first use.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.client import Client

__all__ = ["NotebookSession", "current", "current_client", "engine_answers", "set_current"]

_current: NotebookSession | None = None


@dataclass
class NotebookSession:
    """What one kernel keeps: the client, the lock file, pinning, and short-lived name caches."""

    host: str
    client: Client
    lock_path: Path
    pinned: bool = False
    last_error: BaseException | None = None
    _names: dict[str, tuple[float, list[str]]] = field(default_factory=dict)

    def cached_names(self, kind: str, fetch: Any, ttl: float = 3.0) -> list[str]:
        """Image or container names for completion, asked again after `ttl` seconds."""
        now = time.monotonic()
        hit = self._names.get(kind)
        if hit and now - hit[0] < ttl:
            return hit[1]
        try:
            names = fetch()
        except Exception:  # completion must never raise
            names = hit[1] if hit else []
        self._names[kind] = (now, names)
        return names

    def forget_names(self) -> None:
        self._names.clear()


def current() -> NotebookSession | None:
    return _current


def set_current(session: NotebookSession | None) -> None:
    global _current
    _current = session


def current_client() -> Client:
    """The extension's client when loaded, else one for `WORKBENCH_HOST` (kept for the process)."""
    global _current
    if _current is None:
        from workbench.client import Client, resolve_host

        host = resolve_host(None).url
        _current = NotebookSession(host, Client(host), default_lock_path())
    return _current.client


def default_lock_path() -> Path:
    """`workbench.lock` beside the notebook: `$WORKBENCH_LOCK`, else the notebook's folder (Jupyter sets
    `JPY_SESSION_NAME` to the notebook's path), else the kernel's working directory (which Jupyter and
    `workbench.pipelines` set to the notebook's folder)."""
    explicit = os.environ.get("WORKBENCH_LOCK")
    if explicit:
        return Path(explicit)
    session = os.environ.get("JPY_SESSION_NAME", "")
    if session.endswith(".ipynb"):
        folder = Path(session).parent
        if folder.is_dir():
            return folder / "workbench.lock"
    return Path.cwd() / "workbench.lock"


def engine_answers(host: str, timeout: float = 1.0) -> bool:
    """A quick `GET /_ping` with a short timeout (the client's own timeout is a minute)."""
    from workbench.client import resolve_host

    h = resolve_host(host)
    try:
        if h.scheme == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(h.address)
        else:
            hostname, _, port = h.address.rpartition(":")
            s = socket.create_connection((hostname.strip("[]"), int(port or 80)), timeout=timeout)
        with s:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return s.recv(32).startswith(b"HTTP/1.1 200")
    except (OSError, ValueError):
        return False
