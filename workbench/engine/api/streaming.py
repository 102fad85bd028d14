"""Streaming replies in Docker's formats: JSON-lines progress and multiplexed frames."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from aiohttp import web

from workbench.errors import WorkbenchError
from workbench.oci.streams import error_line, progress_line


async def open_stream(request: web.Request, content_type: str | None = "application/json",
                      status: int = 200) -> web.StreamResponse:
    resp = web.StreamResponse(status=status)
    if content_type:
        resp.content_type = content_type
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    return resp


async def json_lines(request: web.Request, events: AsyncIterator[dict[str, Any]]) -> web.StreamResponse:
    """Send each event as one JSON line, flushed; an error after the 200 goes in-stream."""
    resp = await open_stream(request)
    try:
        async for ev in events:
            await resp.write(progress_line(ev))
    except WorkbenchError as err:
        await resp.write(error_line(err.message, getattr(err, "code", None) or None))
    await resp.write_eof()
    return resp


async def iterate_in_thread(fn: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    """Run a blocking generator in a worker thread, yielding its items on the event loop.

    Exceptions raised by the generator re-raise here, in order, after the items before them.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=256)
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def run() -> None:
        try:
            for item in fn():
                if stop.is_set():
                    return
                q.put(("item", item))
            q.put(("done", None))
        except BaseException as err:  # handed over to the loop side
            q.put(("error", err))

    worker = loop.run_in_executor(None, run)
    try:
        while True:
            kind, val = await loop.run_in_executor(None, q.get)
            if kind == "item":
                yield val
            elif kind == "error":
                raise val
            else:
                break
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                q.get_nowait()
        await worker


class _QueueWriter:
    """A file-like sink that hands each write to the event loop's queue (back-pressured)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, q: asyncio.Queue[bytes | None]) -> None:
        self._loop, self._q = loop, q

    def write(self, data: bytes) -> int:
        if data:
            asyncio.run_coroutine_threadsafe(self._q.put(bytes(data)), self._loop).result()
        return len(data)

    def flush(self) -> None:
        pass


async def stream_writer(fn: Callable[[Any], Any]) -> AsyncIterator[bytes]:
    """Run `fn(out)` — blocking code that writes to a file object — in a thread; yield its bytes."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)
    out = _QueueWriter(loop, q)

    def run() -> None:
        try:
            fn(out)
        finally:
            asyncio.run_coroutine_threadsafe(q.put(None), loop).result()

    worker = loop.run_in_executor(None, run)
    try:
        while (chunk := await q.get()) is not None:
            yield chunk
    finally:
        while not q.empty():
            q.get_nowait()
        await worker


class _HijackProtocol(asyncio.Protocol):
    """Stands in for aiohttp's protocol on a hijacked connection (attach, exec start).

    Raw bytes from the client go to `on_data` (stdin); a half-close (`shutdown(SHUT_WR)`, which the
    docker CLI sends when its stdin ends) calls `on_eof` and keeps the connection open so output
    can still flow until the process exits. Loss of the connection goes back to aiohttp.
    """

    def __init__(self, inner: asyncio.Protocol, on_data: Callable[[bytes], None] | None,
                 on_eof: Callable[[], None] | None) -> None:
        self._inner, self._on_data, self._on_eof = inner, on_data, on_eof

    def data_received(self, data: bytes) -> None:
        if self._on_data is not None:
            self._on_data(data)

    def eof_received(self) -> bool:
        if self._on_eof is not None:
            self._on_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._on_eof is not None:
            self._on_eof()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


async def hijack(request: web.Request, *, on_data: Callable[[bytes], None] | None = None,
                 on_eof: Callable[[], None] | None = None) -> web.StreamResponse:
    """Answer `101 UPGRADED` (or 200 without an Upgrade header) with Docker's raw-stream type and
    take the connection over; the caller writes output and calls `write_eof()` at the end."""
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    resp = web.StreamResponse(status=101 if upgrade else 200, reason="UPGRADED" if upgrade else None)
    resp.content_type = "application/vnd.docker.raw-stream"
    if upgrade:
        resp.headers["Connection"], resp.headers["Upgrade"] = "Upgrade", "tcp"
    resp.force_close()
    await resp.prepare(request)
    transport = request.transport
    if transport is not None and request.protocol is not None:
        transport.set_protocol(_HijackProtocol(request.protocol, on_data, on_eof))
    return resp
