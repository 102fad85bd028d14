"""Text output like docker's: tables, human sizes and times, inspect JSON, streamed output.

`render(command, args, result, output)` writes what `commands.COMMANDS[command]` returned and gives the
exit status. Tables align like docker's tabwriter (min width 10, padding 3); sizes use three
significant digits in decimal units (`4.26MB`); times read `2 minutes ago`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, TextIO

from workbench.cli import tables
from workbench.cli.commands import Outcome
from workbench.cli.gotemplate import Template, go_str
from workbench.cli.progress import ProgressPrinter
from workbench.client._wire import from_daemon
from workbench.errors import WorkbenchError
from workbench.oci.streams import STDERR, LogFrame, ProgressEvent

__all__ = ["RENDERERS", "Output", "ago", "error_text", "go_str", "human_size", "render", "table"]

human_size = tables.human_size
ago = tables.ago
table = tables.table


@dataclass
class Output:
    """Where output goes: text streams, the binary stdout for raw bytes, and whether it is a terminal."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    binary: IO[bytes] | None = None
    tty: bool | None = None
    err_tty: bool | None = None

    def __post_init__(self) -> None:
        if self.binary is None:
            self.binary = getattr(self.out, "buffer", None)
        if self.tty is None:
            self.tty = _isatty(self.out)
        if self.err_tty is None:
            self.err_tty = _isatty(self.err)

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def error(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def write_bytes(self, data: bytes, stream: int = 1) -> None:
        target = self.err if stream == STDERR else self.out
        raw = getattr(target, "buffer", None) if target is not self.out else self.binary
        if raw is not None:
            target.flush()
            raw.write(data)
            raw.flush()
        else:
            target.write(data.decode("utf-8", "replace"))
            target.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def error_text(err: BaseException) -> str:
    """`Error response from daemon: <message>` for the daemon's errors, the message otherwise."""
    message = str(err) or type(err).__name__
    return f"Error response from daemon: {message}" if from_daemon(err) else message


# -- generic shapes --------------------------------------------------------------------------------
def _outcomes(results: Sequence[Outcome], out: Output, show: Callable[[Outcome], Iterable[str]]) -> int:
    status = 0
    for item in results:
        if item.error is not None:
            out.error(error_text(item.error))
            status = 1
        else:
            for text in show(item):
                out.line(text)
    return status


def _names(args: argparse.Namespace, results: Sequence[Outcome], out: Output) -> int:
    return _outcomes(results, out, lambda o: [o.target])


def _inspect(args: argparse.Namespace, docs: list[dict[str, Any]], out: Output) -> int:
    fmt = getattr(args, "format", None)
    if fmt:
        template = Template(fmt)
        for doc in docs:
            out.line(template.render(doc))
    else:
        out.line(json.dumps(docs, indent=4, ensure_ascii=False) if docs else "[]")
    return 0


def _text(value: Any, out: Output) -> int:
    if value is not None:
        out.line(str(value))
    return 0


def _prune(report: Any, out: Output, heading: str) -> int:
    if report.deleted or report.untagged:
        out.line(heading)
        for item in report.untagged:
            out.line(f"untagged: {item}")
        for item in report.deleted:
            out.line(("deleted: " if heading.startswith("Deleted Images") else "") + item)
        out.line()
    out.line(f"Total reclaimed space: {human_size(report.space_reclaimed)}")
    return 0


def _bytes_out(args: argparse.Namespace, stream: Any, out: Output) -> int:
    target = getattr(args, "output", None)
    if target:
        with stream, open(target, "wb") as f:
            stream.copy_to(f)
        return 0
    if out.tty:
        stream.close()
        out.error("cowardly refusing to write a tar archive to a terminal: use the -o flag or redirect")
        return 1
    with stream:
        for chunk in stream:
            out.write_bytes(chunk)
    return 0


def _frames(frames: Iterable[LogFrame], out: Output) -> None:
    for frame in frames:
        out.write_bytes(frame.data, frame.stream)


def _session(session: Any, out: Output) -> int:
    printer = ProgressPrinter(out.err, tty=bool(out.err_tty))
    for event in session:
        if isinstance(event, LogFrame):
            out.write_bytes(event.data, event.stream)
        elif isinstance(event, ProgressEvent):
            printer.show(event)
        else:
            out.error(event.text)
    return session.exit_code if session.exit_code is not None else 0


# -- per command -----------------------------------------------------------------------------------
def _run(args: argparse.Namespace, session: Any, out: Output) -> int:
    code = _session(session, out)
    if getattr(session, "detach", False) and session.container_id:
        out.line(session.container_id)
    return code


def _pull(args: argparse.Namespace, stream: Any, out: Output) -> int:
    quiet = getattr(args, "quiet", False)
    printer = ProgressPrinter(out.out, tty=bool(out.tty))
    with stream:
        for event in stream:
            if not quiet:
                printer.show(event)
    if args.command == "image_pull":
        out.line(tables.full_reference(args.reference))
    return 0


def _build(args: argparse.Namespace, stream: Any, out: Output) -> int:
    printer = ProgressPrinter(out.out, tty=bool(out.tty))
    with stream:
        for event in stream:
            if not args.quiet:
                printer.show(event)
    if args.quiet and stream.image_id:
        out.line(stream.image_id)
    return 0


def _image_rm(args: argparse.Namespace, results: Sequence[Outcome], out: Output) -> int:
    def lines(o: Outcome) -> list[str]:
        return [f"Untagged: {i.untagged}" if i.untagged else f"Deleted: {i.deleted}" for i in o.value]
    return _outcomes(results, out, lines)


def _wait(args: argparse.Namespace, results: Sequence[Outcome], out: Output) -> int:
    return _outcomes(results, out, lambda o: [str(o.value.status_code)])


def _start(args: argparse.Namespace, result: Any, out: Output) -> int:
    if isinstance(result, list):
        return _names(args, result, out)
    return _session(result, out)


def _create(args: argparse.Namespace, session: Any, out: Output) -> int:
    _session(session, out)
    out.line(session.container_id or "")
    return 0


def _logs(args: argparse.Namespace, stream: Any, out: Output) -> int:
    with stream:
        _frames(stream, out)
    return 0


def _load(args: argparse.Namespace, names: list[str], out: Output) -> int:
    for name in names:
        out.line(f"Loaded image ID: {name}" if name.startswith("sha256:") else f"Loaded image: {name}")
    return 0


def _cp(args: argparse.Namespace, result: Any, out: Output) -> int:
    if hasattr(result, "copy_to"):
        with result:
            for chunk in result:
                out.write_bytes(chunk)
        return 0
    if not args.quiet:
        out.error(f"Successfully copied {human_size(result.size)} to {result.dest}")
    return 0


def _login(args: argparse.Namespace, result: Any, out: Output) -> int:
    out.line(result.status or "Login Succeeded")
    return 0


def _logout(args: argparse.Namespace, result: tuple[str, bool], out: Output) -> int:
    registry, removed = result
    out.line(f"Removing login credentials for {registry}" if removed else f"Not logged in to {registry}")
    return 0


def _system_prune(args: argparse.Namespace, result: dict[str, Any], out: Output) -> int:
    total = 0
    headings = {"containers": "Deleted Containers:", "networks": "Deleted Networks:",
                "volumes": "Deleted Volumes:", "images": "Deleted Images:"}
    for key, report in result.items():
        if report.deleted or report.untagged:
            out.line(headings[key])
            for item in (*report.untagged, *report.deleted):
                out.line(item)
            out.line()
        total += report.space_reclaimed
    out.line(f"Total reclaimed space: {human_size(total)}")
    return 0


def _gc(args: argparse.Namespace, result: Any, out: Output) -> int:
    verb = "would remove" if getattr(result, "dry_run", False) else "removed"
    for blob in getattr(result, "removed_blobs", ()):
        out.line(f"{verb} blob {blob}")
    for upload in getattr(result, "removed_uploads", ()):
        out.line(f"{verb} upload {upload}")
    n, freed = len(getattr(result, "removed_blobs", ())), human_size(getattr(result, "freed_bytes", 0))
    kept = getattr(result, "kept_blobs", 0)
    if getattr(result, "dry_run", False):
        out.line(f"{n} blobs would be removed, {freed} would be freed, {kept} kept")
    else:
        out.line(f"{n} blobs removed, {freed} freed, {kept} kept")
    return 0


Renderer = Callable[[argparse.Namespace, Any, Output], int]

RENDERERS: dict[str, Renderer] = {
    "image_ls": tables.images, "image_history": tables.history, "container_ls": tables.containers,
    "container_top": tables.top, "container_diff": tables.changes, "container_port": tables.ports,
    "network_ls": tables.networks, "volume_ls": tables.volumes, "system_df": tables.disk_usage,
    "version": tables.version, "info": tables.info, "registry_ls": tables.lines,
    "image_inspect": _inspect, "container_inspect": _inspect, "network_inspect": _inspect,
    "volume_inspect": _inspect, "inspect": _inspect,
    "image_rm": _image_rm, "container_wait": _wait, "container_start": _start,
    "container_stop": _names, "container_kill": _names, "container_restart": _names,
    "container_pause": _names, "container_unpause": _names, "container_rm": _names,
    "network_rm": _names, "volume_rm": _names,
    "image_prune": lambda a, r, o: _prune(r, o, "Deleted Images:"),
    "container_prune": lambda a, r, o: _prune(r, o, "Deleted Containers:"),
    "network_prune": lambda a, r, o: _prune(r, o, "Deleted Networks:"),
    "volume_prune": lambda a, r, o: _prune(r, o, "Deleted Volumes:"),
    "system_prune": _system_prune,
    "image_pull": _pull, "image_push": _pull, "image_build": _build, "image_load": _load,
    "image_save": _bytes_out, "container_export": _bytes_out, "container_cp": _cp,
    "container_run": _run, "container_create": _create, "container_logs": _logs,
    "container_exec": lambda a, r, o: _session(r, o), "container_attach": lambda a, r, o: _session(r, o),
    "login": _login, "logout": _logout, "registry_gc": _gc,
    "volume_create": lambda a, r, o: _text(r.name, o),
}


def render(command: str, args: argparse.Namespace, result: Any, out: Output) -> int:
    """Write `result` of `command` as docker's CLI would; return the exit status."""
    renderer = RENDERERS.get(command)
    if renderer is not None:
        return renderer(args, result, out)
    if isinstance(result, bool):
        return 0 if result else 1
    if isinstance(result, int):
        return result  # engine and registry entry points return their exit status
    if isinstance(result, WorkbenchError):
        out.error(error_text(result))
        return 1
    return _text(result, out)

