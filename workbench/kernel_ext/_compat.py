"""Temporary workaround, to remove once `workbench.client._streams` yields reply bytes as they arrive.

`_ResponseStream._chunks` reads `response.iter_raw(64 KiB)`, and httpx's `iter_raw(n)` holds bytes back
until it has `n` of them, so a build's steps, a pull's progress and `logs -f` reach a notebook only when
64 KiB have piled up or the reply ends. `live_streams()` swaps in the same generator without a chunk
size (httpx then yields each read as it comes). Idempotent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["live_streams"]


def _chunks(self: Any) -> Iterator[bytes]:
    try:
        yield from self.response.iter_raw()
    finally:
        self.close()


def live_streams() -> None:
    from workbench.client import _streams

    base = _streams._ResponseStream
    if getattr(base._chunks, "__name__", "") != "_chunks" or base._chunks is _chunks:
        return
    base._chunks = _chunks  # type: ignore[method-assign]
