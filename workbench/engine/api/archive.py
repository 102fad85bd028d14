"""Container file routes: changes (docker diff), export, archive HEAD/GET/PUT (docker cp)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from workbench.engine.api.codec import json_response, qbool, qstr, spool_body
from workbench.engine.api.streaming import open_stream, stream_writer
from workbench.engine.services.archive import ArchiveService, stat_header
from workbench.errors import InvalidArgument


def routes(engine: Any) -> list[web.RouteDef]:
    archive = ArchiveService(engine.runner)

    async def run(fn, *args, **kw):
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))

    async def changes(request: web.Request) -> web.Response:
        return json_response(await run(archive.changes, request.match_info["id"]) or None)

    async def export(request: web.Request) -> web.StreamResponse:
        ref = request.match_info["id"]
        engine.containers.get(ref)
        resp = await open_stream(request, "application/octet-stream")
        async for chunk in stream_writer(lambda out: archive.export(ref, out)):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    def _path(request: web.Request) -> str:
        path = qstr(request, "path")
        if not path:
            raise InvalidArgument("path is required")
        return path

    async def head(request: web.Request) -> web.Response:
        st = await run(archive.stat, request.match_info["id"], _path(request))
        return web.Response(headers={"X-Docker-Container-Path-Stat": stat_header(st)})

    async def get(request: web.Request) -> web.StreamResponse:
        ref, path = request.match_info["id"], _path(request)
        st = await run(archive.stat, ref, path)
        resp = web.StreamResponse(headers={"X-Docker-Container-Path-Stat": stat_header(st)})
        resp.content_type = "application/x-tar"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        async for chunk in stream_writer(lambda out: archive.get(ref, path, out)):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def put(request: web.Request) -> web.Response:
        ref, path = request.match_info["id"], _path(request)
        engine.containers.get(ref)
        body = await spool_body(request, engine.config.tmp_dir)
        try:
            def apply() -> None:
                from workbench.engine.store.compression import open_decompressed
                with open(body, "rb") as f:
                    archive.put(ref, path, open_decompressed(f),
                                no_overwrite_dir_non_dir=qbool(request, "noOverwriteDirNonDir"))
            await run(apply)
        finally:
            body.unlink(missing_ok=True)
        return web.Response(status=200)

    return [
        web.get("/containers/{id}/changes", changes), web.get("/containers/{id}/export", export),
        web.head("/containers/{id}/archive", head), web.get("/containers/{id}/archive", get, allow_head=False),
        web.put("/containers/{id}/archive", put),
    ]
