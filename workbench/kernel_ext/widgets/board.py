"""The dashboard: a Containers tab and an Images tab, action buttons, and auto refresh.

The tables are the same HTML as `%docker ps -a` / `%docker images` (`display.frame_html`); the
Containers table carries the CSS class `wb-containers`, the Images table `wb-images`. Auto refresh
runs on a daemon thread that only sets widget values (comm messages), never prints.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from workbench.errors import WorkbenchError
from workbench.kernel_ext.widgets._base import Panel

__all__ = ["Dashboard"]


class Dashboard(Panel):
    """Containers and images of the engine, with start/stop/remove/logs and image remove/layers."""

    def __init__(self, client: Any = None, *, refresh: float = 5.0, auto: bool = True) -> None:
        import ipywidgets as w

        super().__init__(client)
        self.interval = refresh
        self.containers_html = w.HTML("")
        self.images_html = w.HTML("")
        self.container_select = w.Dropdown(options=[], description="container",
                                           layout=w.Layout(width="40%"))
        self.image_select = w.Dropdown(options=[], description="image", layout=w.Layout(width="40%"))
        self.buttons = {name: w.Button(description=name, layout=w.Layout(width="auto"))
                        for name in ("start", "stop", "remove", "logs")}
        self.image_buttons = {name: w.Button(description=name, layout=w.Layout(width="auto"))
                              for name in ("remove image", "layers")}
        self.refresh_button = w.Button(description="refresh", icon="refresh", layout=w.Layout(width="auto"))
        self.auto = w.Checkbox(value=auto, description=f"auto refresh ({refresh:g}s)", indent=False)
        self.detail = w.VBox([])
        self.image_detail = w.VBox([])
        for name, button in self.buttons.items():
            button.on_click(lambda _b, n=name: self._container_action(n))
        for name, button in self.image_buttons.items():
            button.on_click(lambda _b, n=name: self._image_action(n))
        self.refresh_button.on_click(lambda _b: self.refresh())
        containers_tab = w.VBox([w.HBox([self.container_select, *self.buttons.values()]),
                                 self.containers_html, self.detail])
        images_tab = w.VBox([w.HBox([self.image_select, *self.image_buttons.values()]),
                             self.images_html, self.image_detail])
        self.tabs = w.Tab(children=[containers_tab, images_tab], titles=("Containers", "Images"))
        self.widget = w.VBox([w.HBox([self.refresh_button, self.auto]), self.tabs, self.status])
        self.containers_frame: Any = None
        self.images_frame: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    # -- data ------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Ask the engine again and redraw both tabs."""
        from workbench import views
        from workbench.kernel_ext.display import frame_html

        try:
            containers = self.client.containers.list(all=True)
            images = self.client.images.list()
        except WorkbenchError as err:
            self.say(f"refresh failed: {err}", error=True)
            return
        self.containers_frame = views.containers_frame(containers)
        self.images_frame = views.images_frame(images)
        empty = '<div class="wb-empty" style="color:#666">{}</div>'
        self.containers_html.value = frame_html(self.containers_frame) if containers else \
            empty.format("no containers") + '<table class="wb-table wb-containers"></table>'
        self.images_html.value = frame_html(self.images_frame) if images else empty.format("no images")
        self._options(self.container_select, [(f"{c.name} ({c.state})", c.id) for c in containers])
        self._options(self.image_select, [(t, t) for i in images for t in (i.tags or (i.short_id,))])
        self.say(f"{len(containers)} containers, {len(images)} images · {time.strftime('%H:%M:%S')}")

    @staticmethod
    def _options(select: Any, options: list[tuple[str, str]]) -> None:
        keep = select.value
        if list(select.options) != options:
            select.options = options
            values = [v for _, v in options]
            select.value = keep if keep in values else (values[0] if values else None)

    # -- actions --------------------------------------------------------------------------------------
    def _container_action(self, name: str) -> None:
        from workbench.kernel_ext.widgets.logs import LogTail

        cid = self.container_select.value
        if not cid:
            self.say("pick a container first", error=True)
            return
        containers = self.client.containers
        try:
            if name == "start":
                containers.start(cid)
            elif name == "stop":
                containers.stop(cid, timeout=5)
            elif name == "remove":
                containers.remove(cid, force=True)
            else:
                tail = LogTail(cid, self.client, follow=True)
                self.detail.children = [tail.widget]
                tail.shown()
                return
        except WorkbenchError as err:
            self.say(f"{name} failed: {err}", error=True)
            return
        self.refresh()

    def _image_action(self, name: str) -> None:
        from workbench.kernel_ext.widgets.layers import LayerExplorer

        image = self.image_select.value
        if not image:
            self.say("pick an image first", error=True)
            return
        try:
            if name == "remove image":
                self.client.images.remove(image)
                self.refresh()
            else:
                self.image_detail.children = [LayerExplorer(image, self.client).widget]
        except WorkbenchError as err:
            self.say(f"{name} failed: {err}", error=True)

    # -- auto refresh ---------------------------------------------------------------------------------
    def shown(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="workbench-dashboard")
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self.auto.value:
                try:
                    self.refresh()
                except Exception as err:  # the thread must outlive engine hiccups
                    self.say(f"refresh failed: {err}", error=True)

    def close(self) -> None:
        self._stop.set()
        super().close()

    def text(self) -> str:
        from workbench.kernel_ext.display import frame_text

        return (f"Containers\n{frame_text(self.containers_frame)}\n\nImages\n{frame_text(self.images_frame)}"
                if self.containers_frame is not None else "dashboard: no data")
