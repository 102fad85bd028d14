"""The IPython extension: `%load_ext workbench` registers `%docker`/`%%docker` and connects to the engine.

Loading connects to `WORKBENCH_HOST` (else the default socket). When nothing answers and this process
may start an engine (root, a container runtime present, `WORKBENCH_AUTOSTART` not 0), it starts one
detached and says so in one line; otherwise it prints one line on how to start it, and the magics
fail with a clear message until the engine is up. Loading imports neither pandas nor ipywidgets.

    %load_ext workbench
    %docker images                       # a DataFrame
    %%docker build -t hello:1            # the cell is the Dockerfile
    from workbench.kernel_ext import docker, widgets
    docker("run --rm busybox echo hi")   # the same as the magic, from Python
"""

from __future__ import annotations

from typing import Any

__all__ = ["docker", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    from workbench.kernel_ext import complete, display, failures
    from workbench.kernel_ext.engine import connect
    from workbench.kernel_ext.magics import DockerMagics

    session = connect()
    ipython.register_magics(DockerMagics(ipython, session))
    display.register(ipython)
    failures.install(ipython)
    complete.install(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from workbench.kernel_ext import complete, display, failures
    from workbench.kernel_ext.session import current, set_current

    magics = ipython.magics_manager.magics
    magics["line"].pop("docker", None)
    magics["cell"].pop("docker", None)
    display.unregister(ipython)
    failures.uninstall(ipython)
    complete.uninstall(ipython)
    session = current()
    if session is not None:
        session.client.close()
    set_current(None)


def docker(command: str | list[str], *, cell: str | None = None) -> Any:
    """Run a `%docker` command from Python: `docker("images")`, `docker(["run", "--rm", img, "true"])`."""
    import shlex

    from workbench.kernel_ext.dispatch import execute
    from workbench.kernel_ext.session import current, current_client

    current_client()
    session = current()
    assert session is not None
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    return execute(session, argv, cell=cell)
