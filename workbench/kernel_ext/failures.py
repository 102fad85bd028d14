"""Failures of `%docker` as one clear line, still failing the cell.

IPython's custom-exception hook shows a `WorkbenchError` as one line (`NotFound: No such image: x`)
instead of a traceback. The cell still ends in error (the execute reply says `status: error`), so
"Run All" stops there and papermill/nbclient raise at that cell: a pipeline fails at the right place.
`WORKBENCH_DEBUG=1` (or `%docker -D ...`) shows the whole traceback instead.
"""

from __future__ import annotations

import os
from typing import Any

from workbench.errors import BuildError, ContainerError, WorkbenchError

__all__ = ["VerifyFailed", "install", "message", "uninstall"]

_RED, _RESET, _DIM = "\x1b[0;31m", "\x1b[0m", "\x1b[2m"


class VerifyFailed(WorkbenchError):
    """`%docker verify`: images the notebook uses no longer match workbench.lock."""

    status = 409


def message(err: BaseException) -> str:
    """The one line for an error: its class, then Docker's wording."""
    from workbench.client._wire import from_daemon

    text = str(err) or type(err).__name__
    hint = getattr(err, "hint", "")
    if hint:
        text = f"{text}\n{hint}"
    if from_daemon(err) and not text.startswith("Error response from daemon"):
        text = f"Error response from daemon: {text}"
    return text


def _handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> list[str]:
    from workbench.kernel_ext.session import current

    session = current()
    if session is not None:
        session.last_error = value
    if os.environ.get("WORKBENCH_DEBUG") or getattr(value, "debug", False):
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    else:
        from workbench.cli.parser import UsageError

        name = "ExitStatus" if isinstance(value, ContainerError) else \
            "UsageError" if isinstance(value, UsageError) else etype.__name__
        stb = [f"{_RED}{name}{_RESET}: {message(value)}"]
        if isinstance(value, BuildError) and value.log:
            stb.append(f"{_DIM}(the full build log is in `_docker_error.log`){_RESET}")
        shell.user_ns["_docker_error"] = value
    shell._showtraceback(etype, value, stb)
    return stb


def install(shell: Any) -> None:
    """Show WorkbenchErrors compactly (replaces any other custom-exception handler)."""
    shell.set_custom_exc((WorkbenchError,), _handler)


def uninstall(shell: Any) -> None:
    if WorkbenchError in getattr(shell, "custom_exceptions", ()):
        shell.set_custom_exc((), None)
