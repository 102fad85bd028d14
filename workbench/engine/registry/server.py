"""The OCI Distribution Spec v1.1 HTTP API over RegistryStorage, as an aiohttp application.

`make_registry_app(storage)` returns an Application the engine daemon mounts on a TCP listener
(`standalone.start_registry`); `standalone.serve(root, addr)` runs one on its own. Routing is by the
suffix of the raw request path, as distribution does, because repository names contain slashes
and may end in components like `blobs` or `manifests`. Every error is the spec's JSON body
`{"errors": [{"code", "message", "detail"}]}`. Blob GETs are answered with FileResponse, which
streams with sendfile(2) and honours Range (206, 416).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web

from workbench.engine.registry import (MAX_MANIFEST, BlobUploadInvalid, DigestInvalid, ManifestUnknown,
                                       RangeInvalid, RegistryError, SizeInvalid, Unsupported, check_name,
                                       parse_digest)
from workbench.engine.registry.auth import RegistryAuth, Scope, TokenAuth
from workbench.engine.registry.storage import RegistryStorage, StoredManifest, UploadInfo, UploadWriter
from workbench.errors import WorkbenchError
from workbench.oci import mediatypes as mt

log = logging.getLogger(__name__)
Handler = Callable[..., Awaitable[web.StreamResponse]]

_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("uploads", re.compile(r"^(?P<name>.+)/blobs/uploads/?$")),
    ("upload", re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<uuid>[^/]+)$")),
    ("blob", re.compile(r"^(?P<name>.+)/blobs/(?P<digest>[^/]+)$")),
    ("manifest", re.compile(r"^(?P<name>.+)/manifests/(?P<reference>[^/]+)$")),
    ("tags", re.compile(r"^(?P<name>.+)/tags/list$")),
    ("referrers", re.compile(r"^(?P<name>.+)/referrers/(?P<digest>[^/]+)$")),
]
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_CHUNK = 1 << 20
BODY_IDLE_TIMEOUT = 60.0
_STATUS_CODES = {400: "UNSUPPORTED", 401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN",
                 405: "UNSUPPORTED", 413: "SIZE_INVALID", 416: "BLOB_UPLOAD_INVALID",
                 429: "TOOMANYREQUESTS"}


def _error_response(err: WorkbenchError, method: str) -> web.Response:
    code = getattr(err, "code", None) or _STATUS_CODES.get(err.status, "UNKNOWN")
    entry: dict[str, Any] = {"code": code, "message": err.message}
    if getattr(err, "detail", None) is not None:
        entry["detail"] = err.detail  # type: ignore[attr-defined]
    headers = dict(getattr(err, "headers", {}) or {})
    body = None if method == "HEAD" else json.dumps({"errors": [entry]}).encode()
    return web.Response(status=err.status, body=body, headers=headers,
                        content_type="application/json")


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except WorkbenchError as err:
        return _error_response(err, request.method)
    except web.HTTPRequestEntityTooLarge:
        return _error_response(SizeInvalid("request body too large", status=413), request.method)
    except web.HTTPException:
        raise
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("registry: %s %s failed", request.method, request.path)
        return _error_response(WorkbenchError("internal error"), request.method)


def _query(request: web.Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in parse_qsl(request.query_string, keep_blank_values=True):
        out.setdefault(k, []).append(v)
    return out


def _one(q: dict[str, list[str]], key: str) -> str | None:
    vals = q.get(key)
    return vals[0] if vals else None


def _range_header(offset: int) -> str:
    return f"0-{max(offset - 1, 0)}"


def _paginate(items: list[str], q: dict[str, list[str]], link: str) -> tuple[list[str], dict[str, str]]:
    last, n_text = _one(q, "last"), _one(q, "n")
    if last:
        items = [i for i in items if i > last]
    if n_text is None or n_text == "":
        return items, {}
    if not n_text.isdigit():
        raise RegistryError(f"invalid page size n={n_text[:20]!r}", status=400,
                            code="PAGINATION_NUMBER_INVALID")
    n = int(n_text)
    page = items[:n]
    headers = {}
    if n and len(items) > n:
        headers["Link"] = f'<{link}?n={n}&last={quote(page[-1], safe="")}>; rel="next"'
    return page, headers


class _Registry:
    def __init__(self, storage: RegistryStorage, auth: RegistryAuth | None, read_only: bool,
                 strict_references: bool) -> None:
        self.storage, self.auth, self.read_only, self.strict = storage, auth, read_only, strict_references
        # storage calls block (file locks, fsync, bcrypt): a pool of the registry's own, so a burst
        # of them never takes the threads the rest of the process (the engine daemon) runs on
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="registry")

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """`fn(*args, **kwargs)` in the registry's thread pool."""
        return asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))

    async def authorize(self, request: web.Request, scopes: Sequence[Scope]) -> None:
        if self.auth is not None:
            base = f"{request.scheme}://{request.host}"
            await self.run(self.auth.authorize, request.headers.get("Authorization"),
                                    scopes, base)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        tail = path[len("/v2/"):] if path.startswith("/v2/") else ""
        method = request.method
        if self.read_only and method in _WRITES:
            raise Unsupported("the registry is in read-only mode")
        if tail in ("", "/"):
            if method not in ("GET", "HEAD"):
                raise Unsupported(f"{method} not allowed")
            await self.authorize(request, ())
            return web.json_response({})
        if tail == "_catalog":
            return await self.catalog(request)
        for kind, pattern in _ROUTES:
            m = pattern.match(tail)
            if m:
                args = m.groupdict()
                check_name(args["name"])
                handler = getattr(self, f"{kind}_{method.lower()}", None)
                if handler is None:
                    raise Unsupported(f"{method} not allowed on {kind}")
                return await handler(request, **args)
        raise RegistryError(f"unknown endpoint {path[:200]}", status=404, code="UNSUPPORTED")

    def scope(self, name: str, *actions: str) -> list[Scope]:
        return [Scope("repository", name, actions)]

    # -- discovery --
    async def catalog(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise Unsupported(f"{request.method} not allowed")
        await self.authorize(request, [Scope("registry", "catalog", ("*",))])
        repos = await self.run(self.storage.repositories)
        page, headers = _paginate(repos, _query(request), "/v2/_catalog")
        return web.json_response({"repositories": page}, headers=headers)

    async def tags_get(self, request: web.Request, name: str) -> web.StreamResponse:
        await self.authorize(request, self.scope(name, "pull"))
        tags = await self.run(self.storage.tags, name)
        page, headers = _paginate(tags, _query(request), f"/v2/{name}/tags/list")
        return web.json_response({"name": name, "tags": page}, headers=headers)

    tags_head = tags_get

    async def referrers_get(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        parse_digest(digest)
        await self.authorize(request, self.scope(name, "pull"))
        found = await self.run(self.storage.referrers, name, digest)
        headers = {}
        artifact_type = _one(_query(request), "artifactType")
        if artifact_type:
            found = [d for d in found if d.get("artifactType") == artifact_type]
            headers["OCI-Filters-Applied"] = "artifactType"
        body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found}
        return web.Response(body=json.dumps(body).encode(), content_type=mt.OCI_INDEX,
                            headers=headers)

    # -- manifests --
    async def manifest_get(self, request: web.Request, name: str, reference: str) -> web.StreamResponse:
        await self.authorize(request, self.scope(name, "pull"))
        m = await self.run(self.storage.manifest_get, name, reference)
        accept = {a.split(";", 1)[0].strip().lower()
                  for h in request.headers.getall("Accept", []) for a in h.split(",")} - {""}
        # as CNCF distribution does: a Docker schema 2 manifest is served whatever the Accept header
        # (there is no schema 1 to rewrite it to); by tag, an index the client cannot read gives way
        # to its linux/amd64 manifest; anything else the client does not accept is not found
        if accept and not accept & {"*/*", "application/*"} and m.media_type not in accept \
                and m.media_type != mt.DOCKER_MANIFEST and m.digest != reference:
            child = None
            if m.media_type in mt.INDEXES and accept & set(mt.MANIFESTS):
                child = await self.run(self._platform_child, name, m.data)
            if child is None or (child.media_type not in accept and child.media_type != mt.DOCKER_MANIFEST):
                raise ManifestUnknown(f"manifest {name}:{reference} is {m.media_type}, which the "
                                      f"Accept header does not list")
            m = child
        etag = f'"{m.digest}"'
        headers = {"Docker-Content-Digest": m.digest, "ETag": etag}
        if etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
            return web.Response(status=304, headers=headers)
        return web.Response(body=m.data, content_type=m.media_type.split(";")[0], headers=headers)

    def _platform_child(self, name: str, index: bytes) -> StoredManifest | None:
        """The index's linux/amd64 manifest (what distribution falls back to), if it has one."""
        for entry in json.loads(index).get("manifests", []):
            platform = entry.get("platform") if isinstance(entry, dict) else None
            if isinstance(platform, dict) and (platform.get("os"), platform.get("architecture")) == \
                    ("linux", "amd64"):
                with contextlib.suppress(RegistryError, TypeError):
                    return self.storage.manifest_get(name, str(entry.get("digest")))
        return None

    manifest_head = manifest_get

    async def manifest_put(self, request: web.Request, name: str, reference: str) -> web.StreamResponse:
        await self.authorize(request, self.scope(name, "pull", "push"))
        body = bytearray()
        while chunk := await request.content.read(_CHUNK):
            body += chunk
            if len(body) > MAX_MANIFEST:
                raise SizeInvalid(f"manifest larger than {MAX_MANIFEST} bytes", status=413)
        data = bytes(body)
        tags = tuple(_query(request).get("tag", []))
        digest, pm = await self.run(
            self.storage.manifest_put, name, reference, data,
            request.headers.get("Content-Type", ""), tags=tags, strict=self.strict)
        headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
        if pm.subject:
            headers["OCI-Subject"] = pm.subject
        if tags:
            headers["OCI-Tag"] = ", ".join(tags)
        return web.Response(status=201, headers=headers)

    async def manifest_delete(self, request: web.Request, name: str, reference: str) -> web.StreamResponse:
        await self.authorize(request, self.scope(name, "delete"))
        await self.run(self.storage.manifest_delete, name, reference)
        return web.Response(status=202)

    # -- blobs --
    async def blob_get(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        parse_digest(digest)
        await self.authorize(request, self.scope(name, "pull"))
        if request.method == "HEAD":    # a pusher asking whether to skip it: keep it from gc a while
            info = await self.run(self.storage.blob_claim, name, digest)
        else:
            info = self.storage.blob_stat(name, digest)
        headers = {"Docker-Content-Digest": info.digest, "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes", "Cache-Control": "max-age=31536000"}
        return web.FileResponse(info.path, chunk_size=_CHUNK, headers=headers)

    blob_head = blob_get

    async def blob_delete(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        parse_digest(digest)
        await self.authorize(request, self.scope(name, "delete"))
        await self.run(self.storage.blob_delete, name, digest)
        return web.Response(status=202)

    # -- uploads --
    def _session_headers(self, info: UploadInfo) -> dict[str, str]:
        return {"Location": f"/v2/{info.repo}/blobs/uploads/{info.uuid}",
                "Range": _range_header(info.offset), "Docker-Upload-UUID": info.uuid}

    def _created(self, name: str, digest: str) -> web.Response:
        return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}",
                                                 "Docker-Content-Digest": digest})

    async def uploads_post(self, request: web.Request, name: str) -> web.StreamResponse:
        await self.authorize(request, self.scope(name, "pull", "push"))
        q = _query(request)
        mount, source, digest = _one(q, "mount"), _one(q, "from"), _one(q, "digest")
        if mount is not None:
            parse_digest(mount)
            info = await self._mount(request, name, mount, source)
            if info is not None:
                return self._created(name, info)
        elif digest is not None:
            parse_digest(digest)
            session = await self.run(self.storage.upload_start, name)
            try:
                await self._receive(request, session.uuid, name, None)
                blob = await self.run(self.storage.upload_commit, name, session.uuid, digest)
            except BaseException:              # a broken monolithic upload leaves no session behind
                with contextlib.suppress(Exception):
                    await self.run(self.storage.upload_cancel, name, session.uuid)
                raise
            return self._created(name, blob.digest)
        session = await self.run(self.storage.upload_start, name)
        return web.Response(status=202, headers=self._session_headers(session))

    async def _mount(self, request: web.Request, name: str, digest: str,
                     source: str | None) -> str | None:
        if source is not None:
            try:
                check_name(source)
                await self.authorize(request, self.scope(source, "pull"))
            except RegistryError:
                return None
        blob = await self.run(self.storage.blob_mount, name, digest, source)
        return blob.digest if blob else None

    async def upload_get(self, request: web.Request, name: str, uuid: str) -> web.StreamResponse:
        await self.authorize(request, self.scope(name, "pull", "push"))
        info = await self.run(self.storage.upload_status, name, uuid)
        return web.Response(status=204, headers=self._session_headers(info))

    upload_head = upload_get

    async def upload_patch(self, request: web.Request, name: str, uuid: str) -> web.StreamResponse:
        await self.authorize(request, self.scope(name, "pull", "push"))
        info = await self._receive(request, uuid, name, request.headers.get("Content-Range"))
        return web.Response(status=202, headers=self._session_headers(info))

    async def upload_put(self, request: web.Request, name: str, uuid: str) -> web.StreamResponse:
        await self.authorize(request, self.scope(name, "pull", "push"))
        digest = _one(_query(request), "digest")
        if not digest:
            raise DigestInvalid("the closing PUT needs a digest query parameter")
        if request.body_exists or request.headers.get("Content-Range"):
            await self._receive(request, uuid, name, request.headers.get("Content-Range"))
        blob = await self.run(self.storage.upload_commit, name, uuid, digest)
        return self._created(name, blob.digest)

    async def upload_delete(self, request: web.Request, name: str, uuid: str) -> web.StreamResponse:
        await self.authorize(request, self.scope(name, "pull", "push"))
        await self.run(self.storage.upload_cancel, name, uuid)
        return web.Response(status=204)

    async def _receive(self, request: web.Request, uid: str, name: str,
                       content_range: str | None) -> UploadInfo:
        """Append the request body to a session; a failed request leaves the session as it was."""
        start = expected = None
        if content_range:
            m = re.fullmatch(r"\s*(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?\s*", content_range)
            if not m or int(m[2]) < int(m[1]):
                raise BlobUploadInvalid(f"invalid Content-Range {content_range[:100]!r}")
            start, expected = int(m[1]), int(m[2]) - int(m[1]) + 1
        length = request.content_length
        if expected is not None and length is not None and length != expected:
            raise BlobUploadInvalid(f"Content-Length {length} does not match Content-Range "
                                    f"{content_range!r}")
        try:
            writer = await self.run(self.storage.upload_writer, name, uid, start)
        except RangeInvalid as err:
            info = await self.run(self.storage.upload_status, name, uid)
            err.headers.update(self._session_headers(info))
            raise
        return await _stream_into(request, writer, expected if expected is not None else length, self.run)


async def _stream_into(request: web.Request, writer: UploadWriter, expected: int | None,
                       run: Callable[..., Awaitable[Any]]) -> UploadInfo:
    """Append the body to the session; a client that sends nothing for BODY_IDLE_TIMEOUT seconds
    fails the request (and frees the session for the next one)."""
    try:
        buf = bytearray()
        while True:
            try:
                chunk = await asyncio.wait_for(request.content.read(_CHUNK), BODY_IDLE_TIMEOUT)
            except TimeoutError:
                raise BlobUploadInvalid(f"no data received for {BODY_IDLE_TIMEOUT:.0f} s") from None
            if chunk:
                buf += chunk
            if len(buf) >= _CHUNK or (not chunk and buf):
                await run(writer.write, bytes(buf))
                buf.clear()
            if not chunk:
                break
        got = writer.offset - writer.start
        if expected is not None and got != expected:
            raise BlobUploadInvalid(f"received {got} bytes, expected {expected}")
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def make_registry_app(storage: RegistryStorage, *, auth: RegistryAuth | None = None,
                      read_only: bool = False, strict_references: bool = False) -> web.Application:
    """Build the registry's aiohttp Application.

    Args:
        storage: where blobs, manifests, tags and uploads live.
        auth: HtpasswdAuth (Basic) or TokenAuth (Bearer, adds the `/token` endpoint); None: open.
        read_only: refuse every write with 405 UNSUPPORTED.
        strict_references: refuse manifests whose blobs/children are not in the repository
            (MANIFEST_BLOB_UNKNOWN); by default sparse manifests are accepted, as the spec allows.
    """
    reg = _Registry(storage, auth, read_only, strict_references)
    app = web.Application(middlewares=[_errors], client_max_size=MAX_MANIFEST + 1)

    async def close_pool(_: web.Application) -> None:
        reg.pool.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(close_pool)
    app.router.add_route("*", "/v2", reg.dispatch)
    app.router.add_route("*", "/v2/{tail:.*}", reg.dispatch)
    if isinstance(auth, TokenAuth):
        token = _token_handler(auth, reg.run)
        app.router.add_get("/token", token)
        app.router.add_post("/token", token)

    async def api_version(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault("Docker-Distribution-API-Version", "registry/2.0")

    app.on_response_prepare.append(api_version)
    return app


def _token_handler(auth: TokenAuth, run: Callable[..., Awaitable[Any]]) -> Handler:
    async def token(request: web.Request) -> web.StreamResponse:
        try:
            if request.method == "POST":
                form = await request.post()
                grant = str(form.get("grant_type", ""))
                if grant == "refresh_token":
                    subject = await run(auth.refresh_grant, str(form.get("refresh_token", "")))
                elif grant == "password":
                    subject = await run(auth.password_grant, str(form.get("username", "")),
                                                      str(form.get("password", "")))
                else:
                    raise RegistryError(f"unsupported grant_type {grant[:40]!r}", status=400,
                                        code="UNSUPPORTED")
                scopes = [str(s) for s in form.getall("scope", [])]
                reply = auth.issue(subject, scopes, refresh=True)
            else:
                subject = await run(auth.login, request.headers.get("Authorization"))
                q = _query(request)
                reply = auth.issue(subject, q.get("scope", []),
                                   refresh=_one(q, "offline_token") == "true")
        except WorkbenchError as err:
            return _error_response(err, request.method)
        return web.json_response(reply)
    return token
