"""Blob downloads for the pull's worker threads: one blocking GET over http.client per layer.

A pull moves hundreds of megabytes through its blob GETs. Read through httpx on the event loop,
every read costs h11 parsing and event-loop hops on the one thread that holds the GIL: 4 blobs of
29 MB over loopback, only hashed, took 0.23 s of CPU (and as long in wall time) that way, and
0.11 s of CPU in 0.08 s with http.client in four threads, whose reads release the GIL and go
straight from the socket into the returned bytes. So the worker thread that stores and unpacks a
layer also makes its GET (`BlobBody`), and the event loop only hears about progress.

Auth stays with the async `RegistryClient`: `RegistryClient.blob_request` hands over the URL and the
Authorization header it holds (set by the manifest and config fetches before any layer moves). A
401 with a challenge comes back as `Challenge` before any byte is read, for the client to answer
on the event loop; the GET is then made once more. Redirects (to blob storage) are followed, with
Authorization sent only to the registry's own origin, as Go's client (so docker) does. When a
proxy from the environment applies (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY, which httpx honours)
`direct` is False and the pull reads the blob through httpx instead (loopback registries are never
proxied, as with dockerd).
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from workbench.engine.registry.errors import RegistryRequestError, dial_text, request_error
from workbench.engine.registry.transport import is_loopback, ssl_context, unverified_ssl_context
from workbench.errors import InvalidArgument, WorkbenchError

__all__ = ["BlobBody", "BlobRequest", "Challenge", "Connections", "SizeMismatch", "direct"]

REDIRECTS = 10
READ_SIZE = 1 << 20
ERROR_BODY = 64 << 10
_REDIRECT = frozenset({301, 302, 303, 307, 308})


class Connections:
    """Idle keep-alive connections for blob GETs, by origin; shared by the threads of one client.

    Over TLS a new connection costs two round trips before the first byte, for every layer; as
    Go's transport does for dockerd, a connection whose response was read to its end goes back
    here for the next GET to the same origin.
    """

    def __init__(self, per_origin: int = 8) -> None:
        self.per_origin = per_origin
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def take(self, url: str, timeout: float, unverified: str = "") -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection to `url`'s origin (True: reused), or a new one (False)."""
        with self._lock:
            idle = self._idle.get(_origin(url))
            if idle:
                return idle.pop(), True
        return _connect(url, timeout, unverified), False

    def give(self, url: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(_origin(url), [])
            if len(idle) < self.per_origin:
                idle.append(conn)
                return
        conn.close()

    def idle(self, url: str) -> int:
        with self._lock:
            return len(self._idle.get(_origin(url), ()))

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()


@dataclass(frozen=True, slots=True)
class BlobRequest:
    """A blob GET as the registry client would send it: absolute URL and headers, and the
    client's idle connections (None: a connection of its own, closed after the body)."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 300.0
    connections: Connections | None = field(default=None, compare=False)
    unverified_host: str = ""  # host:port of an insecure registry: its TLS certificate is not checked


class Challenge(WorkbenchError):
    """The registry answered 401 with `WWW-Authenticate`: nothing was read yet, so the request can
    be made again once the client has answered the challenge (`header`) it sent `sent` to."""

    def __init__(self, url: str, header: str, sent: str | None, message: str) -> None:
        super().__init__(message, status=401)
        self.url, self.header, self.sent = url, header, sent


class SizeMismatch(InvalidArgument):
    """The body was longer, or ended shorter, than the descriptor's size."""


def direct(url: str) -> bool:
    """Whether `url` is reached without a proxy from the environment: loopback always is (as in
    Go's ProxyFromEnvironment, so dockerd), anything else unless NO_PROXY names it."""
    parts = urlsplit(url)
    if is_loopback(parts.netloc):
        return True
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass_environment(parts.netloc, proxies))


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _connect(url: str, timeout: float, unverified: str = "") -> http.client.HTTPConnection:
    """A connection to `url`'s origin; over TLS without certificate checks when its `host:port` is
    `unverified` (an insecure registry, as `RegistryClient` speaks to it)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        context = unverified_ssl_context() if unverified and parts.netloc == unverified else ssl_context()
        return http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout, context=context)
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    raise WorkbenchError(f'Get "{url}": unsupported protocol scheme "{parts.scheme}"')


def _target(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class BlobBody(io.RawIOBase):
    """The body of one blob GET, read like a file by the thread that opened it.

    Args:
        request: URL and headers (`RegistryClient.blob_request`).
        size: the descriptor's size; more bytes, or fewer at the end, is an InvalidArgument. 0: unknown.
        progress: called from the reading thread with the byte count after every read, and with
            `done=True` once at the end of the body.
    `abort()` (from any thread) makes the reader's next or current read raise "pull cancelled".
    """

    def __init__(self, request: BlobRequest, *, size: int = 0,
                 progress: Callable[[int, bool], None] | None = None) -> None:
        super().__init__()
        self.request, self.size, self.count = request, size, 0
        self._progress = progress
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._response: http.client.HTTPResponse | None = None
        self._url = request.url
        self._aborted = self._ended = False

    def readable(self) -> bool:
        return True

    def open(self) -> None:
        """Send the GET, following redirects; raise the registry's error for anything but 200."""
        url, headers = self.request.url, dict(self.request.headers)
        origin = _origin(url)
        for _ in range(REDIRECTS + 1):
            self._url = url
            response = self._send(url, headers)
            location = response.getheader("Location")
            if response.status in _REDIRECT and location:
                self._drain_and_close(response)
                url = urljoin(url, location)
                if _origin(url) != origin:
                    headers.pop("Authorization", None)
                continue
            if response.status == 200:
                self._response = response
                return
            body = response.read(ERROR_BODY)
            self._close()
            err = request_error("GET", url, response.status, response.reason, body)
            challenge = response.getheader("WWW-Authenticate")
            if response.status == 401 and challenge:
                raise Challenge(url, challenge, headers.get("Authorization"), err.message)
            if response.status < 400:
                raise WorkbenchError(f'Get "{url}": unexpected status {response.status} {response.reason}')
            raise err
        raise WorkbenchError(f'Get "{url}": stopped after {REDIRECTS} redirects')

    def _send(self, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        pool = self.request.connections
        while True:
            timeout, unverified = self.request.timeout, self.request.unverified_host
            conn, reused = pool.take(url, timeout, unverified) if pool else (_connect(url, timeout, unverified),
                                                                              False)
            with self._lock:
                if self._aborted:
                    conn.close()
                    raise WorkbenchError("pull cancelled")
                self._conn = conn
            try:
                conn.request("GET", _target(url), headers=headers)
                return conn.getresponse()
            except (OSError, http.client.HTTPException) as err:
                self._close()
                if reused and not self._aborted:   # the server had closed the idle connection
                    continue
                raise self._failure(err) from err

    def _failure(self, err: BaseException) -> WorkbenchError:
        if self._aborted:
            return WorkbenchError("pull cancelled")
        text = str(err) or type(err).__name__
        if isinstance(err, http.client.IncompleteRead):
            text = f"unexpected EOF after {self.count} bytes"
        elif isinstance(err, OSError) and self._response is None:   # still connecting
            text = dial_text(err, self._url) or text
        return RegistryRequestError(f'Get "{self._url}": {text}')

    def _drain_and_close(self, response: http.client.HTTPResponse) -> None:
        try:
            response.read(ERROR_BODY)
        except (OSError, http.client.HTTPException):
            pass
        self._close()

    def read(self, n: int = -1) -> bytes:
        response = self._reading()
        try:
            data = response.read(n if n and n > 0 else READ_SIZE)
        except (OSError, http.client.HTTPException) as err:
            raise self._failure(err) from err
        self._got(len(data))
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        """Receive straight into the caller's buffer (the decompressor's): no bytes object per read."""
        response = self._reading()
        if not len(b):
            return 0              # not the end of the body: there was just nowhere to put a byte
        try:
            n = response.readinto(b)
        except (OSError, http.client.HTTPException) as err:
            raise self._failure(err) from err
        self._got(n)
        return n

    def _reading(self) -> http.client.HTTPResponse:
        if self._response is None:
            raise WorkbenchError("blob body read before open()")
        if self._aborted:
            raise WorkbenchError("pull cancelled")
        return self._response

    def _got(self, n: int) -> None:
        """Count `n` bytes just read (0: the end): size checks, connection reuse, progress."""
        self.count += n
        if self.size and self.count > self.size:
            raise SizeMismatch(f"more than {self.size} bytes")
        if not n:
            if self.size and self.count != self.size:
                raise SizeMismatch(f"got {self.count} of {self.size} bytes")
            if self._ended:
                return
            self._ended = True
            assert self._response is not None
            self._keep(self._response)
        if self._progress is not None:
            self._progress(self.count, not n)

    def _keep(self, response: http.client.HTTPResponse) -> None:
        """The body was read to its end: the connection may serve the next GET."""
        pool = self.request.connections
        with self._lock:
            conn = self._conn
            if pool is None or conn is None or response.will_close or self._aborted:
                return
            self._conn = None
        pool.give(self._url, conn)

    def abort(self) -> None:
        """Stop the download: a read blocked on the socket returns at once and raises."""
        with self._lock:
            self._aborted = True
            conn = self._conn
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._response = None
        self._close()
        super().close()
