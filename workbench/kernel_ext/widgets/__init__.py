"""ipywidgets 8 views of the engine: dashboard, live log tail, layer explorer, registry browser, and the
build/transfer progress bars the magics use. Each object shows itself when it is a cell's value; in a
headless run (papermill, nbconvert) it prints a plain-text table instead of a widget.

    from workbench.kernel_ext import widgets
    widgets.dashboard()                  # containers and images tabs, buttons, auto refresh
    widgets.log_tail("web")              # follows a container's logs, regex filter, pause
    widgets.layer_explorer("app:1")      # layers → files, wasted space highlighted
    widgets.registry_browser("127.0.0.1:5000")
"""

from __future__ import annotations

from typing import Any

__all__ = ["BuildProgress", "Dashboard", "LayerExplorer", "LogTail", "RegistryBrowser", "TransferProgress",
           "dashboard", "layer_explorer", "log_tail", "registry_browser"]

_WHERE = {"Dashboard": "board", "LogTail": "logs", "LayerExplorer": "layers", "RegistryBrowser": "registry",
          "BuildProgress": "progress", "TransferProgress": "progress"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f"workbench.kernel_ext.widgets.{_WHERE[name]}"), name)
    raise AttributeError(name)


def dashboard(client: Any = None, **options: Any) -> Any:
    """Containers and images tabs with start/stop/remove/logs buttons and auto refresh."""
    from workbench.kernel_ext.widgets.board import Dashboard

    return Dashboard(client, **options)


def log_tail(container: str, client: Any = None, **options: Any) -> Any:
    """A live tail of a container's logs."""
    from workbench.kernel_ext.widgets.logs import LogTail

    return LogTail(container, client, **options)


def layer_explorer(image: str, client: Any = None, **options: Any) -> Any:
    """Pick a layer, see its files and sizes; wasted bytes highlighted."""
    from workbench.kernel_ext.widgets.layers import LayerExplorer

    return LayerExplorer(image, client, **options)


def registry_browser(registry: str, client: Any = None, **options: Any) -> Any:
    """Repositories and paginated tags of an OCI registry, with the stored login."""
    from workbench.kernel_ext.widgets.registry import RegistryBrowser

    return RegistryBrowser(registry, client, **options)
