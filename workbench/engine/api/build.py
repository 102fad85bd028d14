"""Build routes: `POST /build` (the classic builder's JSON-lines stream) and `POST /build/prune`.

The context body (chunked, any Content-Type, plain or compressed) is streamed into the builder's
extraction as it arrives (a bounded pipe: a slow extraction slows the upload, nothing is spooled).
Errors before the first line of output (bad parameters, an unreadable context, a Dockerfile syntax
error, an unknown target) are plain HTTP errors, as dockerd returns them while its output is still
unflushed; after that they go in-stream as `{"errorDetail": {...}, "error": ...}`, with the exit
code as `errorDetail.code` only for a failing RUN.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from workbench.engine.api.codec import json_response, qbool, qint, qjson, qstr
from workbench.engine.api.streaming import open_stream
from workbench.engine.build.executor import BuildEvent, PullFn, describe_error
from workbench.engine.registry.progress import ChunkPipe, PipeClosed
from workbench.engine.services.builds import BuildOptions, BuildService
from workbench.errors import InvalidArgument, WorkbenchError
from workbench.oci.streams import progress_line

log = logging.getLogger("workbench.build")


def _str_map(value: Any, name: str, *, allow_none: bool) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(v, str) or (allow_none and v is None) for v in value.values()):
        raise InvalidArgument(f"invalid {name}: expected a JSON object of strings")
    return {str(k): v for k, v in value.items()}


def parse_options(request: web.Request) -> BuildOptions:
    """`POST /build` query parameters → BuildOptions (400 on malformed values)."""
    if qstr(request, "remote"):
        raise InvalidArgument("remote build contexts are not supported: send the context as the body")
    cache_from = qjson(request, "cachefrom", []) or []
    if not isinstance(cache_from, list):
        raise InvalidArgument("invalid cachefrom: expected a JSON array")
    hosts = [h for raw in request.query.getall("extrahosts", []) for h in raw.split(",") if h.strip()]
    return BuildOptions(
        tags=tuple(request.query.getall("t", [])), dockerfile=qstr(request, "dockerfile") or "Dockerfile",
        build_args=_str_map(qjson(request, "buildargs"), "buildargs", allow_none=True),
        labels=_str_map(qjson(request, "labels"), "labels", allow_none=False),
        target=qstr(request, "target") or "", nocache=qbool(request, "nocache"),
        rm=qbool(request, "rm", True), forcerm=qbool(request, "forcerm"), quiet=qbool(request, "q"),
        pull=qbool(request, "pull"), cache_from=tuple(str(c) for c in cache_from),
        network_mode=qstr(request, "networkmode") or "", memory=qint(request, "memory"),
        memory_swap=qint(request, "memswap"), cpu_quota=qint(request, "cpuquota"),
        cpu_period=qint(request, "cpuperiod"), shm_size=qint(request, "shmsize"),
        extra_hosts=tuple(h.strip() for h in hosts), platform=qstr(request, "platform") or "")


def encode(ev: BuildEvent) -> bytes:
    if ev.progress is not None:
        return progress_line(ev.progress)
    return progress_line({"aux": ev.aux} if ev.aux is not None else {"stream": ev.stream})


def _registry_configs(header: str | None) -> dict[str, Any]:
    """`X-Registry-Config`: base64 JSON of {registry: AuthConfig} (`e30=` when empty)."""
    if not header:
        return {}
    try:
        doc = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _puller(engine: Any, request: web.Request) -> PullFn | None:
    """Pull FROM images through the engine's registry client (when it has one), with the
    credentials the client sent for that registry."""
    extra = getattr(engine, "extra", None)
    transfers = extra.get("transfers") if isinstance(extra, dict) else None
    if transfers is None:
        return None
    from workbench.engine.api.distribution import decode_registry_auth, encode_progress
    from workbench.engine.registry.transfer import registry_domain
    from workbench.oci import reference

    configs = _registry_configs(request.headers.get("X-Registry-Config"))

    async def pull(ref: str) -> AsyncIterator[dict[str, Any]]:
        domain = reference.parse(ref).domain
        auth = next((cfg for key, cfg in configs.items() if registry_domain(key) == domain), None)
        creds = decode_registry_auth(base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()) \
            if isinstance(auth, dict) else None
        prepared = await transfers.prepare_pull(ref, None, credentials=creds)
        try:
            async for ev in prepared.events():
                yield encode_progress(ev)
        finally:
            await prepared.aclose()
    return pull


def encode_error(message: str, code: int | None = None) -> bytes:
    """dockerd's in-stream error (jsonmessage.JSONError: `code` first, omitted when zero)."""
    detail: dict[str, Any] = {"code": code, "message": message} if code else {"message": message}
    return progress_line({"errorDetail": detail, "error": message})


async def _pump(request: web.Request, pipe: ChunkPipe) -> None:
    """Feed the request body into `pipe` (EOF at its end; an error if the client breaks off)."""
    try:
        async for chunk in request.content.iter_chunked(1 << 20):
            await pipe.put(chunk)
    except PipeClosed:
        return
    except Exception as err:
        pipe.finish(InvalidArgument(f"reading the build context: {err}"))
        return
    pipe.finish()


async def _cancel_on_disconnect(request: web.Request, handler: asyncio.Task[Any] | None,
                                interval: float = 0.25) -> None:
    """Cancel the build when its client goes away (a RUN may print nothing for minutes, so a
    failing write cannot be relied on to notice): its containers, mounts and files are removed."""
    while handler is not None and not handler.done():
        transport = request.transport
        if transport is None or transport.is_closing():
            log.info("build: the client went away; cancelling")
            handler.cancel()
            return
        await asyncio.sleep(interval)


def routes(engine: Any) -> list[web.RouteDef]:
    tmp_dir: Path = engine.config.tmp_dir
    service = BuildService(engine.image_io, engine.runtime, tmp_dir, engine.config.root / "build-cache")
    service.recover()

    async def build(request: web.Request) -> web.StreamResponse:
        opts = parse_options(request)
        service.check(opts)
        pipe = ChunkPipe()
        pump = asyncio.create_task(_pump(request, pipe))
        events = service.build(opts, pipe, pull=_puller(engine, request))
        watch = asyncio.create_task(_cancel_on_disconnect(request, asyncio.current_task()))
        try:
            try:
                first = await anext(events)
            except StopAsyncIteration:
                first = None
            resp = await open_stream(request)
            try:
                if first is not None:
                    await resp.write(encode(first))
                    async for ev in events:
                        await resp.write(encode(ev))
            except WorkbenchError as err:
                message, code = describe_error(err)
                await resp.write(encode_error(message, code))
            except (ConnectionResetError, BrokenPipeError):
                raise
            except Exception as err:  # a bug: report it in-stream, keep serving
                log.exception("build failed")
                await resp.write(encode_error(f"{type(err).__name__}: {err}"))
            await resp.write_eof()
            return resp
        finally:
            watch.cancel()
            with contextlib.suppress(Exception):
                await events.aclose()
            pipe.abandon()
            if not pump.done():
                pump.cancel()
            with contextlib.suppress(BaseException):
                await pump

    async def prune(request: web.Request) -> web.Response:
        return json_response(service.prune())

    return [web.post("/build", build), web.post("/build/prune", prune)]
