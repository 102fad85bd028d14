"""Container routes: parse → one service call → Docker JSON. No logic here."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import web

from workbench.engine.api.codec import filters, json_body, json_response, qbool, qint, qstr
from workbench.engine.api.streaming import hijack, open_stream
from workbench.engine.services import logs as logsvc
from workbench.engine.services.container_ops import ContainerRunner
from workbench.engine.services.containers import ContainerService
from workbench.engine.services.stdin import StdinFeeder
from workbench.oci.streams import frame


def routes(svc: ContainerService, runner: ContainerRunner) -> list[web.RouteDef]:
    async def create(request: web.Request) -> web.Response:
        body = await json_body(request, allow_empty=False)
        doc = svc.create(body, qstr(request, "name") or None)
        return json_response({"Id": doc["Id"], "Warnings": []}, status=201)

    async def list_(request: web.Request) -> web.Response:
        return json_response(svc.list(all=qbool(request, "all"), limit=qint(request, "limit"),
                                      size=qbool(request, "size"), filters=filters(request)))

    async def inspect(request: web.Request) -> web.Response:
        return json_response(svc.inspect(request.match_info["id"], size=qbool(request, "size")))

    async def start(request: web.Request) -> web.Response:
        await runner.start(request.match_info["id"])
        return web.Response(status=204)

    async def stop(request: web.Request) -> web.Response:
        await runner.stop(request.match_info["id"], qint(request, "t"), qstr(request, "signal"))
        return web.Response(status=204)

    async def kill(request: web.Request) -> web.Response:
        await runner.kill(request.match_info["id"], qstr(request, "signal"))
        return web.Response(status=204)

    async def restart(request: web.Request) -> web.Response:
        await runner.restart(request.match_info["id"], qint(request, "t"))
        return web.Response(status=204)

    async def pause(request: web.Request) -> web.Response:
        await runner.pause(request.match_info["id"])
        return web.Response(status=204)

    async def unpause(request: web.Request) -> web.Response:
        await runner.unpause(request.match_info["id"])
        return web.Response(status=204)

    async def wait(request: web.Request) -> web.StreamResponse:
        fut = runner.waiter(request.match_info["id"], qstr(request, "condition"))
        resp = await open_stream(request)
        try:
            body = await fut
        except asyncio.CancelledError:
            fut.cancel()
            raise
        await resp.write(json.dumps(body).encode() + b"\n")
        await resp.write_eof()
        return resp

    async def remove(request: web.Request) -> web.Response:
        await runner.remove(request.match_info["id"], force=qbool(request, "force"),
                            volumes=qbool(request, "v"))
        return web.Response(status=204)

    async def rename(request: web.Request) -> web.Response:
        svc.rename(request.match_info["id"], qstr(request, "name") or "")
        return web.Response(status=204)

    async def top(request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        ref, args = request.match_info["id"], qstr(request, "ps_args")
        return json_response(await loop.run_in_executor(None, runner.top, ref, args))

    async def prune(request: web.Request) -> web.Response:
        return json_response(await runner.prune(filters(request)))

    async def logs(request: web.Request) -> web.StreamResponse:
        doc = svc.get(request.match_info["id"])
        opts = logsvc.LogOptions(
            stdout=qbool(request, "stdout"), stderr=qbool(request, "stderr"),
            since=logsvc.parse_since(qstr(request, "since")), until=logsvc.parse_since(qstr(request, "until")),
            tail=_tail(qstr(request, "tail")), timestamps=qbool(request, "timestamps"),
            follow=qbool(request, "follow"))
        tty = bool(doc["Config"].get("Tty"))
        resp = await open_stream(request, None)
        cid = doc["Id"]
        async for stream, data in logsvc.stream(Path(doc["LogPath"]), opts, lambda: runner.is_running(cid)):
            await resp.write(data if tty else frame(stream, data))
        await resp.write_eof()
        return resp

    async def attach(request: web.Request) -> web.StreamResponse:
        """Hijacked attach: output of the container from now on (plus its past logs with logs=1)."""
        doc = svc.get(request.match_info["id"])
        cid, tty = doc["Id"], bool(doc["Config"].get("Tty"))
        exited = runner.waiter(cid, "next-exit") if qbool(request, "stream") else None
        feeder = None
        if qbool(request, "stdin") and doc["Config"].get("OpenStdin"):
            feeder = StdinFeeder(runner.runtime.stdin_path(svc.path(cid)), exited)
        resp = await hijack(request, on_data=feeder.feed if feeder else None,
                            on_eof=feeder.close if feeder else None)
        opts = logsvc.LogOptions(stdout=qbool(request, "stdout"), stderr=qbool(request, "stderr"),
                                 follow=exited is not None)
        done = (lambda: not exited.done()) if exited is not None else (lambda: False)
        past = qbool(request, "logs")
        with runner.reading(cid):
            async for stream, data in logsvc.stream(Path(doc["LogPath"]), opts, done, past=past):
                await resp.write(data if tty else frame(stream, data))
        if feeder is not None:
            await feeder.wait()
        await resp.write_eof()
        return resp

    return [
        web.post("/containers/create", create), web.post("/containers/{id}/attach", attach),
        web.get("/containers/json", list_),
        web.post("/containers/prune", prune),
        web.get("/containers/{id}/json", inspect), web.post("/containers/{id}/start", start),
        web.post("/containers/{id}/stop", stop), web.post("/containers/{id}/kill", kill),
        web.post("/containers/{id}/restart", restart), web.post("/containers/{id}/pause", pause),
        web.post("/containers/{id}/unpause", unpause), web.post("/containers/{id}/wait", wait),
        web.delete("/containers/{id}", remove), web.post("/containers/{id}/rename", rename),
        web.get("/containers/{id}/top", top), web.get("/containers/{id}/logs", logs),
    ]


def _tail(v: str | None) -> int | None:
    if v is None or v in ("", "all"):
        return None
    try:
        n = int(v)
    except ValueError:
        return None
    return n if n >= 0 else None
