"""Live build and transfer progress as ipywidgets (the same methods as the text views).

Updates come from the cell's own thread and only set traits, so they travel as plain comm messages;
redraws are throttled so a chatty build or a pull of many layers does not flood the frontend.
"""

from __future__ import annotations

import html
import time
from typing import Any

from workbench.cli.tables import human_size
from workbench.kernel_ext.progress import BuildStep, LayerState

__all__ = ["BuildProgress", "TransferProgress"]

_esc = html.escape
_LOG_LINES = 400
_MARK = {"cached": "✔ cached", "ran": "✔ ran", "base": "✔ base", "running": "⏳ running", "failed": "✘ failed"}
_COLOUR = {"cached": "#3a7", "ran": "#27c", "base": "#666", "running": "#a70", "failed": "#c33"}


def _box(children: list[Any]) -> Any:
    import ipywidgets as w

    return w.VBox(children, layout=w.Layout(width="100%"))


class BuildProgress:
    """Steps with their time and cached/ran mark, the live log, and the failing line on error."""

    def __init__(self, title: str = "build", *, show: bool = True, interval: float = 0.2) -> None:
        import ipywidgets as w

        self.title = title
        self.interval = interval
        self.header = w.HTML(f"<b>⏳ {_esc(title)}</b>")
        self.steps_html = w.HTML("")
        self.log_html = w.HTML("")
        self.error_html = w.HTML("")
        self.widget = _box([self.header, self.steps_html, self.log_html, self.error_html])
        self.steps: list[BuildStep] = []
        self.failed_step: BuildStep | None = None
        self.lines: list[str] = []
        self._drawn = 0.0
        if show:
            from IPython.display import display

            display(self.widget)

    def _state(self, step: BuildStep) -> str:
        if step is self.failed_step:
            return "failed"
        return "running" if step.finished is None else step.mark

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < self.interval:
            return
        self._drawn = now
        rows = []
        for s in self.steps:
            state = self._state(s)
            rows.append(f'<tr><td>{s.number}/{s.total}</td><td><code>{_esc(s.instruction)}</code></td>'
                        f'<td style="color:{_COLOUR[state]}">{_MARK[state]}</td>'
                        f'<td style="text-align:right">{s.seconds:.2f}s</td></tr>')
        self.steps_html.value = f'<table class="wb-build-steps">{"".join(rows)}</table>'
        tail = self.lines[-_LOG_LINES:]
        self.log_html.value = ('<pre style="max-height:240px;overflow:auto;font-size:11px;margin:0">'
                               f'{_esc(chr(10).join(tail))}</pre>') if tail else ""

    def step_started(self, step: BuildStep) -> None:
        self.steps.append(step)
        self._draw(force=True)

    def step_output(self, step: BuildStep | None, line: str) -> None:
        self.lines.append(line)
        self._draw()

    def step_finished(self, step: BuildStep) -> None:
        self._draw(force=True)

    def heartbeat(self, step: BuildStep | None, elapsed: float) -> None:
        self.header.value = f"<b>⏳ {_esc(self.title)}</b> ({elapsed:.0f}s)"
        self._draw(force=True)

    def finished(self, image_id: str, tags: list[str], seconds: float, steps: list[BuildStep]) -> None:
        cached = sum(1 for s in steps if s.cached)
        name = ", ".join(tags) or image_id
        self.header.value = (f"<b>✔ built {_esc(name)}</b> <code>{_esc(image_id.removeprefix('sha256:')[:12])}"
                             f"</code> in {seconds:.2f}s: {len(steps)} steps, {cached} cached")
        self._draw(force=True)

    def failed(self, step: BuildStep | None, message: str, context_html: str) -> None:
        self.failed_step = step
        self.header.value = f'<b style="color:#c33">✘ {_esc(self.title)} failed</b>: {_esc(message)}'
        self.error_html.value = context_html
        self._draw(force=True)


class TransferProgress:
    """One progress bar per layer of a pull or push."""

    def __init__(self, *, show: bool = True, interval: float = 0.15) -> None:
        import ipywidgets as w

        self.interval = interval
        self.header = w.HTML("")
        self.messages = w.HTML("")
        self.rows = w.VBox([])
        self.widget = _box([self.header, self.rows, self.messages])
        self.bars: dict[str, tuple[Any, Any, float]] = {}
        self._show = show
        self._lines: list[str] = []

    def begin(self, verb: str, reference: str) -> None:
        self.verb, self.reference = verb, reference
        self.header.value = f"<b>⏳ {_esc(verb)} {_esc(reference)}</b>"
        if self._show:
            from IPython.display import display

            display(self.widget)

    def message(self, text: str) -> None:
        if text:
            self._lines.append(text)
            self.messages.value = "<br>".join(_esc(x) for x in self._lines[-6:])

    def layer(self, layer: LayerState, changed: bool) -> None:
        import ipywidgets as w

        entry = self.bars.get(layer.id)
        now = time.monotonic()
        if entry is None:
            bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, description=layer.id[:12],
                                  style={"description_width": "initial"}, layout=w.Layout(width="60%"))
            label = w.Label("")
            self.rows.children = (*self.rows.children, w.HBox([bar, label]))
            entry = (bar, label, 0.0)
        bar, label, drawn = entry
        if changed or now - drawn >= self.interval or layer.fraction >= 1.0:
            bar.value = layer.fraction
            bar.bar_style = "success" if layer.fraction >= 1.0 else ""
            size = f" {human_size(layer.current)}/{human_size(layer.total)}" if layer.total else ""
            label.value = f"{layer.status}{size}"
            drawn = now
        self.bars[layer.id] = (bar, label, drawn)

    def heartbeat(self, elapsed: float, layers: list[LayerState]) -> None:
        self.header.value = f"<b>⏳ {_esc(self.verb)} {_esc(self.reference)}</b> ({elapsed:.0f}s)"

    def finished(self, digest: str, seconds: float, layers: list[LayerState]) -> None:
        for layer in layers:
            self.layer(layer, True)
        done = "pulled" if self.verb == "pull" else "pushed"
        self.header.value = (f"<b>✔ {done} {_esc(self.reference)}</b> in {seconds:.2f}s"
                             + (f" <code>{_esc(digest)}</code>" if digest else ""))
