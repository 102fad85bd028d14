"""System routes: /_ping, /version, /info, /system/df, and the 404/503 answers clients probe for."""

from __future__ import annotations

from aiohttp import web

from workbench.engine.api.codec import json_response
from workbench.engine.services.system import SystemService

_PING_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
                 "Builder-Version": "1"}


def routes(system: SystemService) -> list[web.RouteDef]:
    async def ping(request: web.Request) -> web.Response:
        body = b"" if request.method == "HEAD" else b"OK"
        return web.Response(body=body, headers=_PING_HEADERS, content_type="text/plain",
                            charset="utf-8")

    async def version(request: web.Request) -> web.Response:
        return json_response(system.version())

    async def info(request: web.Request) -> web.Response:
        return json_response(system.info())

    async def df(request: web.Request) -> web.Response:
        return json_response(system.df())

    async def swarm(request: web.Request) -> web.Response:
        return json_response({"message": "This node is not part of a swarm"}, status=503)

    async def plugin(request: web.Request) -> web.Response:
        return json_response({"message": f"plugin \"{request.match_info['name']}\" not found"},
                             status=404)

    return [
        web.get("/_ping", ping, allow_head=False), web.head("/_ping", ping),
        web.get("/version", version), web.get("/info", info), web.get("/system/df", df),
        web.post("/swarm/leave", swarm), web.get("/swarm", swarm), web.get("/nodes", swarm),
        web.get("/services", swarm),
        web.get("/plugins/{name:.+}/json", plugin),
    ]
