"""Network routes: parse → one NetworkService call (off the event loop) → Docker JSON."""

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

    async def inspect(request: web.Request) -> web.Response:
        return json_response(await call(service.inspect, request.match_info["id"], qbool(request, "verbose")))

    async def create(request: web.Request) -> web.Response:
        body = await json_body(request, allow_empty=False)
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument("network name must not be empty")
        ipam = body.get("IPAM") or {}
        nid = await call(service.create, name, driver=body.get("Driver") or "bridge",
                         ipam_config=ipam.get("Config") or [], ipam_driver=ipam.get("Driver") or "default",
                         ipam_options=ipam.get("Options") or {}, internal=bool(body.get("Internal")),
                         attachable=bool(body.get("Attachable")), enable_ipv6=bool(body.get("EnableIPv6")),
                         labels=body.get("Labels") or {}, options=body.get("Options") or {},
                         check_duplicate=body.get("CheckDuplicate", True) is not False)
        return json_response({"Id": nid, "Warning": ""}, status=201)

    async def connect(request: web.Request) -> web.Response:
        body = await json_body(request, allow_empty=False)
        ep = body.get("EndpointConfig") or {}
        await call(service.connect, request.match_info["id"], _container(body), aliases=ep.get("Aliases") or (),
                   ipv4=(ep.get("IPAMConfig") or {}).get("IPv4Address") or None)
        return web.Response(status=200)

    async def disconnect(request: web.Request) -> web.Response:
        body = await json_body(request, allow_empty=False)
        await call(service.disconnect, request.match_info["id"], _container(body), force=bool(body.get("Force")))
        return web.Response(status=200)

    async def remove(request: web.Request) -> web.Response:
        await call(service.remove, request.match_info["id"])
        return web.Response(status=204)

    async def prune(request: web.Request) -> web.Response:
        return json_response(await call(service.prune, filters(request)))

    return [
        web.get("/networks", list_),
        web.post("/networks/create", create),
        web.post("/networks/prune", prune),
        web.get("/networks/{id}", inspect),
        web.post("/networks/{id}/connect", connect),
        web.post("/networks/{id}/disconnect", disconnect),
        web.delete("/networks/{id}", remove),
    ]


def _container(body: dict[str, Any]) -> str:
    ref = body.get("Container")
    if not isinstance(ref, str) or not ref:
        raise InvalidArgument("no container specified")
    return ref
