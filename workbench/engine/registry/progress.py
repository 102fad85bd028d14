"""What pull and push report, and how bytes move from the event loop into ingest threads.

`Progress` is one message of Docker's JSON-lines stream, as a record: the API layer turns it into
`{"status", "progressDetail", "progress", "id"}`. Per-layer updates (`layer=True`) always carry
`progressDetail` (`{}` when there is no count), as dockerd's do; plain messages never do.

`EventSink` collects the messages of one transfer from tasks and threads and hands them to the
streaming side in order. `Meter` throttles one layer's byte counts to about ten a second.

`ChunkPipe` is a bounded in-memory pipe from an async producer (a blob download) to a blocking
consumer (`LayerIngester.ingest` in a worker thread). The producer awaits when `limit` bytes are
buffered, so a slow extraction slows its download instead of filling memory; a producer error
raised into `finish(error)` surfaces in the consumer's next read, and a consumer that stops early
calls `abandon()` so the producer is not left waiting.
"""

from __future__ import annotations

import asyncio
import collections
import io
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

from workbench.oci.units import human_size

__all__ = ["ChunkPipe", "EventSink", "Meter", "Progress", "fail_shared", "progress_text", "short_id"]


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress message: `status` for `id`, with an optional byte count or aux record."""

    status: str = ""
    id: str | None = None
    current: int | None = None
    total: int | None = None
    layer: bool = False
    aux: dict[str, Any] | None = None


def short_id(digest: str) -> str:
    """Docker's 12-hex short form of a digest (`sha256:abc...` → `abc...`[:12])."""
    return digest.split(":", 1)[-1][:12]


def progress_text(current: int, total: int) -> str:
    """The bar dockerd puts in `progress` (jsonmessage.JSONProgress at a wide terminal)."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = min(int(current / total * 100) // 2, 50)
    bar = "[" + "=" * pct + ">" + " " * (50 - pct) + "] "
    if current > total:
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


class EventSink:
    """Messages of one transfer, from tasks (`emit`) and threads (`emit_threadsafe`)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Progress | None] = asyncio.Queue()

    def emit(self, event: Progress) -> None:
        self._queue.put_nowait(event)

    def status(self, status: str, id: str | None = None) -> None:
        self.emit(Progress(status, id))

    def layer(self, status: str, id: str, current: int | None = None, total: int | None = None) -> None:
        self.emit(Progress(status, id, current, total, layer=True))

    def emit_threadsafe(self, event: Progress) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def run(self, work: Awaitable[Any]) -> AsyncIterator[Progress]:
        """Run `work`, yielding messages as they come; re-raise its error after the ones before it."""
        task = asyncio.ensure_future(work)
        task.add_done_callback(lambda _: self._queue.put_nowait(None))
        try:
            while True:
                event = await self._queue.get()
                if event is None:
                    break
                yield event
            while not self._queue.empty():
                event = self._queue.get_nowait()
                if event is not None:
                    yield event
            task.result()
        finally:
            if not task.done():
                task.cancel()
                try:
                    await task
                except BaseException:  # the caller is already leaving with its own exception
                    pass


class Meter:
    """Throttled byte counts for one layer: at most one message per `interval` seconds."""

    def __init__(self, emit: Any, status: str, id: str, total: int, interval: float = 0.1) -> None:
        self._emit, self.status, self.id, self.total = emit, status, id, total
        self.interval = interval
        self._last = 0.0
        self._reported = -1
        self.current = 0

    def update(self, current: int) -> None:
        self.current = current
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._report()

    def finish(self) -> None:
        """Report the final count, unless it was the last thing reported."""
        if self.current != self._reported:
            self._report()

    def _report(self) -> None:
        self._reported = self.current
        self._emit(Progress(self.status, self.id, self.current, self.total, layer=True))


class PipeClosed(Exception):
    """The consuming side of a ChunkPipe went away."""


class ChunkPipe(io.RawIOBase):
    """A bounded byte pipe: `await put(data)` on the loop, blocking `read(n)` in a thread."""

    def __init__(self, limit: int = 16 << 20) -> None:
        super().__init__()
        self._loop = asyncio.get_running_loop()
        self._cond = threading.Condition()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._limit = limit
        self._eof = False
        self._error: BaseException | None = None
        self._gone = False
        self._space = asyncio.Event()
        self._space.set()
        self._want_space = False
        self.consumed = 0

    # producer side (event loop) -------------------------------------------------------------
    async def put(self, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            if self._gone:
                raise PipeClosed("the reader of this pipe has stopped")
            self._chunks.append(data)
            self._buffered += len(data)
            self._cond.notify()
            full = self._buffered > self._limit
            if full:
                self._want_space = True
                self._space.clear()
        if full:
            await self._space.wait()
            if self._gone:
                raise PipeClosed("the reader of this pipe has stopped")

    def finish(self, error: BaseException | None = None) -> None:
        """No more data: EOF for the reader, or `error` raised from its next read."""
        with self._cond:
            self._eof = True
            if error is not None and self._error is None:
                self._error = error
            self._cond.notify_all()

    # consumer side (worker thread) ------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        with self._cond:
            while not self._chunks and not self._eof and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            if not self._chunks:
                return b""
            size = n if n is not None and n > 0 else self._buffered
            head = self._chunks[0]
            if len(head) <= size:
                out = self._chunks.popleft()             # the common case: a whole chunk, no copy
            else:
                out = head[:size]
                self._chunks[0] = head[size:]
            self._buffered -= len(out)
            self.consumed += len(out)
            if self._want_space and self._buffered <= self._limit // 2:
                self._want_space = False
                self._loop.call_soon_threadsafe(self._space.set)
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def abandon(self) -> None:
        """The reader is done (or failed): drop what is buffered and release the producer."""
        with self._cond:
            self._gone = True
            self._chunks.clear()
            self._buffered = 0
            self._loop.call_soon_threadsafe(self._space.set)


def fail_shared(fut: asyncio.Future[Any], err: BaseException) -> None:
    """Pass a failure on to the tasks waiting on `fut` (a blob that several layers share): the
    exception for an error, marked retrieved since the failing task reports it itself, and a
    cancellation for anything else. A future already done is left as it is."""
    if fut.done():
        return
    if isinstance(err, Exception):
        fut.set_exception(err)
        fut.exception()
    else:
        fut.cancel()
