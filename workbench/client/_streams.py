"""Streaming replies as context-managed, typed iterators.

Every stream opens its request when it is made (so an error sent before the stream, like a 404 on
pull, is raised at the call) and closes its connection when iteration ends, on `close()`, or when
its `with` block exits, whichever comes first.

    with client.containers.stream_logs(cid) as logs:
        for frame in logs:            # LogFrame(stream, data)
            ...
    with client.images.pull("busybox") as progress:
        for event in progress:        # ProgressEvent
            ...
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from typing import IO, TYPE_CHECKING, Any, Self

from workbench.client._records import PathStat, WaitResult
from workbench.errors import APIError, InvalidArgument, WorkbenchError
from workbench.oci.streams import STDOUT, FrameDecoder, JSONLinesDecoder, LogFrame, ProgressEvent

if TYPE_CHECKING:
    import httpx

__all__ = ["ArchiveStream", "AttachStream", "ByteStream", "LogStream", "ProgressStream", "Waiter"]

_CHUNK = 64 * 1024


class _ResponseStream:
    """An open reply, closed exactly once through `close()`."""

    def __init__(self, opener: ContextManager[httpx.Response]) -> None:
        self._stack = contextlib.ExitStack()
        self.response: httpx.Response = self._stack.enter_context(opener)
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _chunks(self) -> Iterator[bytes]:
        # no chunk size: httpx's iter_raw(n) holds bytes back until n have arrived, which would
        # delay build steps, pull progress and `logs -f` until 64 KiB pile up
        try:
            yield from self.response.iter_raw()
        finally:
            self.close()


class ByteStream(_ResponseStream):
    """Raw bytes of a reply (image save, container export): iterate chunks or `read()` them all."""

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks()

    def read(self) -> bytes:
        return b"".join(self._chunks())

    def copy_to(self, fileobj: IO[bytes]) -> int:
        """Write every remaining chunk to `fileobj`; return the number of bytes written."""
        total = 0
        for chunk in self._chunks():
            fileobj.write(chunk)
            total += len(chunk)
        return total


class ArchiveStream(ByteStream):
    """A tar of a path inside a container, with the path's `stat` from the reply header."""

    def __init__(self, opener: ContextManager[httpx.Response]) -> None:
        super().__init__(opener)
        from workbench.client._wire import decode_path_stat

        self.stat = PathStat.from_wire(decode_path_stat(
            self.response.headers.get("X-Docker-Container-Path-Stat")))


class LogStream(_ResponseStream):
    """Log or attach output as `LogFrame`s: demultiplexed, or raw stdout chunks when `raw` (TTY)."""

    def __init__(self, opener: ContextManager[httpx.Response], *, raw: bool) -> None:
        super().__init__(opener)
        self.raw = raw

    def __iter__(self) -> Iterator[LogFrame]:
        if self.raw:
            return (LogFrame(STDOUT, chunk) for chunk in self._chunks() if chunk)
        return self._frames()

    def _frames(self) -> Iterator[LogFrame]:
        decoder = FrameDecoder()
        for chunk in self._chunks():
            yield from decoder.feed(chunk)


class AttachStream(LogStream):
    """A hijacked attach or exec connection: output frames in, raw stdin bytes out.

    When the daemon upgraded the connection (101), `send()` writes stdin and `close_stdin()`
    half-closes it (the daemon then closes the process's stdin and keeps sending output).
    A daemon that answered 200 instead gives output only.
    """

    def __init__(self, opener: ContextManager[httpx.Response], *, raw: bool) -> None:
        super().__init__(opener, raw=raw)
        self._net = (self.response.extensions.get("network_stream")
                     if self.response.status_code == 101 else None)

    def _chunks(self) -> Iterator[bytes]:
        if self._net is None:
            yield from super()._chunks()
            return
        try:
            while True:
                try:
                    data = self._net.read(_CHUNK)
                except OSError:
                    return
                if not data:
                    return
                yield data
        finally:
            self.close()

    @property
    def writable(self) -> bool:
        return self._net is not None and not self.closed

    def send(self, data: bytes) -> None:
        """Write raw bytes to the process's stdin."""
        if self._net is None:
            raise InvalidArgument("stdin is not attached: the engine did not upgrade the connection")
        self._net.write(data)

    def close_stdin(self) -> None:
        """Half-close: signal end of stdin while output keeps flowing."""
        if self._net is None or self.closed:
            return
        sock = self._net.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)


class ProgressStream(_ResponseStream):
    """JSON-lines progress (pull, push, build, load, import) as `ProgressEvent`s.

    An in-stream error (`{"error": ...}`) is raised when it arrives, as `on_error(event, seen)` builds
    it (an `APIError` by default). `events` keeps every event seen so far.
    """

    def __init__(self, opener: ContextManager[httpx.Response],
                 on_error: Callable[[ProgressEvent, list[ProgressEvent]], WorkbenchError] | None = None
                 ) -> None:
        super().__init__(opener)
        self.events: list[ProgressEvent] = []
        self._on_error = on_error or (lambda event, _seen: APIError(event.error or "unknown error"))
        self._iter: Iterator[ProgressEvent] | None = None

    def __iter__(self) -> Iterator[ProgressEvent]:
        if self._iter is None:
            self._iter = self._events()
        return self._iter

    def _events(self) -> Iterator[ProgressEvent]:
        decoder = JSONLinesDecoder()
        for chunk in self._chunks():
            for obj in decoder.feed(chunk):
                event = ProgressEvent.from_json(obj)
                self.events.append(event)
                if event.error is not None:
                    self.close()
                    raise self._on_error(event, self.events)
                self._seen(event)
                yield event

    def _seen(self, event: ProgressEvent) -> None:
        """Hook for subclasses that collect results (image IDs, loaded names)."""

    def drain(self) -> list[ProgressEvent]:
        """Consume what is left of the stream; return every event."""
        for _ in self:
            pass
        return self.events

    @property
    def aux(self) -> list[dict[str, Any]]:
        return [e.aux for e in self.events if e.aux]


class Waiter(_ResponseStream):
    """A wait whose headers have arrived; `result()` blocks until the daemon writes the body."""

    def result(self) -> WaitResult:
        try:
            body = b"".join(self._chunks())
        finally:
            self.close()
        text = body.decode("utf-8", "replace").strip()
        if not text:
            raise APIError("the engine closed the wait without a status")
        try:
            doc = json.loads(text.splitlines()[-1])
        except ValueError as err:
            raise APIError(f"bad wait reply from the engine: {text[:200]}") from err
        return WaitResult.from_wire(doc)
