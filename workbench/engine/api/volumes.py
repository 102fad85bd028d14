"""Volume routes: parse → one VolumeService call (off the event loop) → Docker JSON."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from workbench.engine.api.codec import filters, json_body, json_response, qbool
from workbench.errors import InvalidArgument


def routes(service: Any) -> list[web.RouteDef]:
    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def list_(request: web.Request) -> web.Response:
        return json_response(await call(service.list, filters(request)))

    async def create(request: web.Request) -> web.Response:
        body = await json_body(request)
        name = body.get("Name") or None
        if name is not None and not isinstance(name, str):
            raise InvalidArgument("invalid volume name")
        doc = await call(service.create, name, driver=body.get("Driver") or "local",
                         labels=body.get("Labels") or {}, driver_opts=body.get("DriverOpts") or {})
        return json_response(doc, status=201)

    async def inspect(request: web.Request) -> web.Response:
        return json_response(await call(service.inspect, request.match_info["name"]))

    async def remove(request: web.Request) -> web.Response:
        await call(service.remove, request.match_info["name"], force=qbool(request, "force"))
        return web.Response(status=204)

    async def prune(request: web.Request) -> web.Response:
        return json_response(await call(service.prune, filters(request)))

    return [
        web.get("/volumes", list_),
        web.post("/volumes/create", create),
        web.post("/volumes/prune", prune),
        web.get("/volumes/{name}", inspect),
        web.delete("/volumes/{name}", remove),
    ]
