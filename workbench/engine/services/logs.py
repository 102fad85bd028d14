"""Read Docker json-file logs: tail, since/until, timestamps, follow. Knows nothing of HTTP.

Each line of `<cid>-json.log` is `{"log": "...", "stream": "stdout"|"stderr", "time": RFC3339Nano}`,
appended by the container's monitor as output is produced.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from workbench.oci.streams import STDERR, STDOUT


@dataclass(frozen=True, slots=True)
class LogOptions:
    stdout: bool = True
    stderr: bool = True
    since: float = 0.0
    until: float = 0.0
    tail: int | None = None          # None = all
    timestamps: bool = False
    follow: bool = False


def parse_ts(text: str) -> float:
    t = text.rstrip("Z")
    frac = 0.0
    if "." in t:
        t, f = t.split(".", 1)
        frac = float("0." + f) if f else 0.0
    return datetime.fromisoformat(t + "+00:00").timestamp() + frac


def parse_since(value: str | None) -> float:
    """Docker accepts unix seconds with optional fraction (`1700000000.123`) or RFC3339."""
    if not value:
        return 0.0
    try:
        return float(value)
    except ValueError:
        return parse_ts(value)


def _render(entry: dict, opts: LogOptions) -> tuple[int, bytes] | None:
    stream = STDERR if entry.get("stream") == "stderr" else STDOUT
    if (stream == STDOUT and not opts.stdout) or (stream == STDERR and not opts.stderr):
        return None
    ts = entry.get("time", "")
    if opts.since or opts.until:
        t = parse_ts(ts) if ts else 0.0
        if opts.since and t < opts.since:
            return None
        if opts.until and t > opts.until:
            return None
    data = entry.get("log", "").encode("utf-8", "surrogateescape")
    if opts.timestamps:
        data = ts.encode() + b" " + data
    return stream, data


def _parse(line: bytes) -> dict | None:
    try:
        return json.loads(line)
    except ValueError:
        return None  # a line being written right now, or damaged: skip it


def read(path: Path, opts: LogOptions) -> tuple[list[tuple[int, bytes]], int]:
    """Return the selected entries and the file offset just after the last complete line."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return [], 0
    with f:
        data = f.read()
    end = data.rfind(b"\n") + 1
    lines = data[:end].splitlines()
    out: deque[tuple[int, bytes]] | list[tuple[int, bytes]]
    out = deque(maxlen=opts.tail) if opts.tail is not None and opts.tail >= 0 else []
    for line in lines:
        entry = _parse(line)
        if entry is None:
            continue
        r = _render(entry, opts)
        if r is not None:
            out.append(r)
    return list(out), end


def iter_new(path: Path, offset: int, opts: LogOptions) -> tuple[list[tuple[int, bytes]], int]:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    out = []
    for line in data[:end].splitlines():
        entry = _parse(line)
        if entry is not None and (r := _render(entry, opts)) is not None:
            out.append(r)
    return out, offset + end


async def stream(path: Path, opts: LogOptions, running: Callable[[], bool],
                 interval: float = 0.05, *, past: bool = True) -> AsyncIterator[tuple[int, bytes]]:
    """Yield selected entries; with `follow`, keep yielding new ones until `running()` turns false.

    `past=False` starts at the current end of the file (attach without logs)."""
    loop = asyncio.get_running_loop()
    if past:
        entries, offset = await loop.run_in_executor(None, read, path, opts)
        for e in entries:
            yield e
    else:
        offset = path.stat().st_size if path.exists() else 0
    if not opts.follow:
        return
    follow_opts = LogOptions(opts.stdout, opts.stderr, opts.since, opts.until, None, opts.timestamps)
    while True:
        alive = running()
        entries, offset = iter_new(path, offset, follow_opts)
        for e in entries:
            yield e
        if not alive:
            return
        await asyncio.sleep(interval)


def lines(path: Path) -> Iterator[dict]:
    with open(path, "rb") as f:
        for line in f:
            entry = _parse(line)
            if entry is not None:
                yield entry
