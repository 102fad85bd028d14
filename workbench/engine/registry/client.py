"""An async client of one OCI Distribution registry, over httpx: auth, manifests, blobs, uploads.

`RegistryClient(domain, credentials)` talks to one registry (`docker.io` means
`registry-1.docker.io`) over HTTPS. Insecure registries — loopback hosts (127.0.0.0/8, ::1,
localhost) and those the daemon lists (`--insecure-registry`) — are tried as dockerd tries them:
over TLS without checking the certificate, then over plain HTTP when TLS does not answer.

Auth follows the registry's challenge. A request answered 401 with
`WWW-Authenticate: Basic ...` is retried with the Basic credentials, which are then sent with
every later request. `WWW-Authenticate: Bearer realm=,service=,scope=` sends the client to the
realm for a token (Basic credentials, or the OAuth2 refresh-token grant when an identity token
is held); the token is cached per scope set and the request retried once. The scopes asked for
are the challenge's plus those the client was created with (a push asks for `pull,push` on its
repository and `pull` on every repository it may mount from, in one token).

Every error reply becomes a `RegistryRequestError` (a WorkbenchError: 401, 403 and 404 keep
their status, anything else is a 500 of the daemon) whose message is Docker's:
`<code in words>: <message>` from the spec's error body, prefixed with the request where Docker
does so (`Head "http://.../manifests/1": unauthorized: ...`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote, urljoin

import httpx

from workbench.engine.registry.download import BlobRequest, Connections, direct
from workbench.engine.registry.errors import RegistryRequestError, dial_text, error_text, request_error
from workbench.engine.registry.transport import base_url, is_loopback, ssl_context, unverified_ssl_context
from workbench.oci import mediatypes as mt
from workbench.oci.digest import Digest, DigestMismatch

__all__ = [
    "MANIFEST_ACCEPT", "Credentials", "Manifest", "RegistryClient", "RegistryRequestError", "base_url",
    "is_loopback", "parse_challenge",
]

DOCKER_HUB = "docker.io"
MANIFEST_ACCEPT = ", ".join((mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST))
MAX_MANIFEST = 4 << 20
UPLOAD_CHUNK = 1 << 20
_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True, slots=True)
class Credentials:
    """What `X-Registry-Auth` or `POST /auth` carries; every field may be empty."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @property
    def has_basic(self) -> bool:
        return bool(self.username)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest or index exactly as the registry sent it."""

    data: bytes
    media_type: str
    digest: str

    def doc(self) -> dict[str, Any]:
        return json.loads(self.data)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="r",service="s",scope="a b"` → ("bearer", {"realm": "r", ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): (quoted if quoted or not bare else bare).replace('\\"', '"')
              for k, quoted, bare in _PARAM.findall(rest)}
    return scheme.lower(), params


class _Auth:
    """Credentials and the cached tokens of one client."""

    def __init__(self, credentials: Credentials | None, scopes: Iterable[str]) -> None:
        self.credentials = credentials or Credentials()
        self.scopes = list(scopes)
        self.header: str | None = None
        self.lock = asyncio.Lock()
        self.tokens: dict[tuple[str, str, frozenset[str]], tuple[str, float]] = {}
        if self.credentials.registry_token:
            self.header = f"Bearer {self.credentials.registry_token}"

    def basic(self) -> str | None:
        if not self.credentials.has_basic:
            return None
        pair = f"{self.credentials.username}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


class RegistryClient:
    """One registry, spoken to over httpx.AsyncClient. Use as an async context manager.

    Args:
        domain: `host[:port]` of the registry (`docker.io` for Docker Hub).
        credentials: what the caller gave, or None for anonymous access.
        scopes: token scopes to ask for besides the challenge's (`repository:x:pull,push`).
        insecure: registries (host, host:port or CIDR) that may be spoken to over plain HTTP.
    """

    def __init__(self, domain: str, credentials: Credentials | None = None, *, scopes: Iterable[str] = (),
                 insecure: Iterable[str] = (), timeout: float = 300.0,
                 http: httpx.AsyncClient | None = None) -> None:
        self.domain = domain
        plain = base_url(domain, insecure)
        # as dockerd does, an insecure registry (loopback, or listed) is tried over TLS without
        # checking its certificate first, and over plain HTTP when that fails (from then on)
        self._tls_first = "https://" + plain.removeprefix("http://") if plain.startswith("http://") else None
        self._plain = plain if self._tls_first else None
        self.url = self._tls_first or plain
        self._settled = self._tls_first is None     # whether self.url is known to answer
        self.timeout = timeout
        self._auth = _Auth(credentials, scopes)
        self._connections = Connections()       # the worker threads' blob GETs (download.py)
        self._own_http = http is None
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
        # HTTP(S)_PROXY, ALL_PROXY and NO_PROXY apply as they do to dockerd: never to loopback
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=30.0), follow_redirects=True,
            trust_env=not is_loopback(domain), limits=limits,
            verify=unverified_ssl_context() if self._tls_first else ssl_context())

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._connections.close()
        if self._own_http:
            await self._http.aclose()

    # -- requests with the auth dance --------------------------------------------------------
    def _abs(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else self.url + path_or_url

    async def _send(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                    body: Callable[[], Any] | None = None, stream: bool = False,
                    params: dict[str, str] | None = None) -> httpx.Response:
        """Send; on a 401 challenge authenticate and send once more (the body is rebuilt)."""
        url = self._abs(url)
        response: httpx.Response | None = None
        for attempt in (0, 1):
            sent = self._auth.header
            h = dict(headers or {})
            if sent:
                h["Authorization"] = sent
            while True:
                request = self._http.build_request(method, url, headers=h, params=params,
                                                   content=body() if body is not None else None)
                try:
                    response = await self._http.send(request, stream=stream)
                    if url.startswith(self.url + "/"):
                        self._settled = True
                    break
                except httpx.TransportError as err:
                    plain = self._over_plain_http(url)
                    if plain is None:
                        raise RegistryRequestError(f'{method.title()} "{url}": {_transport_text(err, url)}') from err
                    url = plain
            challenge = response.headers.get("WWW-Authenticate", "")
            if response.status_code != 401 or not challenge or attempt == 1:
                return response
            await response.aread()
            await response.aclose()
            if not await self.answer_challenge(method, str(request.url), challenge, sent):
                return response
        assert response is not None
        return response

    def _over_plain_http(self, url: str) -> str | None:
        """`url` over plain HTTP, for an insecure registry that TLS did not reach (None: not one).
        Only until the registry has answered once: after that a transport error is an error, not a
        reason to send requests (and credentials) without TLS."""
        if self._settled or self._tls_first is None or self._plain is None \
                or not url.startswith(self._tls_first + "/"):
            return None
        self.url = self._plain
        return self._plain + url[len(self._tls_first):]

    async def answer_challenge(self, method: str, url: str, challenge: str, sent: str | None) -> bool:
        """Authenticate for a 401's `challenge` to a request sent with Authorization `sent`; False
        when nothing would change (so sending again is pointless). Concurrent requests share one
        token fetch: a request that raced one which already answered just sends again."""
        async with self._auth.lock:
            return self._auth.header != sent or await self._authenticate(method, url, challenge)

    async def _authenticate(self, method: str, url: str, challenge: str) -> bool:
        """Set the Authorization header for the challenge; False when nothing would change."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            header = self._auth.basic()
            if header is None:
                raise RegistryRequestError(f'{method.title()} "{url}": no basic auth credentials',
                                           status=401, remote_status=401, code="UNAUTHORIZED")
            if header == self._auth.header:
                return False
            self._auth.header = header
            return True
        if scheme != "bearer" or "realm" not in params:
            raise RegistryRequestError(f'{method.title()} "{url}": unsupported auth challenge {challenge!r}',
                                       status=401, remote_status=401)
        scopes = set(self._auth.scopes)
        scopes.update(s for s in params.get("scope", "").split(" ") if s)
        header = "Bearer " + await self._token(params["realm"], params.get("service", ""), frozenset(scopes))
        if header == self._auth.header and params.get("error") != "insufficient_scope":
            return False
        self._auth.header = header
        return True

    async def _token(self, realm: str, service: str, scopes: frozenset[str]) -> str:
        key = (realm, service, scopes)
        cached = self._auth.tokens.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        creds = self._auth.credentials
        try:
            if creds.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "service": service, "client_id": "workbench", "scope": " ".join(sorted(scopes))}
                reply = await self._http.post(realm, data=form)
            else:
                query = [("service", service)] if service else []
                query += [("scope", s) for s in sorted(scopes)]
                headers = {}
                basic = self._auth.basic()
                if basic:
                    headers["Authorization"] = basic
                reply = await self._http.get(realm, params=query, headers=headers)
        except httpx.TransportError as err:
            raise RegistryRequestError(f'Get "{realm}": {_transport_text(err, realm)}') from err
        if reply.status_code != 200:
            text, code = error_text(reply.status_code, reply.reason_phrase, reply.content)
            if reply.status_code in (401, 403) and not text.startswith("unauthorized"):
                text = "unauthorized: " + text
            raise RegistryRequestError(f'Get "{reply.request.url}": {text}', status=401,
                                       remote_status=reply.status_code, code=code or "UNAUTHORIZED")
        try:
            doc = reply.json()
        except ValueError:
            doc = {}
        token = str(doc.get("token") or doc.get("access_token") or "")
        if not token:
            raise RegistryRequestError(f'Get "{realm}": the token server gave no token', status=401)
        ttl = doc.get("expires_in") or 60
        self._auth.tokens[key] = (token, time.monotonic() + max(float(ttl) - 10.0, 5.0))
        return token

    async def _check(self, response: httpx.Response, method: str, *, prefix: bool = True) -> None:
        """Raise RegistryRequestError for an error reply (reading and closing it)."""
        if response.status_code < 400:
            return
        body = await response.aread()
        await response.aclose()
        raise request_error(method, str(response.request.url), response.status_code, response.reason_phrase,
                            body, prefix=prefix)

    # -- the API ---------------------------------------------------------------------------
    async def ping(self) -> None:
        """`GET /v2/`, authenticating as challenged; raise when the credentials are refused."""
        response = await self._send("GET", "/v2/")
        await response.aread()
        if response.status_code == 401:
            raise RegistryRequestError(f"login attempt to {self.url}/v2/ failed with status: 401 Unauthorized",
                                       status=401, remote_status=401, code="UNAUTHORIZED")
        if response.status_code == 404:
            raise RegistryRequestError(f"{self.url}/v2/ is not a registry (404)", status=404, remote_status=404)
        await self._check(response, "GET")

    async def get_manifest(self, repo: str, reference: str) -> Manifest:
        """The manifest or index `reference` (tag or digest) names, verified when it is a digest."""
        url = f"/v2/{repo}/manifests/{reference}"
        response = await self._send("GET", url, headers={"Accept": MANIFEST_ACCEPT}, stream=True)
        await self._check(response, "GET", prefix=response.status_code != 404)
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > MAX_MANIFEST:
                await response.aclose()
                raise RegistryRequestError(f"manifest {repo}:{reference} is larger than {MAX_MANIFEST} bytes")
        data_b = bytes(data)
        digest = "sha256:" + hashlib.sha256(data_b).hexdigest()
        if ":" in reference:             # by digest, of any algorithm: verified with that algorithm
            want = Digest.parse(reference)
            if hashlib.new(want.algorithm, data_b).hexdigest() != want.encoded:
                raise DigestMismatch(f"manifest verification failed for digest {reference}")
            digest = str(want)
        return Manifest(data_b, _manifest_type(response.headers.get("Content-Type", ""), data_b), digest)

    async def tags(self, repo: str) -> list[str]:
        """Every tag of `repo` (`GET /v2/<repo>/tags/list`, following the `Link` pages)."""
        url: str | None = f"/v2/{repo}/tags/list"
        out: list[str] = []
        while url:
            response = await self._send("GET", url)
            await response.aread()
            await self._check(response, "GET", prefix=response.status_code != 404)
            try:
                doc = response.json()
            except ValueError as err:
                raise RegistryRequestError(f"invalid tags list for {repo}: {err}") from err
            out += [str(t) for t in (doc.get("tags") or []) if isinstance(doc, dict)]
            link = response.headers.get("Link", "")
            url = urljoin(str(response.request.url), link.split(";")[0].strip(" <>")) \
                if 'rel="next"' in link else None
        return out

    async def blob_exists(self, repo: str, digest: str) -> bool:
        """`HEAD` the blob: whether the registry has it in `repo`."""
        response = await self._send("HEAD", f"/v2/{repo}/blobs/{digest}")
        await response.aread()
        if response.status_code == 404:
            return False
        await self._check(response, "HEAD")
        return True

    @asynccontextmanager
    async def blob(self, repo: str, digest: str) -> AsyncIterator[httpx.Response]:
        """`GET` a blob as a streamed response (following redirects to blob storage)."""
        response = await self._send("GET", f"/v2/{repo}/blobs/{digest}", stream=True)
        try:
            await self._check(response, "GET")
            yield response
        finally:
            await response.aclose()

    def blob_request(self, repo: str, digest: str) -> BlobRequest | None:
        """The blob GET for a worker thread to make (`download.BlobBody`), with the Authorization
        the client holds now; None when a proxy applies, or before an insecure registry has said
        whether it speaks TLS (then use `blob`, over httpx)."""
        url = self._abs(f"/v2/{repo}/blobs/{digest}")
        if not direct(url) or not self._settled:
            return None
        return BlobRequest(url, {"Authorization": self._auth.header} if self._auth.header else {}, self.timeout,
                           self._connections, unverified_host="" if self._tls_first is None else self.domain)

    async def fetch_blob(self, repo: str, digest: str, limit: int = 64 << 20) -> bytes:
        """A small blob (a config) in memory, verified against its digest."""
        async with self.blob(repo, digest) as response:
            data = bytearray()
            async for chunk in response.aiter_raw():
                data += chunk
                if len(data) > limit:
                    raise RegistryRequestError(f"blob {digest} is larger than {limit} bytes")
        want = Digest.parse(digest)
        got = hashlib.new(want.algorithm, data).hexdigest()
        if got != want.encoded:
            raise DigestMismatch(f"blob verification failed for digest {digest}: got {want.algorithm}:{got}")
        return bytes(data)

    async def mount_blob(self, repo: str, digest: str, source: str) -> str | None:
        """Ask for a cross-repository mount: None when mounted, else the upload session to use."""
        response = await self._send("POST", f"/v2/{repo}/blobs/uploads/",
                                    params={"mount": digest, "from": source})
        await response.aread()
        await self._check(response, "POST")
        if response.status_code == 201:
            return None
        return self._location(response)

    async def start_upload(self, repo: str) -> str:
        response = await self._send("POST", f"/v2/{repo}/blobs/uploads/")
        await response.aread()
        await self._check(response, "POST")
        return self._location(response)

    async def upload_blob(self, repo: str, digest: str, size: int, opener: Callable[[], BinaryIO], *,
                          location: str | None = None, chunk_size: int | None = None,
                          progress: Callable[[int], None] | None = None) -> None:
        """Upload a blob: one PUT (monolithic) or PATCHes of `chunk_size` then the closing PUT.

        `opener` returns a fresh readable file at offset 0 (called again if a retry is needed).
        """
        if location is None:
            location = await self.start_upload(repo)
        if chunk_size is None:
            body = _file_body(opener, progress)
            response = await self._send("PUT", _with_digest(location, digest), body=body,
                                        headers={"Content-Type": "application/octet-stream",
                                                 "Content-Length": str(size)})
            await response.aread()
            await self._check(response, "PUT")
            return
        location = await self._patch_chunks(location, size, opener, chunk_size, progress)
        response = await self._send("PUT", _with_digest(location, digest),
                                    headers={"Content-Length": "0"})
        await response.aread()
        await self._check(response, "PUT")

    async def _patch_chunks(self, location: str, size: int, opener: Callable[[], BinaryIO], chunk_size: int,
                            progress: Callable[[int], None] | None) -> str:
        f = await asyncio.to_thread(opener)
        try:
            offset = 0
            while offset < size:
                data = await asyncio.to_thread(f.read, min(chunk_size, size - offset))
                if not data:
                    raise RegistryRequestError(f"blob ended at {offset} of {size} bytes")
                end = offset + len(data) - 1
                response = await self._send("PATCH", location, body=lambda d=data: d, headers={
                    "Content-Type": "application/octet-stream", "Content-Length": str(len(data)),
                    "Content-Range": f"{offset}-{end}"})
                await response.aread()
                await self._check(response, "PATCH")
                location = self._location(response)
                offset = end + 1
                if progress is not None:
                    progress(offset)
        finally:
            await asyncio.to_thread(f.close)
        return location

    async def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest byte for byte; return its digest."""
        response = await self._send("PUT", f"/v2/{repo}/manifests/{reference}", body=lambda: data,
                                    headers={"Content-Type": media_type})
        await response.aread()
        await self._check(response, "PUT")
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def _location(self, response: httpx.Response) -> str:
        loc = response.headers.get("Location")
        if not loc:
            raise RegistryRequestError(f"{response.request.method} {response.request.url}: the registry "
                                       f"gave no upload Location")
        return urljoin(str(response.request.url), loc)


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + "digest=" + quote(digest, safe="")


def _file_body(opener: Callable[[], BinaryIO], progress: Callable[[int], None] | None) -> Callable[[], Any]:
    """A body factory: each call gives a fresh async iterator over the file (read in a thread)."""
    async def chunks() -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(opener)
        sent = 0
        try:
            while True:
                data = await asyncio.to_thread(f.read, UPLOAD_CHUNK)
                if not data:
                    break
                sent += len(data)
                yield data
                if progress is not None:
                    progress(sent)
        finally:
            await asyncio.to_thread(f.close)
    return chunks


def _manifest_type(content_type: str, data: bytes) -> str:
    header = content_type.split(";", 1)[0].strip().lower()
    if header in mt.ALL_MANIFESTS:
        return header
    try:
        doc = json.loads(data)
    except ValueError:
        return header
    if isinstance(doc, dict):
        if isinstance(doc.get("mediaType"), str) and doc["mediaType"]:
            return doc["mediaType"]
        return mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
    return header


def _transport_text(err: httpx.TransportError, url: str) -> str:
    text = str(err) or type(err).__name__
    if isinstance(err, httpx.ConnectError):
        return dial_text(err, url) or f"dial: {text}"
    return text
