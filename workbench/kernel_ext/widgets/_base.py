"""What every Workbench widget shares: the engine client, a status line, and headless display."""

from __future__ import annotations

import html
from typing import Any

from workbench.kernel_ext import frontend

__all__ = ["Panel", "esc"]

esc = html.escape


class Panel:
    """A widget tree in `self.widget`, shown as the widget in a live frontend and as text headless."""

    widget: Any

    def __init__(self, client: Any = None) -> None:
        import ipywidgets as w

        if client is None:
            from workbench.kernel_ext.session import current_client

            client = current_client()
        self.client = client
        self.status = w.HTML("")

    def say(self, text: str, *, error: bool = False) -> None:
        colour = "#c33" if error else "#666"
        self.status.value = f'<span style="color:{colour};font-size:12px">{esc(text)}</span>'

    def text(self) -> str:
        """The panel as plain text (what a headless run shows)."""
        return repr(self)

    def shown(self) -> None:
        """Called once the widget is on screen (start timers and threads here)."""

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if frontend.headless():
            print(self.text())
            return
        display(self.widget)
        self.shown()

    def close(self) -> None:
        self.widget.close()
