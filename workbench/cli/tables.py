"""Docker's listings as text: `images`, `ps`, `history`, `network ls`, `volume ls`, `system df`, ...

Columns are aligned like docker's tabwriter (minimum width 10, padding 3). `--format` takes a
Go-style template over docker's field names (`{{.ID}}`, `{{.Names}}`, `table {{.Repository}}`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workbench.cli.gotemplate import Template
from workbench.errors import WorkbenchError
from workbench.oci.units import human_duration

if TYPE_CHECKING:
    from workbench.cli.render import Output

__all__ = ["ago", "containers", "human_size", "images", "table"]

_ZERO = datetime(1, 1, 1, tzinfo=UTC)
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_size(n: float, precision: int = 3) -> str:
    """docker's `HumanSizeWithPrecision(n, 3)`: decimal units, three significant digits."""
    value, i = float(n), 0
    while value >= 1000 and i < len(_UNITS) - 1:
        value /= 1000.0
        i += 1
    text = f"{value:.{precision}g}"
    if "e" in text and i < len(_UNITS) - 1:  # 999.9 rounds to 1e+03: step up a unit
        return f"{value / 1000:.{precision}g}{_UNITS[i + 1]}"
    return f"{text}{_UNITS[i]}"


def ago(when: datetime, now: float | None = None) -> str:
    """`2 minutes ago` (docker's HumanDuration + " ago"); the zero time gives ""."""
    if when <= _ZERO:
        return ""
    delta = (time.time() if now is None else now) - when.timestamp()
    return f"{human_duration(max(delta, 0))} ago"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, minwidth: int = 10,
          padding: int = 3) -> list[str]:
    """Align cells like Go's tabwriter(minwidth, tabwidth=1, padding); the last column is not padded."""
    all_rows = [list(headers), *[list(r) for r in rows]] if headers else [list(r) for r in rows]
    if not all_rows:
        return []
    ncols = max(len(r) for r in all_rows)
    widths = [0] * ncols
    for row in all_rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell) + padding, minwidth)
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append(("".join(cells) + (row[-1] if row else "")).rstrip())
    return lines


def _emit(out: Output, lines: Iterable[str]) -> int:
    for line in lines:
        out.line(line)
    return 0


def _formatted(out: Output, fmt: str, contexts: Sequence[dict[str, Any]],
               titles: dict[str, str] | None = None) -> int:
    template = Template(fmt)
    rendered = [template.render(c) for c in contexts]
    if template.table:
        header = template.header(titles)
        return _emit(out, table([], [header.split("\t"), *(r.split("\t") for r in rendered)]))
    return _emit(out, rendered)


def _short(image_id: str, no_trunc: bool = False) -> str:
    return image_id if no_trunc else image_id.removeprefix("sha256:")[:12]


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def full_reference(reference: str) -> str:
    """`busybox` → `docker.io/library/busybox:latest`, as `docker pull` prints at the end."""
    from workbench.oci.reference import parse_normalized

    try:
        ref = parse_normalized(reference)
    except WorkbenchError:  # show what the user typed if it does not parse
        return reference
    suffix = f"@{ref.digest}" if ref.digest else f":{ref.tag}"
    return f"{ref.repository}{suffix}"


# -- images ----------------------------------------------------------------------------------------
def _image_rows(images: Sequence[Any], digests: bool, no_trunc: bool) -> list[dict[str, Any]]:
    rows = []
    for image in sorted(images, key=lambda i: i.created, reverse=True):
        tags = image.tags or ("<none>:<none>",)
        for tag in tags:
            repo, _, name_tag = tag.rpartition(":")
            digest = next((d.split("@", 1)[1] for d in image.repo_digests
                           if d.split("@", 1)[0] == repo), "<none>")
            rows.append({"Repository": repo, "Tag": name_tag, "Digest": digest,
                         "ID": _short(image.id, no_trunc), "CreatedSince": ago(image.created),
                         "CreatedAt": str(image.created), "Size": human_size(image.size),
                         "Containers": str(image.containers)})
    return rows


def images(args: argparse.Namespace, result: Sequence[Any], out: Output) -> int:
    if args.quiet:
        seen: dict[str, None] = {}
        for image in sorted(result, key=lambda i: i.created, reverse=True):
            seen.setdefault(_short(image.id, args.no_trunc))
        return _emit(out, seen)
    rows = _image_rows(result, args.digests, args.no_trunc)
    if args.format:
        return _formatted(out, args.format, rows, {"ID": "IMAGE ID"})
    headers = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID", "CREATED", "SIZE"]
    keys = ["Repository", "Tag", *(["Digest"] if args.digests else []), "ID", "CreatedSince", "Size"]
    return _emit(out, table(headers, ([r[k] for k in keys] for r in rows)))


def history(args: argparse.Namespace, result: Sequence[Any], out: Output) -> int:
    if args.quiet:
        return _emit(out, (_short(h.id, args.no_trunc) if h.id != "<missing>" else h.id for h in result))
    rows = []
    for h in result:
        created_by = " ".join(h.created_by.split()) if not args.no_trunc else h.created_by
        rows.append({"ID": h.id if h.id == "<missing>" else _short(h.id, args.no_trunc),
                     "CreatedSince": ago(h.created) if args.human else h.created.isoformat(),
                     "CreatedBy": created_by if args.no_trunc else _ellipsis(created_by, 45),
                     "Size": human_size(h.size) if args.human else str(h.size), "Comment": h.comment})
    if args.format:
        return _formatted(out, args.format, rows, {"ID": "IMAGE"})
    return _emit(out, table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
                            ([r["ID"], r["CreatedSince"], r["CreatedBy"], r["Size"], r["Comment"]]
                             for r in rows)))


# -- containers ------------------------------------------------------------------------------------
def _ports(ports: Iterable[Any]) -> str:
    ordered = sorted(ports, key=lambda p: (p.private_port, p.type, p.public_port or 0, p.ip or ""))
    return ", ".join(dict.fromkeys(str(p) for p in ordered))


def _image_column(c: Any, no_trunc: bool) -> str:
    """docker ps's IMAGE: a short ID when the container was made from an ID, a name without digest."""
    if no_trunc:
        return c.image
    image = c.image
    if image.removeprefix("sha256:")[:12] == c.image_id.removeprefix("sha256:")[:12]:
        return image.removeprefix("sha256:")[:12]
    if "@" in image:
        name, _, _digest = image.partition("@")
        return name
    return image


def _container_row(c: Any, no_trunc: bool) -> dict[str, Any]:
    command = c.command if no_trunc else _ellipsis(c.command, 20)
    names = [n.lstrip("/") for n in c.names if "/" not in n.lstrip("/")]
    size = ""
    if c.size_rw is not None:
        size = f"{human_size(c.size_rw)} (virtual {human_size(c.size_root_fs or 0)})"
    return {"ID": c.id if no_trunc else c.id[:12], "Image": _image_column(c, no_trunc), "Command": _quote(command),
            "CreatedSince": ago(c.created), "RunningFor": ago(c.created), "CreatedAt": str(c.created),
            "Status": c.status, "State": c.state, "Ports": _ports(c.ports), "Names": ",".join(names),
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(c.labels.items())), "Size": size,
            "Networks": ",".join(c.networks)}


def containers(args: argparse.Namespace, result: Sequence[Any], out: Output) -> int:
    if args.quiet:
        return _emit(out, (c.id if args.no_trunc else c.id[:12] for c in result))
    rows = [_container_row(c, args.no_trunc) for c in result]
    if args.format:
        return _formatted(out, args.format, rows)
    headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    keys = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"]
    if args.size:
        headers.append("SIZE")
        keys.append("Size")
    return _emit(out, table(headers, ([r[k] for k in keys] for r in rows)))


def top(args: argparse.Namespace, result: Any, out: Output) -> int:
    return _emit(out, table(result.titles, result.processes))


def changes(args: argparse.Namespace, result: Sequence[Any], out: Output) -> int:
    return _emit(out, (f"{c.kind.letter} {c.path}" for c in result))


def ports(args: argparse.Namespace, result: Sequence[tuple[str, str]], out: Output) -> int:
    if args.private_port:
        return _emit(out, (addr for _, addr in result))
    return _emit(out, (f"{port} -> {addr}" for port, addr in result))


def lines(args: argparse.Namespace, result: Iterable[str], out: Output) -> int:
    return _emit(out, result)


# -- networks, volumes, system ---------------------------------------------------------------------
def networks(args: argparse.Namespace, result: Sequence[Any], out: Output) -> int:
    if args.quiet:
        return _emit(out, (n.id if args.no_trunc else n.short_id for n in result))
    rows = [{"ID": n.id if args.no_trunc else n.short_id, "Name": n.name, "Driver": n.driver,
             "Scope": n.scope, "Internal": str(n.internal).lower(), "CreatedAt": str(n.created),
             "Labels": ",".join(f"{k}={v}" for k, v in sorted(n.labels.items()))} for n in result]
    if args.format:
        return _formatted(out, args.format, rows, {"ID": "NETWORK ID"})
    return _emit(out, table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                            ([r["ID"], r["Name"], r["Driver"], r["Scope"]] for r in rows)))


def volumes(args: argparse.Namespace, result: Sequence[Any], out: Output) -> int:
    if args.quiet:
        return _emit(out, (v.name for v in result))
    rows = [{"Name": v.name, "Driver": v.driver, "Mountpoint": v.mountpoint, "Scope": v.scope,
             "Labels": ",".join(f"{k}={val}" for k, val in sorted(v.labels.items()))} for v in result]
    if args.format:
        return _formatted(out, args.format, rows, {"Name": "VOLUME NAME"})
    return _emit(out, table(["DRIVER", "VOLUME NAME"], ([r["Driver"], r["Name"]] for r in rows)))


def disk_usage(args: argparse.Namespace, df: Any, out: Output) -> int:
    """docker's `system df` summary: image SIZE is the unique layer total, RECLAIMABLE what unused images,
    stopped containers, unreferenced volumes and idle build cache free."""
    def size(n: float) -> str:
        return human_size(n, precision=4)

    def pct(part: int, whole: int) -> str:
        return f"{size(part)} ({part * 100 // whole}%)" if whole > 0 else size(part)

    images_total = df.layers_size
    used = 0
    for image in df.images:
        virtual = image.attrs.get("VirtualSize", image.size)
        shared = image.attrs.get("SharedSize", -1)
        if image.containers and virtual != -1 and shared != -1:
            used += virtual - shared
    live = ("running", "paused", "restarting")
    c_size = sum(c.size_rw or 0 for c in df.containers)
    c_idle = sum(c.size_rw or 0 for c in df.containers if c.state not in live)
    usage = [(v.get("UsageData") or {}) for v in df.volumes]
    v_size = sum(u.get("Size", 0) for u in usage if u.get("Size", -1) != -1)
    v_idle = sum(u.get("Size", 0) for u in usage if u.get("RefCount", 0) == 0 and u.get("Size", -1) != -1)
    b_size = sum(b.get("Size") or 0 for b in df.build_cache if not b.get("Shared"))
    b_idle = sum(b.get("Size") or 0 for b in df.build_cache if not b.get("InUse") and not b.get("Shared"))
    rows = [["Images", str(len(df.images)), str(sum(1 for i in df.images if i.containers and i.containers > 0)),
             size(images_total), pct(images_total - used, images_total)],
            ["Containers", str(len(df.containers)), str(sum(1 for c in df.containers if c.state in live)),
             size(c_size), pct(c_idle, c_size)],
            ["Local Volumes", str(len(df.volumes)), str(sum(1 for u in usage if u.get("RefCount", 0) > 0)),
             size(v_size), pct(v_idle, v_size)],
            ["Build Cache", str(len(df.build_cache)), str(sum(1 for b in df.build_cache if b.get("InUse"))),
             size(b_size), size(b_idle)]]
    if args.format:
        keys = ["Type", "TotalCount", "Active", "Size", "Reclaimable"]
        return _formatted(out, args.format, [dict(zip(keys, r, strict=True)) for r in rows])
    return _emit(out, table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows))


def version(args: argparse.Namespace, info: dict[str, Any], out: Output) -> int:
    if args.format:
        out.line(Template(args.format).render(info))
        return 0 if "Server" in info else 1
    c = info["Client"]
    lines_ = ["Client:", f" Version:           {c['Version']}",
              f" API version:       {c.get('NegotiatedApiVersion') or c['ApiVersion']}",
              f" Python version:    {c['PythonVersion']}", f" OS/Arch:           {c['Os']}/{c['Arch']}",
              f" Host:              {c['Host']}", ""]
    server = info.get("Server")
    if server:
        lines_ += ["Server:", " Engine:", f"  Version:          {server.get('Version', '')}",
                   f"  API version:      {server.get('ApiVersion', '')} "
                   f"(minimum version {server.get('MinAPIVersion', '')})",
                   f"  Git commit:       {server.get('GitCommit', '')}",
                   f"  Built:            {server.get('BuildTime', '')}",
                   f"  OS/Arch:          {server.get('Os', '')}/{server.get('Arch', '')}",
                   f"  Kernel version:   {server.get('KernelVersion', '')}"]
    _emit(out, lines_)
    if "ServerError" in info:
        from workbench.cli.render import error_text

        out.error(error_text(info["ServerError"]))
        return 1
    return 0


_INFO_FIELDS = (("Containers", "Containers"), (" Running", "ContainersRunning"),
                (" Paused", "ContainersPaused"), (" Stopped", "ContainersStopped"), ("Images", "Images"),
                ("Server Version", "ServerVersion"), ("Storage Driver", "Driver"),
                ("Logging Driver", "LoggingDriver"), ("Cgroup Driver", "CgroupDriver"),
                ("Cgroup Version", "CgroupVersion"), ("Default Runtime", "DefaultRuntime"),
                ("Kernel Version", "KernelVersion"), ("Operating System", "OperatingSystem"),
                ("OSType", "OSType"), ("Architecture", "Architecture"), ("CPUs", "NCPU"),
                ("Total Memory", "MemTotal"), ("Name", "Name"), ("ID", "ID"),
                ("Docker Root Dir", "DockerRootDir"))


def info(args: argparse.Namespace, doc: dict[str, Any], out: Output) -> int:
    if args.format:
        out.line(Template(args.format).render(doc))
        return 0
    out.line("Server:")
    for label, key in _INFO_FIELDS:
        value = doc.get(key, "")
        if key == "MemTotal" and isinstance(value, int):
            value = _binary_size(value)
        out.line(f" {label}: {value}")
    for warning in doc.get("Warnings") or ():
        out.error(warning)
    return 0


def _binary_size(n: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{units[i]}"
