"""Feed a client's stdin (from a hijacked attach) to a container through its monitor's fifo.

The docker CLI attaches before it starts the container, so bytes may arrive before the fifo exists:
they are queued and written once the monitor has created it. EOF from the client closes our
writer; with StdinOnce that is the container's EOF.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path


class StdinFeeder:
    def __init__(self, fifo: Path, running: asyncio.Future[object] | None) -> None:
        self._fifo = fifo
        self._running = running
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._task = asyncio.ensure_future(self._pump())

    def feed(self, data: bytes) -> None:
        self._queue.put_nowait(data)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def _open(self) -> int | None:
        while True:
            if self._running is not None and self._running.done():
                return None
            with contextlib.suppress(FileNotFoundError, OSError):
                return os.open(self._fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            await asyncio.sleep(0.01)

    async def _pump(self) -> None:
        fd = await self._open()
        loop = asyncio.get_running_loop()
        try:
            while (data := await self._queue.get()) is not None:
                view = memoryview(data)
                while view and fd is not None:
                    try:
                        n = os.write(fd, view)
                        view = view[n:]
                    except BlockingIOError:
                        ready = loop.create_future()
                        loop.add_writer(fd, ready.set_result, None)
                        try:
                            await ready
                        finally:
                            loop.remove_writer(fd)
                    except (BrokenPipeError, OSError):
                        return
        finally:
            if fd is not None:
                os.close(fd)

    async def wait(self) -> None:
        self.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 5)
