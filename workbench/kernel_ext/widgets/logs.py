"""A live tail of a container's logs: follows on a thread, regex filter, pause, DataFrame export.

The reader thread only appends to a bounded buffer and sets the HTML widget's value (a model update),
following the ipywidgets rule for background threads (no `with output:` from a thread).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from typing import Any

from workbench.errors import WorkbenchError
from workbench.kernel_ext.widgets._base import Panel, esc
from workbench.oci.streams import STDERR

__all__ = ["LogTail"]


class LogTail(Panel):
    """The last `lines` lines of a container's output, updated live while it runs."""

    def __init__(self, container: str, client: Any = None, *, lines: int = 500, follow: bool = True,
                 pattern: str = "", interval: float = 0.25) -> None:
        import ipywidgets as w

        super().__init__(client)
        self.container = container
        self.follow = follow
        self.interval = interval
        self.lines: deque[tuple[float, int, str]] = deque(maxlen=lines)
        self.output = w.HTML("")
        self.filter = w.Text(value=pattern, placeholder="regex filter", description="filter",
                             layout=w.Layout(width="40%"))
        self.pause = w.ToggleButton(value=False, description="pause", icon="pause")
        self.stop_button = w.Button(description="stop", icon="stop")
        self.filter.observe(lambda _c: self.render(), names="value")
        self.pause.observe(lambda _c: self.render(), names="value")
        self.stop_button.on_click(lambda _b: self.stop())
        self.widget = w.VBox([w.HBox([self.filter, self.pause, self.stop_button]), self.output, self.status])
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._partial = {1: "", 2: ""}
        self._drawn = 0.0
        self.done = threading.Event()

    # -- reading ------------------------------------------------------------------------------------
    def shown(self) -> None:
        self.start()

    def start(self) -> None:
        """Start following (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, daemon=True, name="workbench-logs")
            self._thread.start()

    def _read(self) -> None:
        try:
            self._stream = self.client.containers.stream_logs(self.container, follow=self.follow,
                                                              tail=self.lines.maxlen)
            self.say(f"following {self.container}" if self.follow else f"logs of {self.container}")
            with self._stream:
                for frame in self._stream:
                    self.feed(frame.stream, frame.data.decode("utf-8", "replace"))
            self.say(f"{self.container}: end of log")
        except (WorkbenchError, OSError) as err:
            if not self.done.is_set():
                self.say(f"log stream ended: {err}", error=True)
        finally:
            self.render(force=True)
            self.done.set()

    def feed(self, stream: int, text: str) -> None:
        """Add output (possibly partial lines) from `stream` (1 stdout, 2 stderr)."""
        key = STDERR if stream == STDERR else 1
        text = self._partial[key] + text
        *complete, self._partial[key] = text.split("\n")
        now = time.time()
        for line in complete:
            self.lines.append((now, key, line))
        self.render()

    def stop(self) -> None:
        self.done.set()
        if self._stream is not None:
            self._stream.close()
        self.say(f"stopped following {self.container}")

    # -- showing ------------------------------------------------------------------------------------
    def visible(self) -> list[tuple[float, int, str]]:
        try:
            rx = re.compile(self.filter.value) if self.filter.value else None
        except re.error:
            return list(self.lines)
        return [x for x in self.lines if rx is None or rx.search(x[2])]

    def render(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.pause.value or (not force and now - self._drawn < self.interval):
            return
        self._drawn = now
        body = "\n".join(f'<span style="color:#c33">{esc(t)}</span>' if s == STDERR else esc(t)
                         for _, s, t in self.visible())
        self.output.value = (f'<pre class="wb-logs" style="max-height:300px;overflow:auto;font-size:11px;'
                             f'margin:0">{body}</pre>')

    def to_frame(self) -> Any:
        """The buffered lines as a DataFrame: time, stream, line."""
        import pandas as pd

        rows = list(self.lines)
        return pd.DataFrame({"time": pd.to_datetime([r[0] for r in rows], unit="s", utc=True),
                             "stream": ["stderr" if r[1] == STDERR else "stdout" for r in rows],
                             "line": [r[2] for r in rows]})

    def text(self) -> str:
        if self._thread is None and not self.lines:  # headless: a snapshot of the log, not a follow
            try:
                for frame in self.client.containers.logs(self.container, tail=self.lines.maxlen):
                    self.feed(frame.stream, frame.data.decode("utf-8", "replace"))
            except WorkbenchError as err:
                return f"logs of {self.container}: {err}"
        return "\n".join(t for _, _, t in self.visible())

    def close(self) -> None:
        self.stop()
        super().close()
