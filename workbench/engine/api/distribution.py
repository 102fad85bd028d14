"""Distribution routes: `POST /images/create?fromImage=` (pull), `POST /images/{name}/push`, `POST /auth`.

Parse the request (query, `X-Registry-Auth`), let `registry.transfer.Transfers` resolve what can
fail early (so a missing image is a plain 404 before any output), then stream Docker's JSON-lines
progress; an error after the 200 goes in-stream as `errorDetail`.

`handlers(engine)` gives `{"pull", "push"}` for `api/images.routes`; `routes(engine)` gives the
`POST /auth` route (and `auth_handler(engine)` the bare handler).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from workbench.engine.api.codec import json_body, json_response, qstr
from workbench.engine.api.streaming import open_stream
from workbench.engine.registry.client import Credentials
from workbench.engine.registry.progress import Progress, progress_text
from workbench.engine.registry.transfer import Transfers
from workbench.errors import InvalidArgument, WorkbenchError
from workbench.oci.streams import error_line, progress_line

log = logging.getLogger("workbench.api.distribution")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

__all__ = ["auth_handler", "decode_registry_auth", "encode_progress", "handlers", "routes"]


def decode_registry_auth(value: str | None) -> Credentials | None:
    """`X-Registry-Auth`: base64url JSON (`e30=` is `{}`), padded or not; empty → anonymous."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError):
        try:
            doc = json.loads(base64.b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError) as err:
            raise InvalidArgument("invalid X-Registry-Auth header: not base64-encoded JSON") from err
    if not isinstance(doc, dict):
        return None
    return _credentials(doc)


def _credentials(doc: dict[str, Any]) -> Credentials | None:
    user, password = str(doc.get("username") or ""), str(doc.get("password") or "")
    if not user and doc.get("auth"):
        try:
            user, _, password = base64.b64decode(str(doc["auth"])).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            pass
    creds = Credentials(user, password, str(doc.get("identitytoken") or ""), str(doc.get("registrytoken") or ""))
    return creds if creds != Credentials() else None


def encode_progress(ev: Progress) -> dict[str, Any]:
    """A Progress as dockerd writes it: status, progressDetail, progress, id, aux (in that order)."""
    out: dict[str, Any] = {}
    if ev.status:
        out["status"] = ev.status
    if ev.layer:
        detail: dict[str, int] = {}
        if ev.current is not None:
            detail["current"] = ev.current
            if ev.total:
                detail["total"] = ev.total
        out["progressDetail"] = detail
        if ev.current is not None:
            bar = progress_text(ev.current, ev.total or 0)
            if bar:
                out["progress"] = bar
    if ev.id:
        out["id"] = ev.id
    if ev.aux is not None:
        out["aux"] = ev.aux
    return out


async def _stream(request: web.Request, events: AsyncIterator[Progress]) -> web.StreamResponse:
    resp = await open_stream(request)
    try:
        try:
            async for ev in events:
                await resp.write(progress_line(encode_progress(ev)))
        except WorkbenchError as err:
            await resp.write(error_line(err.message))
        except (ConnectionResetError, BrokenPipeError):
            raise
        except Exception as err:  # the stream is open: report it there, keep the daemon serving
            log.exception("%s %s failed", request.method, request.path)
            await resp.write(error_line(f"{type(err).__name__}: {err}"))
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        await resp.write_eof()
    except (ConnectionResetError, BrokenPipeError):   # the client went away: the transfer is cancelled
        log.info("%s %s: the client went away", request.method, request.path)
    return resp


def _transfers(engine: Any) -> Transfers:
    extra = getattr(engine, "extra", None)
    if isinstance(extra, dict) and isinstance(extra.get("transfers"), Transfers):
        return extra["transfers"]
    insecure = getattr(getattr(engine, "config", None), "insecure_registries", ()) or ()
    transfers = Transfers(engine.images, engine.image_io, insecure=insecure)
    if isinstance(extra, dict):
        extra["transfers"] = transfers
    return transfers


def handlers(engine: Any) -> dict[str, Handler]:
    """The pull and push handlers `api/images.routes` mounts (`pull=`, `push=`)."""
    transfers = _transfers(engine)

    async def pull(request: web.Request) -> web.StreamResponse:
        creds = decode_registry_auth(request.headers.get("X-Registry-Auth"))
        prepared = await transfers.prepare_pull(qstr(request, "fromImage") or "", qstr(request, "tag") or None,
                                                platform=qstr(request, "platform") or None, credentials=creds)
        try:
            return await _stream(request, prepared.events())
        finally:
            await prepared.aclose()

    async def push(request: web.Request) -> web.StreamResponse:
        creds = decode_registry_auth(request.headers.get("X-Registry-Auth"))
        prepared = transfers.prepare_push(request.match_info["name"], qstr(request, "tag") or None,
                                          credentials=creds)
        try:
            return await _stream(request, prepared.events())
        finally:
            await prepared.aclose()

    return {"pull": pull, "push": push}


def auth_handler(engine: Any) -> Handler:
    """`POST /auth`: check credentials with the registry → `Login Succeeded`, or 401."""
    transfers = _transfers(engine)

    async def auth(request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        creds = _credentials(body) or Credentials()
        await transfers.login(str(body.get("serveraddress") or ""), creds)
        return json_response({"Status": "Login Succeeded", "IdentityToken": ""})

    return auth


def routes(engine: Any) -> list[web.RouteDef]:
    return [web.post("/auth", auth_handler(engine))]
