"""Image routes: list, inspect, history, tag, remove, prune, import, load, save (pull/push hook in)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from workbench.engine.api.codec import filters, json_response, qbool, qstr, spool_body
from workbench.engine.api.streaming import iterate_in_thread, open_stream
from workbench.engine.services.image_io import ImageIO
from workbench.engine.services.images import ImageService
from workbench.errors import InvalidArgument
from workbench.oci.streams import error_line, progress_line

PullHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def routes(images: ImageService, io: ImageIO, tmp_dir: Path, *, pull: PullHandler | None = None,
           push: PullHandler | None = None, runner: Any = None) -> list[web.RouteDef]:
    async def run(fn, *args, **kw):
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))

    async def list_(request: web.Request) -> web.Response:
        return json_response(images.list(all=qbool(request, "all"), filters=filters(request)))

    async def inspect(request: web.Request) -> web.Response:
        return json_response(images.inspect(request.match_info["name"]))

    async def history(request: web.Request) -> web.Response:
        return json_response(images.history(request.match_info["name"]))

    async def tag(request: web.Request) -> web.Response:
        repo = qstr(request, "repo")
        if not repo:
            raise InvalidArgument("repository name must have at least one component")
        images.tag(request.match_info["name"], repo, qstr(request, "tag") or None)
        return web.Response(status=201)

    async def remove(request: web.Request) -> web.Response:
        # off the event loop: the layers the image took along are deleted from disk before the reply
        return json_response(await run(images.remove, request.match_info["name"], force=qbool(request, "force"),
                                       noprune=qbool(request, "noprune")))

    async def prune(request: web.Request) -> web.Response:
        f = filters(request)
        return json_response(await run(images.prune, filters=f))

    async def create(request: web.Request) -> web.StreamResponse:
        if request.query.get("fromImage"):
            if pull is None:
                raise InvalidArgument("pulling images is not available")
            return await pull(request)
        src = request.query.get("fromSrc")
        if src != "-":
            raise InvalidArgument("fromSrc must be \"-\" (a tar in the request body) or use fromImage")
        body = await spool_body(request, tmp_dir)
        try:
            rec = await run(io.import_, body, repo=qstr(request, "repo") or None,
                            tag=qstr(request, "tag") or None, changes=request.query.getall("changes", []),
                            message=qstr(request, "message") or "")
        finally:
            body.unlink(missing_ok=True)
        resp = await open_stream(request)
        await resp.write(progress_line({"status": rec.id}))
        await resp.write_eof()
        return resp

    async def load(request: web.Request) -> web.StreamResponse:
        body = await spool_body(request, tmp_dir)
        try:
            lines = [line async for line in iterate_in_thread(lambda: io.load(body))]
        finally:
            body.unlink(missing_ok=True)
        resp = await open_stream(request)
        for line in lines:
            await resp.write(progress_line({"stream": line + "\n"}))
        await resp.write_eof()
        return resp

    async def save(request: web.Request) -> web.StreamResponse:
        names = [request.match_info["name"]] if "name" in request.match_info else \
            request.query.getall("names", [])
        if not names:
            raise InvalidArgument("no images given to save")
        for n in names:
            images.get(n)  # 404 before the 200
        resp = await open_stream(request, "application/x-tar")
        try:
            async for chunk in iterate_in_thread(lambda: io.save(names)):
                await resp.write(chunk)
        except Exception as err:
            await resp.write(error_line(str(err)))
            raise
        await resp.write_eof()
        return resp

    async def commit(request: web.Request) -> web.Response:
        from workbench.engine.api.codec import json_body
        from workbench.engine.services.commit import commit as do_commit
        if runner is None:
            raise InvalidArgument("commit is not available")
        body = await json_body(request)
        image_id = await run(do_commit, runner, io, qstr(request, "container") or "", repo=qstr(request, "repo"),
                             tag=qstr(request, "tag"), comment=qstr(request, "comment") or "",
                             author=qstr(request, "author") or "", changes=request.query.getall("changes", []),
                             config=body or None, pause=qbool(request, "pause", True))
        return json_response({"Id": image_id}, status=201)

    out = [
        web.post("/commit", commit),
        web.get("/images/json", list_), web.post("/images/create", create), web.post("/images/load", load),
        web.get("/images/get", save), web.post("/images/prune", prune),
        web.get("/images/{name:.+}/json", inspect), web.get("/images/{name:.+}/history", history),
        web.post("/images/{name:.+}/tag", tag), web.get("/images/{name:.+}/get", save),
    ]
    if push is not None:
        out.append(web.post("/images/{name:.+}/push", push))
    out.append(web.delete("/images/{name:.+}", remove))
    return out
