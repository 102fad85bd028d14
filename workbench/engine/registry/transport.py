"""How the registry client reaches a registry: which URL, and an httpx transport for big blobs.

Plain HTTP is allowed only for loopback registries (127.0.0.0/8, ::1, localhost) and for the
ones the daemon is configured to treat as insecure; Docker Hub (`docker.io`) is
`https://registry-1.docker.io`; everything else is HTTPS.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
import threading
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["READ_SIZE", "base_url", "is_loopback", "large_read_transport", "ssl_context", "warm_up"]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
READ_SIZE = 256 << 10


def is_loopback(host: str) -> bool:
    """Whether `host[:port]` names this machine (127.0.0.0/8, ::1, localhost)."""
    name = host
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_insecure(domain: str, insecure: Iterable[str]) -> bool:
    host = domain.split(":", 1)[0] if domain.count(":") == 1 else domain.strip("[]")
    for entry in insecure:
        entry = entry.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
        if entry in (domain, host):
            return True
        if "/" in entry:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def base_url(domain: str, insecure: Iterable[str] = ()) -> str:
    """The URL a registry domain is reached at: https, or http for loopback and insecure ones."""
    if domain in (DOCKER_HUB, "index.docker.io"):
        return f"https://{DOCKER_HUB_API}"
    scheme = "http" if is_loopback(domain) or _is_insecure(domain, insecure) else "https"
    return f"{scheme}://{domain}"


class _LargeReadStream(httpcore.AsyncNetworkStream):
    """A network stream that reads up to READ_SIZE at a time whatever httpcore asks for."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max(max_bytes, READ_SIZE), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return _LargeReadStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _LargeReads(httpcore.AsyncNetworkBackend):
    """httpcore reads a response 64 KiB at a time, and every read costs the event loop the same
    fixed Python overhead (h11 events, anyio checkpoints). Blobs are megabytes: reading 256 KiB at
    a time halves the CPU a download takes (h11 accepts any amount of data per read)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        return _LargeReadStream(await self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        return _LargeReadStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """The process's one verifying TLS context. Loading the CA bundle takes ~20 ms, which every
    pull and push paid (twice) before the first byte moved; an SSLContext is safe to share."""
    return httpx.create_ssl_context()


def warm_up() -> None:
    """Build `ssl_context()` in the background (the daemon calls this at start)."""
    threading.Thread(target=ssl_context, name="tls-warm-up", daemon=True).start()


def large_read_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's transport, with its connection pool on the large-read backend (when httpx's layout
    is the one we know; otherwise the stock transport)."""
    transport = httpx.AsyncHTTPTransport(verify=ssl_context(), limits=limits)
    if isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context(), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=_LargeReads(httpcore.AnyIOBackend()))
    return transport
