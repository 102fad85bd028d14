"""Connect the kernel to an engine, starting one when nothing answers and this process may.

"May" means: the address is a Unix socket, we are root (the engine needs namespaces and mounts), a
container runtime (runc or crun) is installed, and `WORKBENCH_AUTOSTART` is not `0`. The engine is
started detached (it outlives the kernel) with its root at `WORKBENCH_ROOT` or the default. Either
way the user reads exactly one line about it.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil

from workbench.kernel_ext.session import NotebookSession, default_lock_path, engine_answers, set_current

__all__ = ["connect", "may_start"]


def may_start(host: str) -> bool:
    if os.environ.get("WORKBENCH_AUTOSTART", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not host.startswith("unix://") or os.geteuid() != 0:
        return False
    return shutil.which("runc") is not None or shutil.which("crun") is not None


def _start(host: str) -> tuple[bool, str]:
    from workbench.engine.config import DEFAULT_ROOT
    from workbench.engine.daemon import main_start

    root = os.environ.get("WORKBENCH_ROOT") or DEFAULT_ROOT
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main_start(root, [host], None, detach=True)
    text = (out.getvalue() or err.getvalue()).strip().splitlines()
    return status == 0, text[-1] if text else ""


def connect(host: str | None = None) -> NotebookSession:
    """A session on `host` (default `WORKBENCH_HOST`, else the default socket), made current."""
    from workbench.client import Client, resolve_host

    url = resolve_host(host).url
    if not engine_answers(url):
        if may_start(url):
            ok, line = _start(url)
            if ok:
                print(f"workbench: no engine answered at {url}, so one was started: {line}")
            else:
                print(f"workbench: could not start an engine at {url}: {line}")
        else:
            print(f"workbench: no engine answers at {url}; start one with `sudo workbench engine start "
                  f"--detach` (or `make engine`), or point WORKBENCH_HOST at a running one")
    session = NotebookSession(url, Client(url), default_lock_path())
    set_current(session)
    return session
