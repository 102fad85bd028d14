"""Progress output for pull, push, load and build streams, as docker's CLI draws it.

On a terminal each layer (`id`) owns one line that is redrawn in place with its bar
(`a1b2c3d4e5f6: Downloading [=====>    ] 1.2MB/3.4MB`); elsewhere (a file, a pipe, a notebook run
headless) every change of a layer's status is one plain line and bars are left out, so the output
stays readable. Build output (`stream`) is written as it comes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from workbench.oci.streams import ProgressEvent, progress_bar

__all__ = ["ProgressPrinter", "event_line"]

_ESC = "\x1b"


def event_line(event: ProgressEvent, *, bars: bool) -> str:
    """One event as a line of text (without newline): `id: status [bar]`."""
    parts = []
    if event.id:
        parts.append(f"{event.id}: ")
    parts.append(event.status or "")
    if bars:
        bar = event.progress or (progress_bar(event.current, event.total)
                                 if event.current is not None and event.total else "")
        if bar:
            parts.append(" " + bar)
    return "".join(parts)


class ProgressPrinter:
    """Draw a stream of `ProgressEvent`s on `out`; `tty` selects in-place bars or plain lines."""

    def __init__(self, out: TextIO, *, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self._lines: dict[str, int] = {}   # layer id -> line index (terminal mode)
        self._last: dict[str, str] = {}    # layer id -> last status printed (plain mode)
        self._count = 0                    # lines written since the first layer line (terminal mode)

    def feed(self, events: Iterable[ProgressEvent]) -> None:
        for event in events:
            self.show(event)

    def show(self, event: ProgressEvent) -> None:
        if event.stream is not None:
            self.out.write(event.stream)
            self.out.flush()
            return
        if not event.status and not event.progress:
            return  # aux-only messages (digests of a push) are data, not output
        if event.id and self.tty:
            self._redraw(event)
        elif event.id:
            text = event.status or ""
            if self._last.get(event.id) != text:
                self._last[event.id] = text
                self._write(event_line(event, bars=False))
        else:
            self._write(event_line(event, bars=False))

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")
        self._count += 1
        self.out.flush()

    def _redraw(self, event: ProgressEvent) -> None:
        assert event.id is not None
        text = event_line(event, bars=True)
        if event.id not in self._lines:
            self._lines[event.id] = self._count
            self._write(text)
            return
        up = self._count - self._lines[event.id]
        self.out.write(f"{_ESC}[{up}A\r{_ESC}[2K{text}\r{_ESC}[{up}B")
        self.out.flush()
