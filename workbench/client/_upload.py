"""Request bodies for uploads (import, load, build contexts, archives): streamed, never re-read."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import IO

__all__ = ["Source", "body"]

#: What an upload accepts: the bytes, a binary file object, a path to a file, or an iterable of chunks.
Source = bytes | bytearray | memoryview | IO[bytes] | str | os.PathLike[str] | Iterable[bytes]

_CHUNK = 256 * 1024


def _file_chunks(fileobj: IO[bytes], close: bool) -> Iterator[bytes]:
    try:
        while chunk := fileobj.read(_CHUNK):
            yield chunk
    finally:
        if close:
            fileobj.close()


def body(source: Source) -> bytes | Iterator[bytes]:
    """Turn an upload source into httpx content: bytes as they are, anything else chunked.

    A path is opened here and closed when its last chunk has been sent.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        return _file_chunks(open(source, "rb"), close=True)
    if hasattr(source, "read"):
        return _file_chunks(source, close=False)  # type: ignore[arg-type]
    return iter(source)
