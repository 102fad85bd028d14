"""Where the engine is, how to reach it, and which API version to speak.

Host resolution: an explicit argument, else `WORKBENCH_HOST`, else `unix:///run/workbench/engine.sock`.
`unix:///PATH` goes through `httpx.HTTPTransport(uds=PATH)`; `tcp://HOST:PORT` (or `http://`) is plain
HTTP. The API version is negotiated once, on first use, from `GET /_ping`'s `Api-Version` header,
and every later path is prefixed `/v1.41/` (or lower, when the daemon is older).

httpx is imported here lazily, so `from workbench.client import Client` stays cheap.
Transport failures are translated once, in `_translate_transport_errors`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from workbench.client import _wire
from workbench.errors import APIError, InvalidArgument, Unavailable

if TYPE_CHECKING:
    import httpx

__all__ = ["API_VERSION", "DEFAULT_HOST", "HOST_ENV", "Connection", "Host", "resolve_host"]

API_VERSION = "1.41"
LEGACY_API_VERSION = "1.24"  # what docker clients assume when `_ping` has no Api-Version header
DEFAULT_HOST = "unix:///run/workbench/engine.sock"
HOST_ENV = "WORKBENCH_HOST"


@dataclass(frozen=True, slots=True)
class Host:
    """A parsed engine address: `scheme` is `unix` (address = socket path) or `http`/`https` (host:port)."""

    scheme: str
    address: str

    @property
    def url(self) -> str:
        """The address written back in Docker's form (`unix:///p`, `tcp://h:p`)."""
        if self.scheme == "unix":
            return "unix://" + self.address
        if self.scheme == "http":
            return "tcp://" + self.address
        return f"{self.scheme}://{self.address}"

    @property
    def base_url(self) -> str:
        if self.scheme == "unix":
            return "http://localhost"  # Host is ignored on a socket; docker-py sends `localhost` too
        return f"{self.scheme}://{self.address}"

    def __str__(self) -> str:
        return self.url


def resolve_host(host: str | None = None, env: Mapping[str, str] | None = None) -> Host:
    """Resolve the engine address: `host`, else `$WORKBENCH_HOST`, else the default socket.

    Raises:
        InvalidArgument: for an address that is neither `unix://`, `tcp://`, `http(s)://` nor a path.
    """
    environ = os.environ if env is None else env
    text = (host or environ.get(HOST_ENV) or DEFAULT_HOST).strip()
    if text.startswith("/"):
        return Host("unix", text)
    parts = urlsplit(text)
    if parts.scheme == "unix":
        sock = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not sock:
            raise InvalidArgument(f"invalid host {text!r}: no socket path")
        return Host("unix", sock)
    if parts.scheme in ("tcp", "http", "https"):
        if not parts.hostname:
            raise InvalidArgument(f"invalid host {text!r}: no address")
        port = parts.port or (2376 if parts.scheme == "https" else 2375)
        hostname = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return Host("https" if parts.scheme == "https" else "http", f"{hostname}:{port}")
    raise InvalidArgument(f"invalid host {text!r}: use unix:///PATH or tcp://HOST:PORT")


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return (0,)


class Connection:
    """One engine connection: an httpx client, the negotiated API version, and request helpers.

    Thread-safe: httpx's pool serves concurrent requests (a `run` keeps a wait, an attach and a start
    open at once). The connection opens lazily on the first request.
    """

    def __init__(self, host: Host, *, version: str | None = None, timeout: float | None = 60.0) -> None:
        self.host = host
        self.timeout = timeout
        self._version = version
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            with self._lock:
                if self._http is None:
                    self._http = self._open()
        return self._http

    def _open(self) -> httpx.Client:
        import httpx

        if self.host.scheme == "unix":
            transport = httpx.HTTPTransport(uds=self.host.address)
        else:
            transport = httpx.HTTPTransport(verify=self.host.scheme == "https")
        return httpx.Client(transport=transport, base_url=self.host.base_url,
                            timeout=httpx.Timeout(self.timeout, connect=10.0),
                            headers={"User-Agent": "workbench-client/0.1"})

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- version --------------------------------------------------------------------------------
    @property
    def api_version(self) -> str:
        """The negotiated version: min(daemon's `Api-Version`, 1.41); asked once."""
        if self._version is None:
            response = self.request("GET", "/_ping", versioned=False)
            server = response.headers.get("Api-Version") or LEGACY_API_VERSION
            self._version = min(server, API_VERSION, key=_version_tuple)
        return self._version

    def url(self, path: str, *, versioned: bool = True) -> str:
        return f"/v{self.api_version}{path}" if versioned else path

    # -- requests -------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, versioned: bool = True,
                timeout: float | None | object = ..., **kwargs: Any) -> httpx.Response:
        """Send one request, read the whole reply, raise the mapped error for 4xx/5xx."""
        url = self.url(path, versioned=versioned)
        extra = {} if timeout is ... else {"timeout": self._timeout(timeout)}
        with _translate_transport_errors(self.host):
            response = self.http.request(method, url, **kwargs, **extra)
        _wire.raise_for_status(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    @contextlib.contextmanager
    def stream(self, method: str, path: str, *, versioned: bool = True,
               timeout: float | None | object = None, **kwargs: Any) -> Iterator[httpx.Response]:
        """Send a request and yield the reply with its body unread (no read timeout by default).

        A 4xx/5xx reply is read and raised before anything is yielded, so errors that come
        before a stream (a 404 on pull, a 409 on attach) surface at the call.
        """
        url = self.url(path, versioned=versioned)
        with _translate_transport_errors(self.host), \
                self.http.stream(method, url, timeout=self._timeout(timeout), **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                _wire.raise_for_status(response)
            yield response

    def _timeout(self, value: float | None | object) -> Any:
        import httpx

        if value is ...:
            return httpx.Timeout(self.timeout, connect=10.0)
        read = None if value is None else float(value)  # type: ignore[arg-type]
        return httpx.Timeout(self.timeout, connect=10.0, read=read)


@contextlib.contextmanager
def _translate_transport_errors(host: Host) -> Iterator[None]:
    """Turn httpx transport failures into `workbench.errors` (the one place that does it)."""
    import httpx

    try:
        yield
    except httpx.ConnectError as err:
        raise Unavailable(f"Cannot connect to the Workbench engine at {host.url}. "
                          f"Is the engine running?") from err
    except httpx.TimeoutException as err:
        raise APIError(f"timed out talking to the engine at {host.url}: {err}") from err
    except httpx.TransportError as err:
        raise APIError(f"connection to the engine at {host.url} failed: {err}") from err
