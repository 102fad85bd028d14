"""Long-running verbs shown live in the cell: run/exec/start/attach output, logs, pull, push, build.

Everything is consumed on the cell's own thread through `progress.pump`, which reads the engine's
stream on a helper thread and reports silence, so headless runs get a heartbeat line every few
seconds. Container output goes to the cell's stdout/stderr as it arrives (decoded incrementally, so
a UTF-8 character split across frames is not mangled).
"""

from __future__ import annotations

import codecs
import sys
import time
from typing import Any

from workbench.errors import BuildError, ContainerError, NotFound, WorkbenchError
from workbench.kernel_ext import frontend
from workbench.kernel_ext.progress import (
    IDLE,
    BuildTracker,
    TextBuildView,
    TextTransferView,
    TransferTracker,
    pump,
)
from workbench.oci.streams import STDERR, LogFrame, ProgressEvent

__all__ = ["build", "follow_frames", "session_output", "transfer"]


class _Writer:
    """LogFrames → the cell's stdout/stderr, decoding UTF-8 incrementally per stream."""

    def __init__(self) -> None:
        self._dec = {1: codecs.getincrementaldecoder("utf-8")("replace"),
                     2: codecs.getincrementaldecoder("utf-8")("replace")}
        self.stderr_tail: list[str] = []

    def write(self, frame: LogFrame) -> None:
        stream = STDERR if frame.stream == STDERR else 1
        text = self._dec[stream].decode(frame.data)
        if not text:
            return
        target = sys.stderr if stream == STDERR else sys.stdout
        target.write(text)
        target.flush()
        if stream == STDERR:
            self.stderr_tail = (self.stderr_tail + [text])[-20:]


def _transfer_view(quiet: bool = False) -> Any:
    if quiet:
        return _QuietView()
    if frontend.headless():
        return TextTransferView()
    from workbench.kernel_ext.widgets.progress import TransferProgress

    return TransferProgress()


class _QuietView:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def session_output(session: Any, *, what: str) -> int:
    """Stream an attached session (run, exec, start -a, attach); return its exit code.

    Raises:
        ContainerError: the process exited non-zero.
    """
    writer = _Writer()
    tracker: TransferTracker | None = None
    headless = frontend.headless()
    started = time.monotonic()
    try:
        for item in pump(session):
            if item is IDLE:
                if tracker is not None:
                    tracker.heartbeat()
                elif headless:
                    print(f"… {what} still running ({time.monotonic() - started:.0f}s)", file=sys.stderr,
                          flush=True)
            elif isinstance(item, LogFrame):
                writer.write(item)
            elif isinstance(item, ProgressEvent):
                if tracker is None:
                    tracker = TransferTracker(_transfer_view(), "pull", getattr(session.args, "image", ""))
                tracker.feed(item)
            else:  # a Notice: docker prints these on stderr
                print(item.text, file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        session._interrupt()
        raise
    if tracker is not None:
        tracker.finish()
    code = session.exit_code if session.exit_code is not None else 0
    if code:
        tail = "".join(writer.stderr_tail).strip().splitlines()
        last = f": {tail[-1]}" if tail else ""
        raise ContainerError(f"{what} exited with code {code}{last}", exit_code=code,
                             stderr="".join(writer.stderr_tail))
    return code


def follow_frames(stream: Any) -> None:
    """`logs [-f]`: write frames as they come until the stream ends (or the cell is interrupted)."""
    writer = _Writer()
    with stream:
        for item in pump(stream):
            if item is not IDLE:
                writer.write(item)


def _drive(stream: Any, tracker: Any) -> None:
    """Feed every event of `stream` to `tracker`, with a heartbeat whenever the stream is idle."""
    with stream:
        for item in pump(stream):
            if item is IDLE:
                tracker.heartbeat()
            else:
                tracker.feed(item)


def transfer(stream: Any, verb: str, reference: str, *, quiet: bool = False) -> str:
    """Show a pull or push with per-layer progress; return the digest the engine reported."""
    tracker = TransferTracker(_transfer_view(quiet), verb, reference)
    _drive(stream, tracker)
    tracker.finish()
    return tracker.digest


# -- build ------------------------------------------------------------------------------------------
def _instruction_lines(dockerfile: str) -> list[int]:
    """The first line of every instruction, in the classic builder's step order (global ARGs first)."""
    try:
        from workbench.engine.build.dockerfile import parse
    except ImportError:
        return []
    try:
        df = parse(dockerfile)
    except WorkbenchError:
        return []
    lines = [i.line for i in df.global_args]
    for stage in df.stages:
        lines.append(stage.from_instruction.line)
        lines.extend(i.line for i in stage.instructions)
    return lines


def check_dockerfile(dockerfile: str) -> None:
    """Parse a Dockerfile cell locally first, so a syntax error points at its line at once."""
    try:
        from workbench.engine.build.dockerfile import parse
    except ImportError:
        return
    try:
        parse(dockerfile)
    except BuildError as err:
        line = err.line or _line_in(str(err))
        raise BuildError(f"{err}", line=line) from None
    except WorkbenchError:
        return


def _line_in(message: str) -> int | None:
    import re

    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None


def failing_line(err: BuildError, tracker: BuildTracker | None, dockerfile: str) -> int | None:
    if err.line:
        return err.line
    line = _line_in(str(err))
    if line:
        return line
    step = tracker.steps[-1] if tracker and tracker.steps else None
    if step is None:
        return None
    lines = _instruction_lines(dockerfile)
    return lines[step.number - 1] if 0 < step.number <= len(lines) else None


def dockerfile_context(dockerfile: str, line: int | None, *, html: bool) -> str:
    """The Dockerfile around `line` with the line marked, as text or HTML."""
    import html as h

    if not line:
        return ""
    rows = dockerfile.splitlines()
    lo, hi = max(1, line - 2), min(len(rows), line + 2)
    if html:
        body = "".join(
            f'<div style="{"background:#fde2e2;font-weight:bold" if n == line else ""}">'
            f'<span style="color:#999">{n:>3} │ </span>{h.escape(rows[n - 1])}</div>' for n in range(lo, hi + 1))
        return f'<div><b>Dockerfile line {line}</b><pre style="margin:0">{body}</pre></div>'
    text = "\n".join(f"{'>' if n == line else ' '} {n:>3} | {rows[n - 1]}" for n in range(lo, hi + 1))
    return f"Dockerfile line {line}:\n{text}"


def build(stream: Any, dockerfile: str, title: str, *, quiet: bool = False) -> tuple[str, BuildTracker]:
    """Show a build step by step; return (image ID, tracker).

    Raises:
        BuildError: with `line` set to the failing line of `dockerfile` when it can be found.
    """
    headless = frontend.headless()
    if quiet:
        view: Any = _QuietView()
    elif headless:
        view = TextBuildView()
    else:
        from workbench.kernel_ext.widgets.progress import BuildProgress

        view = BuildProgress(title)
    tracker = BuildTracker(view)
    try:
        _drive(stream, tracker)
    except BuildError as err:
        tracker.flush()
        line = failing_line(err, tracker, dockerfile)
        step = tracker.current or (tracker.steps[-1] if tracker.steps else None)
        view.failed(step, str(err), dockerfile_context(dockerfile, line, html=not headless))
        where = f" at line {line}" if line else ""
        instr = f" ({step.instruction})" if step else ""
        raise BuildError(f"build failed{where}{instr}: {err}", step=err.step, line=line, code=err.code,
                         log=err.log) from None
    tracker.flush()
    image_id = getattr(stream, "image_id", None) or tracker.image_id
    if not image_id:
        raise NotFound("the build finished without reporting an image ID")
    view.finished(image_id, tracker.tags, time.monotonic() - tracker.started, tracker.steps)
    return image_id, tracker
