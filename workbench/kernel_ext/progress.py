"""Build and transfer progress: event trackers, plain-text views, and a heartbeat pump.

A tracker turns the engine's JSON-lines events into calls on a view: `BuildTracker` reads the classic
builder's `Step N/M : ...`, ` ---> Using cache`, ` ---> Running in ...` and ` ---> <id>` lines into
steps with a time and a cached/ran mark; `TransferTracker` keeps one record per layer of a pull or
push. Text views print plain lines (never cursor motion) and are used headless; the widget views in
`widgets/progress.py` implement the same methods for a live frontend.

`pump(iterable)` reads a stream on a helper thread and yields `IDLE` when nothing came for
`HEARTBEAT_SECONDS`, so the cell's own thread can print a heartbeat during long silent steps (nbval
and similar runners give up on a cell that is silent for 5 s).
"""

from __future__ import annotations

import queue
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from workbench.cli.tables import human_size
from workbench.kernel_ext.frontend import HEARTBEAT_SECONDS

__all__ = ["IDLE", "BuildStep", "BuildTracker", "LayerState", "TextBuildView", "TextTransferView",
           "TransferTracker", "pump"]

IDLE = object()
_END = object()


class _Raised:
    def __init__(self, err: BaseException) -> None:
        self.err = err


def pump(source: Iterable[Any], every: float = HEARTBEAT_SECONDS) -> Iterator[Any]:
    """Items of `source`, read on a helper thread; `IDLE` after every `every` seconds of silence.
    An exception in `source` is raised here, in the caller's thread."""
    q: queue.Queue[Any] = queue.Queue()

    def produce() -> None:
        try:
            for item in source:
                q.put(item)
        except BaseException as err:  # handed to the consumer
            q.put(_Raised(err))
        else:
            q.put(_END)

    threading.Thread(target=produce, daemon=True, name="workbench-pump").start()
    while True:
        try:
            item = q.get(timeout=every)
        except queue.Empty:
            yield IDLE
            continue
        if item is _END:
            return
        if isinstance(item, _Raised):
            raise item.err
        yield item


# -- build ------------------------------------------------------------------------------------------
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12,64})$")


@dataclass
class BuildStep:
    number: int
    total: int
    instruction: str
    started: float
    finished: float | None = None
    cached: bool = False
    ran: bool = False
    image: str = ""
    output: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def mark(self) -> str:
        """`cached` (the cache had it), `ran` (executed now), or `base` for a FROM step."""
        if self.cached:
            return "cached"
        return "base" if self.instruction.upper().startswith("FROM") else "ran"


class BuildTracker:
    """Classic-builder stream → `step_started / step_output / step_finished` calls on `view`."""

    def __init__(self, view: Any) -> None:
        self.view = view
        self.steps: list[BuildStep] = []
        self.tags: list[str] = []
        self.image_id = ""
        self.started = time.monotonic()
        self._buf = ""

    @property
    def current(self) -> BuildStep | None:
        return self.steps[-1] if self.steps and self.steps[-1].finished is None else None

    def feed(self, event: Any) -> None:
        if event.aux and isinstance(event.aux.get("ID"), str):
            self.image_id = event.aux["ID"]
        if event.stream:
            self._buf += event.stream
            while "\n" in self._buf:
                line, self._buf = self._buf.split("\n", 1)
                self._line(line.rstrip("\r"))
        elif event.status:  # a base image being pulled
            text = f"{event.id}: {event.status}" if event.id else event.status
            self.view.step_output(self.current, text)

    def flush(self) -> None:
        if self._buf.strip():
            self._line(self._buf)
        self._buf = ""

    def _finish(self) -> None:
        step = self.current
        if step is not None:
            step.finished = time.monotonic()
            self.view.step_finished(step)

    def _line(self, line: str) -> None:
        m = _STEP.match(line)
        if m:
            self._finish()
            step = BuildStep(int(m.group(1)), int(m.group(2)), m.group(3), time.monotonic())
            self.steps.append(step)
            self.view.step_started(step)
            return
        step = self.current
        if line.strip() == "---> Using cache" and step is not None:
            step.cached = True
            return
        if line.startswith(" ---> Running in ") and step is not None:
            step.ran = True
            return
        if line.startswith("Removing intermediate container"):
            return
        m = _IMAGE.match(line)
        if m and step is not None:
            step.image = m.group(1)
            self._finish()
            return
        if line.startswith("Successfully built "):
            self._finish()
            return
        if line.startswith("Successfully tagged "):
            self.tags.append(line.removeprefix("Successfully tagged ").strip())
            return
        if step is not None:
            step.output.append(line)
        self.view.step_output(step, line)

    def heartbeat(self) -> None:
        self.view.heartbeat(self.current, time.monotonic() - self.started)


class TextBuildView:
    """Headless build output: one line per step with its time and mark; step output indented."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._pending: BuildStep | None = None  # header not printed yet

    def _w(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    @staticmethod
    def _head(step: BuildStep) -> str:
        return f"[{step.number}/{step.total}] {step.instruction}"

    def _header(self) -> None:
        if self._pending is not None:
            self._w(self._head(self._pending))
            self._pending = None

    def step_started(self, step: BuildStep) -> None:
        self._header()
        self._pending = step

    def step_output(self, step: BuildStep | None, line: str) -> None:
        self._header()
        self._w(f"    {line}" if step is not None else line)

    def step_finished(self, step: BuildStep) -> None:
        tail = f"{step.mark} {step.seconds:.2f}s"
        if self._pending is step:
            self._pending = None
            self._w(f"{self._head(step)}  … {tail}")
        else:
            self._w(f"    → {tail}")

    def heartbeat(self, step: BuildStep | None, elapsed: float) -> None:
        self._header()
        what = f"step {step.number}/{step.total} " if step is not None else ""
        self._w(f"    … {what}still running ({elapsed:.0f}s)")

    def finished(self, image_id: str, tags: list[str], seconds: float, steps: list[BuildStep]) -> None:
        cached = sum(1 for s in steps if s.cached)
        name = ", ".join(tags) or image_id
        self._w(f"built {name} ({image_id.removeprefix('sha256:')[:12]}) in {seconds:.2f}s: "
                f"{len(steps)} steps, {cached} cached")

    def failed(self, step: BuildStep | None, message: str, context: str) -> None:
        self._header()
        self._w(f"build failed{f' at step {step.number}/{step.total}' if step else ''}: {message}")
        if context:
            self._w(context)


# -- pull / push ------------------------------------------------------------------------------------
@dataclass
class LayerState:
    id: str
    status: str = ""
    current: int = 0
    total: int = 0
    printed_at: float = 0.0

    @property
    def fraction(self) -> float:
        if self.status.endswith(("complete", "Pushed", "Already exists", "Layer already exists", "Mounted from")):
            return 1.0
        return min(1.0, self.current / self.total) if self.total else 0.0


class TransferTracker:
    """Pull/push events → per-layer state, and calls on `view`."""

    def __init__(self, view: Any, verb: str, reference: str) -> None:
        self.view = view
        self.verb = verb
        self.reference = reference
        self.layers: dict[str, LayerState] = {}
        self.digest = ""
        self.started = time.monotonic()
        view.begin(verb, reference)

    def feed(self, event: Any) -> None:
        if event.aux and event.aux.get("Digest"):
            self.digest = event.aux["Digest"]
        status = event.status or ""
        if status.startswith("Digest: "):
            self.digest = status.removeprefix("Digest: ").strip()
        if event.id and status and not status.startswith(("Pulling from", "The push refers")):
            layer = self.layers.get(event.id)
            changed = layer is None or layer.status != status
            if layer is None:
                layer = self.layers[event.id] = LayerState(event.id)
            layer.status = status
            if event.current is not None:
                layer.current = event.current
            if event.total:
                layer.total = event.total
            self.view.layer(layer, changed)
        elif status or event.stream:
            self.view.message((status or event.stream or "").rstrip("\n"))

    def heartbeat(self) -> None:
        self.view.heartbeat(time.monotonic() - self.started, list(self.layers.values()))

    def finish(self) -> None:
        self.view.finished(self.digest, time.monotonic() - self.started, list(self.layers.values()))


class TextTransferView:
    """Headless pull/push output: a line per layer status change, a progress line per layer at most
    every 2 s while bytes move, and a heartbeat when nothing happens."""

    def __init__(self, out: TextIO | None = None, every: float = 2.0) -> None:
        self.out = out or sys.stdout
        self.every = every

    def _w(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def begin(self, verb: str, reference: str) -> None:
        self.verb = verb
        self.reference = reference

    def message(self, text: str) -> None:
        if text:
            self._w(text)

    def layer(self, layer: LayerState, changed: bool) -> None:
        now = time.monotonic()
        if changed:
            layer.printed_at = now
            self._w(f"{layer.id}: {layer.status}" + (f" ({human_size(layer.total)})" if layer.total else ""))
        elif layer.total and now - layer.printed_at >= self.every:
            layer.printed_at = now
            self._w(f"{layer.id}: {layer.status} {layer.fraction * 100:.0f}% of {human_size(layer.total)}")

    def heartbeat(self, elapsed: float, layers: list[LayerState]) -> None:
        busy = [x for x in layers if x.fraction < 1.0]
        self._w(f"… {self.verb} {self.reference}: {len(layers) - len(busy)}/{len(layers)} layers done "
                f"({elapsed:.0f}s)")

    def finished(self, digest: str, seconds: float, layers: list[LayerState]) -> None:
        done = "pulled" if self.verb == "pull" else "pushed"
        self._w(f"{done} {self.reference}{f' ({digest})' if digest else ''} in {seconds:.2f}s, "
                f"{len(layers)} layers")
