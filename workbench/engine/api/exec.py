"""Exec routes: create, start (hijacked, or detached), inspect."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from workbench.engine.api.codec import json_body, json_response
from workbench.engine.api.streaming import hijack
from workbench.engine.services.exec import ExecService
from workbench.errors import WorkbenchError
from workbench.oci.streams import frame


def routes(engine: Any) -> list[web.RouteDef]:
    execs = ExecService(engine.runner)
    background: set[asyncio.Task[None]] = set()

    async def create(request: web.Request) -> web.Response:
        ex = execs.create(request.match_info["id"], await json_body(request, allow_empty=False))
        return json_response({"Id": ex.id}, status=201)

    async def start(request: web.Request) -> web.StreamResponse:
        ex = execs.get(request.match_info["id"])
        body = await json_body(request)
        if body.get("Detach"):
            execs.check_startable(ex)
            execs.check_process(ex)
            async def drain() -> None:
                with contextlib.suppress(WorkbenchError):   # could not start: its ExitCode says 126
                    async for _ in execs.run(ex, None):
                        pass
            task = asyncio.ensure_future(drain())
            background.add(task)
            task.add_done_callback(background.discard)
            await asyncio.sleep(0)
            return web.Response(status=200)
        stdin: asyncio.Queue[bytes | None] | None = asyncio.Queue() if ex.attach_stdin else None
        execs.check_startable(ex)  # a 409 must come before the hijack
        chunks = execs.run(ex, stdin)
        resp = await hijack(request, on_data=stdin.put_nowait if stdin else None,
                            on_eof=(lambda: stdin.put_nowait(None)) if stdin else None)
        tty = ex.tty
        with contextlib.suppress(ConnectionResetError):
            try:
                async for stream, data in chunks:
                    await resp.write(data if tty else frame(stream, data))
            except WorkbenchError as err:
                # the process could not start (an unknown user, ...). The connection is hijacked,
                # so an HTTP error reply would corrupt the stream; dockerd writes the error to
                # stdout there, and the exit code (126) comes from the exec's inspect
                text = f"{err.message}\r\n".encode()
                await resp.write(text if tty else frame(1, text))
        await resp.write_eof()
        return resp

    async def inspect(request: web.Request) -> web.Response:
        return json_response(execs.get(request.match_info["id"]).inspect())

    async def resize(request: web.Request) -> web.Response:
        execs.get(request.match_info["id"])
        return web.Response(status=200)

    return [web.post("/containers/{id}/exec", create), web.post("/exec/{id}/start", start),
            web.get("/exec/{id}/json", inspect), web.post("/exec/{id}/resize", resize)]

