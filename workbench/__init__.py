"""Workbench: a notebook-first container engine speaking the Docker Engine API."""

from __future__ import annotations

from workbench import errors

__version__ = "0.1.0"
API_VERSION = "1.41"
MIN_API_VERSION = "1.24"

__all__ = ["API_VERSION", "MIN_API_VERSION", "Client", "__version__", "errors", "load_ipython_extension"]


def __getattr__(name: str):  # lazy: importing workbench must stay cheap for the daemon and the CLI
    if name == "Client":
        from workbench.client import Client
        return Client
    raise AttributeError(name)


def load_ipython_extension(ipython) -> None:
    from workbench.kernel_ext import load_ipython_extension as _load
    _load(ipython)


def unload_ipython_extension(ipython) -> None:
    from workbench.kernel_ext import unload_ipython_extension as _unload
    _unload(ipython)
