"""How the registry client reaches a registry: which URL, and the one TLS context.

Plain HTTP is allowed only for loopback registries (127.0.0.0/8, ::1, localhost) and for the
ones the daemon is configured to treat as insecure (after unverified TLS, see `RegistryClient`);
Docker Hub (`docker.io`) is `https://registry-1.docker.io`; everything else is HTTPS.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import ssl
import threading
from collections.abc import Iterable

import httpx

from workbench.oci.registry_hosts import is_insecure, is_loopback

__all__ = ["base_url", "is_loopback", "ssl_context", "unverified_ssl_context", "warm_up"]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


def base_url(domain: str, insecure: Iterable[str] = ()) -> str:
    """The URL a registry domain is reached at: https, or http for loopback and insecure ones
    (which `RegistryClient` tries over unverified TLS first, as dockerd does)."""
    if domain in (DOCKER_HUB, "index.docker.io"):
        return f"https://{DOCKER_HUB_API}"
    scheme = "http" if is_loopback(domain) or is_insecure(domain, insecure) else "https"
    return f"{scheme}://{domain}"


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """The process's one verifying TLS context. Loading the CA bundle takes ~20 ms, which every
    pull and push paid (twice) before the first byte moved; an SSLContext is safe to share."""
    return httpx.create_ssl_context()


@functools.cache
def unverified_ssl_context() -> ssl.SSLContext:
    """TLS without certificate checks, for registries the daemon treats as insecure (loopback and
    `--insecure-registry`), which dockerd tries over TLS this way before plain HTTP."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)   # no CA bundle to load (~20 ms): nothing is checked
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# What the first registry client and its first request import (httpx's transport imports httpcore
# and h11 lazily; httpcore imports anyio's asyncio backend and locks; the blob GETs' sockets
# encode host names with the idna codec): ~45 ms that the first pull or push after the daemon
# starts would otherwise wait for.
_FIRST_REQUEST_IMPORTS = ("httpcore", "h11", "anyio._backends._asyncio", "anyio._core._synchronization",
                          "sniffio", "encodings.idna")


def _warm() -> None:
    ssl_context()
    # a first ClientHello costs ~15 ms of one-time OpenSSL set-up; make it here, into memory
    hello = unverified_ssl_context().wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO())
    with contextlib.suppress(ssl.SSLError):
        hello.do_handshake()
    for name in _FIRST_REQUEST_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:   # another anyio layout: the first request imports what it needs
            pass


def warm_up() -> None:
    """Build `ssl_context()` and import what the first request needs, in the background (the
    daemon calls this at start)."""
    threading.Thread(target=_warm, name="registry-warm-up", daemon=True).start()
