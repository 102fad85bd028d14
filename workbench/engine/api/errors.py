"""THE error middleware: WorkbenchError → Docker's status + {"message": ...}; anything else → 500."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from workbench.errors import WorkbenchError

log = logging.getLogger("workbench.api")


def error_response(status: int, message: str) -> web.Response:
    if status == 304:
        return web.Response(status=304)
    return web.Response(status=status, content_type="application/json",
                        body=json.dumps({"message": message}).encode() + b"\n")


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except WorkbenchError as err:
        if err.status >= 500:
            log.warning("%s %s: %s", request.method, request.path, err.message)
        return error_response(err.status, err.message)
    except web.HTTPException as exc:
        if exc.status == 404 and exc.empty_body is False and not exc.text.startswith("{"):
            return error_response(404, f"page not found: {request.path}")
        if exc.status == 405:
            return error_response(405, f"method {request.method} not allowed for {request.path}")
        raise
    except (ConnectionResetError, BrokenPipeError):
        raise
    except Exception as err:  # the daemon keeps serving; the client gets a 500 with the cause
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, f"{type(err).__name__}: {err}")
