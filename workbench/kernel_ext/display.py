"""How Workbench results look in a notebook: tables, image and container cards, exit codes.

DataFrames made by `workbench.views` carry `attrs["workbench"]` naming their byte columns; the
formatters registered here show those as `4.26MB` and times as `3 minutes ago` while the data keeps
its dtypes. Rendering is hand-written HTML (no Styler), so a 200-row listing draws in a few ms.
Other DataFrames are left to pandas. Formatters are registered by module and class name, so loading
the extension does not import pandas.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from workbench.cli.tables import ago, human_size

__all__ = ["ExitCode", "container_html", "frame_html", "frame_text", "image_html", "register", "unregister"]

MAX_ROWS = 60
# Inline styles only: JupyterLab's sanitizer drops <style> elements from outputs, and its own table rules
# (right-aligned cells, striped rows) would otherwise win.
_TABLE = 'style="border-collapse:collapse;font-size:12px;white-space:nowrap"'
_TH = '<th style="text-align:left;padding:2px 12px 2px 0;border-bottom:1px solid #bbb">'
_LEFT, _RIGHT = ' style="text-align:left;padding:1px 12px 1px 0"', ' style="text-align:right;padding:1px 12px 1px 0"'
_ROW_COLOURS = {"wb-wasted": "#fde2e2", "wb-added": "#e3f6e3", "wb-removed": "#fde2e2", "wb-changed": "#fff3d6"}
_CAPTION = '<div class="wb-caption" style="color:#666;font-size:11px">'
_esc = html.escape


class ExitCode(int):
    """A process's exit status: an int that shows nothing when it is 0."""

    def _ipython_display_(self) -> None:
        if self:
            print(f"exit code {int(self)}")

    def __repr__(self) -> str:
        return f"ExitCode({int(self)})"


def _marks(df: Any) -> dict[str, Any] | None:
    marks = getattr(df, "attrs", {}).get("workbench")
    return marks if isinstance(marks, dict) else None


def _cell_formatter(df: Any, col: str, byte_cols: Sequence[str]) -> Callable[[Any], tuple[str, str]]:
    """(text, title) for one value of `col`."""
    kind = str(df[col].dtype)
    if col in byte_cols:
        def size(v: Any) -> tuple[str, str]:
            try:
                n = int(v)
            except (TypeError, ValueError):  # None, NaN, pd.NA
                return "", ""
            return ("-" if n < 0 else "") + human_size(abs(n)), f"{n:,} bytes"
        return size
    if kind.startswith("datetime"):
        def when(v: Any) -> tuple[str, str]:
            if v is None or v != v:  # None, NaT
                return "", ""
            return ago(v.to_pydatetime() if hasattr(v, "to_pydatetime") else v), str(v)
        return when
    return lambda v: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v), "")


def _rows(df: Any) -> tuple[list[int], bool]:
    n = len(df)
    if n <= MAX_ROWS:
        return list(range(n)), False
    half = MAX_ROWS // 2
    return list(range(half)) + list(range(n - half, n)), True


def _row_class(kind: str, df: Any) -> Callable[[int], str]:
    if kind in ("files", "layers") and "wasted" in df.columns:
        wasted = df["wasted"].tolist()
        return lambda i: "wb-wasted" if wasted[i] else ""
    if kind == "diff":
        change = df["change"].tolist()
        return lambda i: f"wb-{change[i]}"
    return lambda i: ""


def frame_html(df: Any) -> str | None:
    """HTML for a Workbench frame; None for any other DataFrame (pandas draws those)."""
    marks = _marks(df)
    if marks is None:
        return None
    byte_cols = marks.get("bytes", [])
    cols = [str(c) for c in df.columns]
    numeric = {c for c in cols if c in byte_cols or str(df[c].dtype).startswith(("int", "Int", "float"))}
    picks, cut = _rows(df)
    columns = []
    for c in cols:
        fmt = _cell_formatter(df, c, byte_cols)
        values = df[c].tolist()
        columns.append([fmt(values[i]) for i in picks])
    row_class = _row_class(marks.get("kind", ""), df)
    out = [f'<table class="wb-table wb-{_esc(marks.get("kind", ""))}" {_TABLE}><thead><tr>']
    out += [f"{_TH}{_esc(c)}</th>" for c in cols]
    out.append("</tr></thead><tbody>")
    for j, i in enumerate(picks):
        if cut and j == MAX_ROWS // 2:
            out.append(f'<tr><td colspan="{len(cols)}">…</td></tr>')
        cls = row_class(i)
        colour = _ROW_COLOURS.get(cls)
        out.append(f'<tr class="{cls}" style="background:{colour}">' if colour else
                   f'<tr class="{cls}">' if cls else "<tr>")
        for c, column in zip(cols, columns):
            text, title = column[j]
            attrs = (_RIGHT if c in numeric else _LEFT) + (f' title="{_esc(title)}"' if title else "")
            cell = _port_links(text) if c == "ports" and marks.get("kind") == "containers" else _esc(text)
            out.append(f"<td{attrs}>{cell}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    out.append(f"{_CAPTION}{len(df)} rows × {len(cols)} columns</div>")
    return "".join(out)


_PUBLISHED = re.compile(r"^(?P<ip>\[[0-9a-fA-F:]*\]|[0-9.]*):(?P<port>\d+)->(?P<inner>\d+/\w+)$")


def _port_links(text: str) -> str:
    """`docker ps` ports with each published one as a link to where the host listens."""
    parts = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        m = _PUBLISHED.match(item)
        if m is None:
            parts.append(_esc(item))
            continue
        ip = m["ip"].strip("[]")
        host = "127.0.0.1" if ip in ("", "0.0.0.0", "::") else (f"[{ip}]" if ":" in ip else ip)
        url = f"http://{host}:{m['port']}/"
        parts.append(f'<a href="{_esc(url)}" target="_blank" rel="noopener">{_esc(item)}</a>')
    return ", ".join(parts)


def frame_text(df: Any) -> str | None:
    """Plain text for a Workbench frame (aligned like docker's tables); None for other frames."""
    from workbench.cli.tables import table

    marks = _marks(df)
    if marks is None:
        return None
    byte_cols = marks.get("bytes", [])
    cols = [str(c) for c in df.columns]
    picks, cut = _rows(df)
    columns = []
    for c in cols:
        fmt = _cell_formatter(df, c, byte_cols)
        values = df[c].tolist()
        columns.append([fmt(values[i])[0] for i in picks])
    rows = [[col[j] for col in columns] for j in range(len(picks))]
    if cut:
        rows.insert(MAX_ROWS // 2, ["…"] * len(cols))
    lines = table([c.upper() for c in cols], rows)
    lines.append(f"[{len(df)} rows × {len(cols)} columns]")
    return "\n".join(lines)


# -- records ----------------------------------------------------------------------------------------
def _kv_table(pairs: Sequence[tuple[str, str]], title: str) -> str:
    body = "".join(f'<tr><th style="text-align:left;padding-right:12px">{_esc(k)}</th><td{_LEFT}>{_esc(v)}</td></tr>'
                   for k, v in pairs if v)
    return f'<table class="wb-table wb-card" {_TABLE}><caption style="text-align:left"><b>{_esc(title)}</b>' \
           f"</caption>{body}</table>"


def _when(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S} ({ago(t)})" if t is not None and t.year > 1 else ""


def image_html(rec: Any) -> str:
    """A card for `ImageSummary` or `ImageDetails`."""
    tags = ", ".join(t for t in rec.repo_tags if t != "<none>:<none>") or "<none>"
    pairs = [("id", rec.id), ("tags", tags), ("created", _when(rec.created)), ("size", human_size(rec.size)),
             ("digests", ", ".join(rec.repo_digests))]
    config = getattr(rec, "config", None) or {}
    if config:
        cmd = config.get("Cmd") or []
        entry = config.get("Entrypoint") or []
        pairs += [("platform", f"{rec.os}/{rec.architecture}"), ("entrypoint", " ".join(entry)),
                  ("cmd", " ".join(cmd)), ("env", ", ".join(config.get("Env") or [])),
                  ("layers", str(len(rec.layers)))]
    return _kv_table(pairs, f"image {tags}")


def container_html(rec: Any) -> str:
    """A card for `ContainerSummary` or `ContainerDetails`."""
    state = getattr(rec, "state", "")
    status = getattr(rec, "status", "")
    if not isinstance(state, str):  # ContainerDetails: a ContainerState record
        status = state.status + (f" (exit {state.exit_code})" if not state.running else "")
        state = state.status
    ports = getattr(rec, "ports", ())
    ports_text = ", ".join(str(p) for p in ports) if isinstance(ports, tuple) else \
        ", ".join(f"{k}->{v}" for k, v in (ports or {}).items() if v)
    pairs = [("id", rec.id), ("image", rec.image), ("state", state), ("status", status),
             ("created", _when(rec.created)), ("command", getattr(rec, "command", "")), ("ports", ports_text)]
    return _kv_table(pairs, f"container {rec.name}")


def image_text(rec: Any) -> str:
    tags = ", ".join(t for t in rec.repo_tags if t != "<none>:<none>") or "<none>"
    return f"<image {tags} {rec.id.removeprefix('sha256:')[:12]}, {human_size(rec.size)}, created {ago(rec.created)}>"


def container_text(rec: Any) -> str:
    state = rec.state if isinstance(rec.state, str) else rec.state.status
    return f"<container {rec.name} {rec.id[:12]}, {rec.image}, {state}>"


# -- registration -------------------------------------------------------------------------------------
_FRAME_TYPES = (("pandas", "DataFrame"), ("pandas.core.frame", "DataFrame"))
_RECORDS = {"ImageSummary": image_html, "ImageDetails": image_html, "ContainerSummary": container_html,
            "ContainerDetails": container_html}


def _frame_html_or_default(df: Any) -> str | None:
    out = frame_html(df)
    return out if out is not None else df._repr_html_()


def _frame_pretty(df: Any, p: Any, cycle: bool) -> None:
    out = frame_text(df)
    p.text(out if out is not None else repr(df))


def register(shell: Any) -> None:
    formatters = shell.display_formatter.formatters
    html_f, text_f = formatters["text/html"], formatters["text/plain"]
    for module, name in _FRAME_TYPES:
        html_f.for_type_by_name(module, name, _frame_html_or_default)
        text_f.for_type_by_name(module, name, _frame_pretty)
    for name, fn in _RECORDS.items():
        html_f.for_type_by_name("workbench.client._records", name, fn)
        text = image_text if fn is image_html else container_text
        text_f.for_type_by_name("workbench.client._records", name,
                                lambda obj, p, cycle, text=text: p.text(text(obj)))


def unregister(shell: Any) -> None:
    formatters = shell.display_formatter.formatters
    for f in (formatters["text/html"], formatters["text/plain"]):
        for module, name in _FRAME_TYPES:
            _pop(f, module, name)
    for name in _RECORDS:
        _pop(formatters["text/html"], "workbench.client._records", name)
        _pop(formatters["text/plain"], "workbench.client._records", name)


def _pop(formatter: Any, module: str, name: str) -> None:
    try:
        formatter.pop(f"{module}.{name}")
    except KeyError:
        pass
