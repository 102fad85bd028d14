"""The layer explorer: pick a layer, see its files and sizes, wasted space highlighted (dive's view)."""

from __future__ import annotations

from typing import Any

from workbench.cli.tables import human_size
from workbench.kernel_ext.widgets._base import Panel, esc

__all__ = ["LayerExplorer"]


class LayerExplorer(Panel):
    """Layers of `image` on the left, the chosen layer's files on the right."""

    def __init__(self, image: str, client: Any = None, *, layer: int | None = None, only_wasted: bool = False,
                 max_files: int = 500) -> None:
        import ipywidgets as w

        from workbench import views

        super().__init__(client)
        self.image = image
        self.max_files = max_files
        self.layers = views.layers(image, self.client)
        self.files = views.files(image, self.client)
        self.summary = views.efficiency(image, self.client)
        options = [(f"{r.layer}: {human_size(r.size):>8}  {self._short(r.created_by)}", int(r.layer))
                   for r in self.layers.itertuples()]
        self.layer_select = w.Select(options=options, rows=min(12, max(3, len(options))),
                                     layout=w.Layout(width="45%"))
        self.only_wasted = w.Checkbox(value=only_wasted, description="only wasted files", indent=False)
        self.header = w.HTML(self._header_html())
        self.files_html = w.HTML("")
        self.layer_select.observe(lambda _c: self.render(), names="value")
        self.only_wasted.observe(lambda _c: self.render(), names="value")
        right = w.VBox([self.only_wasted, self.files_html], layout=w.Layout(width="55%"))
        self.widget = w.VBox([self.header, w.HBox([self.layer_select, right]), self.status])
        if options:
            self.layer_select.value = options[-1][1] if layer is None else layer
        self.render()

    @staticmethod
    def _short(text: str, width: int = 60) -> str:
        text = " ".join(text.split())
        return text if len(text) <= width else text[:width - 1] + "…"

    def _header_html(self) -> str:
        s = self.summary
        return (f"<b>{esc(self.image)}</b> · {s['layers']} layers · {human_size(s['size'])} of files · "
                f'<span style="color:{"#c33" if s["wasted"] else "#3a7"}">{human_size(s["wasted"])} wasted</span> · '
                f"efficiency {s['efficiency'] * 100:.1f}%")

    def selected_files(self) -> Any:
        """The rows shown: the chosen layer's files (only wasted ones when the box is ticked)."""
        df = self.files[self.files["layer"] == self.layer_select.value]
        if self.only_wasted.value:
            df = df[df["wasted"] > 0]
        return df

    def render(self) -> None:
        from workbench.kernel_ext.display import frame_html

        df = self.selected_files()
        shown = df.head(self.max_files)[["path", "type", "change", "size", "mode", "wasted"]].copy()
        shown.attrs = {"workbench": {"kind": "files", "bytes": ["size", "wasted"]}}
        table = frame_html(shown) or ""
        wasted = int(df["wasted"].sum()) if len(df) else 0
        more = f" (first {self.max_files} shown)" if len(df) > self.max_files else ""
        self.files_html.value = (f"<div>layer {self.layer_select.value}: {len(df)} entries{more}, "
                                 f"{human_size(wasted)} wasted</div>{table}")

    def text(self) -> str:
        from workbench.kernel_ext.display import frame_text

        s = self.summary
        return (f"{self.image}: {s['layers']} layers, {human_size(s['size'])}, {human_size(s['wasted'])} wasted, "
                f"efficiency {s['efficiency'] * 100:.1f}%\n{frame_text(self.layers)}")
