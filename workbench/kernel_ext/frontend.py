"""Which frontend is listening, and how to show things to it.

Widgets only make sense when a live frontend renders them (JupyterLab, Notebook). Headless runs
(papermill, nbconvert, nbclient, a terminal IPython, an `InteractiveShell` in tests) get plain text:
one line per event, no cursor motion, and a heartbeat line every few seconds during long silent work.

The signal: nbclient (which papermill and nbconvert use) sends every cell with `allow_stdin=False`,
while a JupyterLab or Notebook frontend allows stdin. `WORKBENCH_HEADLESS=1|0` overrides the guess.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["HEARTBEAT_SECONDS", "headless", "in_kernel", "publish", "shell"]

HEARTBEAT_SECONDS = 3.0


def shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def in_kernel() -> bool:
    return getattr(shell(), "kernel", None) is not None


def headless() -> bool:
    """True when output must be plain text (no widgets, no live redraws)."""
    env = os.environ.get("WORKBENCH_HEADLESS", "").strip().lower()
    if env:
        return env not in ("0", "false", "no", "off")
    kernel = getattr(shell(), "kernel", None)
    if kernel is None:
        return True
    return not bool(getattr(kernel, "_allow_stdin", False))


def publish(text: str, html: str | None = None, metadata: dict[str, Any] | None = None) -> None:
    """Display one output: its text form, plus an HTML form when given (kept in saved notebooks)."""
    from IPython.display import display

    data: dict[str, Any] = {"text/plain": text}
    if html is not None:
        data["text/html"] = html
    display(data, raw=True, metadata=metadata or {})
