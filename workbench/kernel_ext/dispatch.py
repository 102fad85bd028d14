"""`%docker ARGV`: parse with THE CLI parser, run the CLI's command function, present the result.

The verbs, flags and the data each verb returns are the CLI's (`workbench.cli.parser`,
`workbench.cli.commands`); this module only decides how a result looks in a notebook:

- listings (`images`, `ps`, `history`, `network ls`, `volume ls`, `registry ls`, `system df`, `top`,
  `diff`) return DataFrames with real dtypes (unless `-q`/`--format` asks for docker's text);
- `run`, `exec`, `start -a`, `attach` and `logs` stream output into the cell; run/exec return the
  exit code and raise `ContainerError` when it is not 0;
- `pull`/`push` show per-layer progress, `build` shows steps live (a `%%docker build` cell is the
  Dockerfile); builds and pulls are recorded in `workbench.lock`;
- everything else prints what the CLI would print, and fails the cell when the CLI would exit non-zero.

Notebook-only verbs: `pin`, `verify` (provenance) and `dashboard`.
"""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Any

from workbench.cli.commands import COMMANDS, Outcome, PartialResult
from workbench.cli.parser import HelpRequested, UsageError, parse
from workbench.errors import InvalidArgument, NotImplementedByEngine, WorkbenchError
from workbench.kernel_ext import frontend, provenance, streams
from workbench.kernel_ext.display import ExitCode
from workbench.kernel_ext.session import NotebookSession

__all__ = ["NOTEBOOK_VERBS", "execute"]

NOTEBOOK_VERBS = ("pin", "verify", "dashboard")
_IMAGE_ARG = {"container_run": "image", "container_create": "image"}
_FEATURES = {"image_pull": "pull images", "image_push": "push images", "container_exec": "exec",
             "container_commit": "commit containers", "container_cp": "copy files"}


class MagicUsageError(UsageError):
    """A usage error worded for the magic (`See '%docker run --help'.`)."""

    @property
    def hint(self) -> str:
        return f"See '{self.prog.replace('workbench', '%docker', 1)} --help'."


def _help(text: str) -> None:
    print(text.replace("usage: workbench", "usage: %docker"), end="" if text.endswith("\n") else "\n")


def _parse(argv: list[str], cell: str | None) -> Any:
    try:
        try:
            return parse(argv)
        except HelpRequested:
            raise
        except UsageError:
            if cell is None or "build" not in argv:
                raise
            return parse([*argv, "-"])  # `%%docker build -t x`: the cell is the Dockerfile, no context
    except HelpRequested:
        raise
    except UsageError as err:
        raise MagicUsageError(str(err), prog=err.prog) from None


def _unsupported(err: WorkbenchError, feature: str) -> WorkbenchError:
    text = str(err)
    if getattr(err, "status", 0) in (404, 405) and ("page not found" in text or "not allowed" in text) \
            or "is not available" in text:
        return NotImplementedByEngine(f"this engine cannot {feature} yet ({text})")
    return err


def execute(session: NotebookSession, argv: list[str], *, cell: str | None = None,
            ns: dict[str, Any] | None = None) -> Any:
    """Run one `%docker` command line (already split); return what the cell should show."""
    if not argv:
        argv = ["--help"]
    if argv[0] in NOTEBOOK_VERBS:
        return _notebook_verb(session, argv)
    try:
        args = _parse(argv, cell)
    except HelpRequested as shown:
        _help(shown.text)
        return None
    args.stdin = None
    args.prompt = None if frontend.headless() else _prompt
    if args.host or args.config:
        from workbench.client import Client

        client = Client(args.host or session.host, config_dir=args.config)
    else:
        client = session.client
    try:
        return _run(session, client, args, cell, ns or {})
    except WorkbenchError as err:
        err.debug = bool(args.debug)  # type: ignore[attr-defined]
        raise
    finally:
        if client is not session.client:
            client.close()
        session.forget_names()


def _prompt(text: str, secret: bool) -> str:
    """`login` without -u/-p in a live notebook: ask in the cell (the frontend allows stdin)."""
    import getpass

    return getpass.getpass(text) if secret else input(text)


def _notebook_verb(session: NotebookSession, argv: list[str]) -> Any:
    verb, rest = argv[0], argv[1:]
    if verb == "pin":
        return provenance.pin(session, rest)
    if verb == "verify":
        return provenance.verify(session, session.client, rest)
    from workbench.kernel_ext.widgets import dashboard

    return dashboard()


def _run(session: NotebookSession, client: Any, args: Any, cell: str | None, ns: dict[str, Any]) -> Any:
    command = args.command
    if cell is not None:
        _take_cell(args, cell, ns)
    if command == "image_build":
        return _build(session, client, args)
    if session.pinned and command in _IMAGE_ARG:
        setattr(args, _IMAGE_ARG[command], provenance.pinned_reference(session, getattr(args, _IMAGE_ARG[command])))
    presenter = _PRESENTERS.get(command)
    if presenter is None:
        if command in ("image_save", "container_export") and not getattr(args, "output", None):
            raise InvalidArgument(f"{command.split('_')[1]} writes a tar archive: give -o FILE in a notebook")
        if command == "engine_start":
            args.detach = True  # never run the daemon inside the kernel
        if command == "registry_serve":
            from workbench.kernel_ext.background import serve_registry

            return serve_registry(args)
    try:
        result = COMMANDS[command](client, args)
    except PartialResult as err:
        _cli_render(command, args, err.found)
        raise
    except WorkbenchError as err:
        if command in _FEATURES:
            raise _unsupported(err, _FEATURES[command]) from None
        raise
    if presenter is not None:
        return presenter(session, client, args, result)
    return _cli_default(command, args, result)


def _take_cell(args: Any, cell: str, ns: dict[str, Any]) -> None:
    """A cell body is the Dockerfile of `build`, or stdin of `run -i`, `exec -i`, `login --password-stdin`."""
    if args.command == "image_build":
        from workbench.kernel_ext.interpolate import expand_dockerfile

        if args.file not in (None, "-"):
            raise InvalidArgument("the cell is the Dockerfile: leave out -f")
        args.dockerfile_text = expand_dockerfile(cell, ns)
        if args.context != "-":
            args.file = "-"
        return
    if getattr(args, "interactive", False) or getattr(args, "password_stdin", False):
        args.stdin = io.BytesIO(cell.encode())
        return
    raise InvalidArgument("only `build` (Dockerfile), `run -i`/`exec -i` (stdin) and `login --password-stdin` "
                          "take a cell body")


# -- presenters ---------------------------------------------------------------------------------------
def _cli_render(command: str, args: Any, result: Any) -> int:
    from workbench.cli.render import Output, render

    return render(command, args, result, Output(out=sys.stdout, err=sys.stderr, tty=False, err_tty=False))


def _cli_default(command: str, args: Any, result: Any) -> Any:
    if isinstance(result, list) and result and all(isinstance(r, Outcome) for r in result):
        return _outcomes(command, args, result)
    if isinstance(result, list | dict | str) and command not in ("version", "info", "container_port"):
        if command.endswith("_inspect") or command == "inspect":
            return result[0] if len(result) == 1 else result
        return result
    status = _cli_render(command, args, result)
    if status:
        raise WorkbenchError(f"{command.replace('_', ' ')} failed (exit status {status})")
    return None


def _outcomes(command: str, args: Any, results: list[Outcome]) -> None:
    """Verbs on several objects: print what the CLI prints for the ones that worked, then raise the
    failures as one error (docker goes on past a failure, and so do we)."""
    from workbench.cli.render import Output, render

    render(command, args, [r for r in results if r.error is None],
           Output(out=sys.stdout, err=io.StringIO(), tty=False, err_tty=False))
    failed = [r.error for r in results if r.error is not None]
    if len(failed) == 1:
        raise failed[0]
    if failed:
        raise type(failed[0])("; ".join(str(e) for e in failed))


def _quiet_or_format(args: Any) -> bool:
    return bool(getattr(args, "quiet", False) or getattr(args, "format", None))


def _listing(make: Any) -> Any:
    def present(session: NotebookSession, client: Any, args: Any, result: Any) -> Any:
        if _quiet_or_format(args) or getattr(args, "verbose", False):
            _cli_render(args.command, args, result)
            return None
        return make(args, result)
    return present


def _frames() -> Any:
    from workbench import views

    return views


def _run_session(session: NotebookSession, client: Any, args: Any, result: Any) -> Any:
    image = getattr(args, "image", None)
    try:
        if args.command == "container_create" or getattr(result, "detach", False):
            result.run()
            return result.container_id
        if args.command == "container_exec":
            what = f"exec in {args.container}"
        else:
            what = f"container {getattr(args, 'name', None) or image}"
        return ExitCode(streams.session_output(result, what=what))
    finally:
        if image:
            with contextlib.suppress(WorkbenchError):
                provenance.record_use(client, session, image)


def _start(session: NotebookSession, client: Any, args: Any, result: Any) -> Any:
    if isinstance(result, list):
        return _outcomes(args.command, args, result)
    return ExitCode(streams.session_output(result, what=f"container {args.containers[0]}"))


def _logs(session: NotebookSession, client: Any, args: Any, result: Any) -> None:
    streams.follow_frames(result)


def _pull(session: NotebookSession, client: Any, args: Any, result: Any) -> Any:
    streams.transfer(result, "pull", args.reference, quiet=args.quiet)
    ref = args.reference if ("@" in args.reference or ":" in args.reference.rsplit("/", 1)[-1]) \
        else f"{args.reference}:latest"
    entry = provenance.record_pull(client, session, ref)
    frontend.publish(f"recorded {ref} = {entry['image_id']} in {session.lock_path.name}",
                     metadata={"workbench": {"provenance": entry}})
    return client.images.inspect(ref)


def _push(session: NotebookSession, client: Any, args: Any, result: Any) -> str:
    digest = streams.transfer(result, "push", args.reference, quiet=args.quiet)
    entry = provenance.record_push(session, client, args.reference, digest)
    frontend.publish(f"pushed {args.reference} as {entry.get('repo_digest') or digest}",
                     metadata={"workbench": {"provenance": entry}})
    return digest


def _build(session: NotebookSession, client: Any, args: Any) -> Any:
    from workbench.cli import transfer

    dockerfile = getattr(args, "dockerfile_text", None)
    if dockerfile is None:
        path = args.file or (f"{args.context}/Dockerfile" if args.context not in ("-", None) else None)
        try:
            dockerfile = open(path).read() if path else ""
        except OSError:
            dockerfile = ""
    if session.pinned and dockerfile:
        dockerfile = provenance.rewrite_from(session, dockerfile)
    if getattr(args, "dockerfile_text", None) is not None:
        args.stdin = io.BytesIO(dockerfile.encode())
        try:
            streams.check_dockerfile(dockerfile)
        except WorkbenchError as err:
            context = streams.dockerfile_context(dockerfile, getattr(err, "line", None), html=False)
            if context:
                frontend.publish(context, streams.dockerfile_context(dockerfile, err.line, html=True))
            raise
    try:
        stream = transfer.build(client, args)
    except WorkbenchError as err:
        raise _unsupported(err, "build images (POST /build)") from None
    title = f"build {', '.join(args.tag) or 'image'}"
    image_id, tracker = streams.build(stream, dockerfile, title, quiet=args.quiet)
    build_args = dict(a.partition("=")[::2] for a in args.build_arg)
    entries = provenance.record_build(client, session, list(args.tag), image_id, dockerfile,
                                      None if args.context == "-" else args.context, build_args)
    summary = ", ".join(args.tag) or image_id
    frontend.publish(f"recorded {summary} = {image_id} in {session.lock_path.name}",
                     metadata={"workbench": {"provenance": entries[0] if len(entries) == 1 else entries}})
    return client.images.inspect(image_id)


_PRESENTERS: dict[str, Any] = {
    "image_ls": _listing(lambda a, r: _frames().images_frame(r, digests=a.digests)),
    "container_ls": _listing(lambda a, r: _frames().containers_frame(r, size=a.size)),
    "image_history": _listing(lambda a, r: _frames().history_frame(r)),
    "network_ls": _listing(lambda a, r: _frames().networks_frame(r)),
    "volume_ls": _listing(lambda a, r: _frames().volumes_frame(r)),
    "registry_ls": _listing(lambda a, r: _frames().registry_frame(a.location, r)),
    "system_df": _listing(lambda a, r: _frames().disk_usage_frame(r)),
    "container_top": _listing(lambda a, r: _frames().top_frame(r)),
    "container_diff": _listing(lambda a, r: _frames().changes_frame(r)),
    "container_run": _run_session, "container_create": _run_session, "container_exec": _run_session,
    "container_attach": _start, "container_start": _start, "container_logs": _logs,
    "image_pull": _pull, "image_push": _push,
}
