"""The aiohttp application: version prefixes, Docker's common headers, the route table."""

from __future__ import annotations

import platform
from collections.abc import Iterable

from aiohttp import web

from workbench import API_VERSION, MIN_API_VERSION, __version__
from workbench.engine.api.errors import error_middleware, error_response

_MAX = tuple(int(x) for x in API_VERSION.split("."))
_MIN = tuple(int(x) for x in MIN_API_VERSION.split("."))

COMMON_HEADERS = {
    "Api-Version": API_VERSION,
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Server": f"Workbench/{__version__} (linux)",
}


@web.middleware
async def version_middleware(request: web.Request, handler):
    v = request.match_info.get("api_version")
    if v:
        try:
            want = tuple(int(x) for x in v.split("."))
        except ValueError:
            return error_response(400, f"invalid API version: {v}")
        if want > _MAX:
            return error_response(400, f"client version {v} is too new. Maximum supported API "
                                       f"version is {API_VERSION}")
        if want < _MIN:
            return error_response(400, f"client version {v} is too old. Minimum supported API "
                                       f"version is {MIN_API_VERSION}, please upgrade your client "
                                       f"to a newer version")
    return await handler(request)


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.status == 101:
        return
    for k, v in COMMON_HEADERS.items():
        response.headers.setdefault(k, v)


def make_app(route_groups: Iterable[Iterable[web.RouteDef]]) -> web.Application:
    """Build the app; every route is served both bare and under `/v{X.Y}`."""
    app = web.Application(middlewares=[error_middleware, version_middleware], client_max_size=0)
    app.on_response_prepare.append(_common_headers)
    for group in route_groups:
        for r in group:
            for path in (r.path, "/v{api_version:[0-9]+\\.[0-9]+}" + r.path):
                if r.method == "GET":
                    app.router.add_get(path, r.handler, allow_head=False)
                else:
                    app.router.add_route(r.method, path, r.handler)
    return app


def kernel_version() -> str:
    return platform.release()
