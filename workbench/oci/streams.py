"""Docker's wire framing, pure: multiplexed stdout/stderr frames and JSON-lines progress."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

STDIN, STDOUT, STDERR = 0, 1, 2
_HEADER = struct.Struct(">BxxxL")


def frame(stream: int, data: bytes) -> bytes:
    """Encode one multiplexed frame: 8-byte header [stream,0,0,0,len BE] + payload."""
    return _HEADER.pack(stream, len(data)) + data


@dataclass(frozen=True, slots=True)
class LogFrame:
    stream: int
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class FrameDecoder:
    """Incremental decoder: feed bytes, iterate complete frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[LogFrame]:
        self._buf += data
        while len(self._buf) >= 8:
            stream, size = _HEADER.unpack_from(self._buf)
            if len(self._buf) < 8 + size:
                break
            payload = bytes(self._buf[8:8 + size])
            del self._buf[:8 + size]
            yield LogFrame(stream, payload)

    @property
    def pending(self) -> int:
        return len(self._buf)


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One JSON-lines message of a build/pull/push/load stream."""

    status: str | None = None
    id: str | None = None
    stream: str | None = None
    progress: str | None = None
    current: int | None = None
    total: int | None = None
    aux: dict[str, Any] | None = None
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ProgressEvent:
        detail = obj.get("progressDetail") or {}
        err = obj.get("error")
        if err is None and obj.get("errorDetail"):
            err = obj["errorDetail"].get("message")
        return cls(status=obj.get("status"), id=obj.get("id"), stream=obj.get("stream"),
                   progress=obj.get("progress"), current=detail.get("current"),
                   total=detail.get("total"), aux=obj.get("aux"), error=err, raw=obj)


def progress_line(obj: dict[str, Any]) -> bytes:
    """Encode one JSON-lines message as Docker writes it (JSON + CRLF)."""
    return json.dumps(obj, separators=(",", ":")).encode() + b"\r\n"


def error_line(message: str, code: int | None = None) -> bytes:
    detail: dict[str, Any] = {"message": message}
    if code is not None:
        detail["code"] = code
    return progress_line({"errorDetail": detail, "error": message})


def progress_bar(current: int, total: int, width: int = 50) -> str:
    """Docker's textual bar: `[=====>      ]  1.2MB/3.4MB`."""
    from workbench.oci.units import human_size
    if total <= 0:
        return ""
    n = min(width, int(width * current / total))
    bar = "=" * n + (">" if n < width else "") + " " * max(0, width - n - 1)
    return f"[{bar}] {human_size(current)}/{human_size(total)}"


class JSONLinesDecoder:
    """Incremental decoder for JSON-lines (CRLF or LF separated) progress streams."""

    def __init__(self) -> None:
        self._buf = b""
        self._dec = json.JSONDecoder()

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        self._buf += data
        while True:
            text = self._buf.lstrip()
            if not text:
                self._buf = b""
                return
            nl = text.find(b"\n")
            if nl == -1:
                self._buf = text
                return
            line, self._buf = text[:nl], text[nl + 1:]
            line = line.strip()
            if line:
                yield json.loads(line)
