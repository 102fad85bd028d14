"""`workbench` entry point: parse → command → render, with docker's exit statuses.

0 success; 1 an error (the daemon's printed as `Error response from daemon: <message>`); 125 bad usage
or a failure of `run` itself; 126/127 a command that cannot be run; otherwise `run`'s and `exec`'s
own exit code; 130 interrupted.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from workbench.cli.parser import HelpRequested, UsageError, parse
from workbench.errors import WorkbenchError

__all__ = ["main"]

_PRUNE = {
    "container_prune": "WARNING! This will remove all stopped containers.",
    "network_prune": "WARNING! This will remove all custom networks not used by at least one container.",
    "volume_prune": "WARNING! This will remove anonymous local volumes not used by at least one container.",
    "image_prune": "WARNING! This will remove all dangling images.",
    "system_prune": "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at "
                    "least one container\n  - all dangling images\n  - unused build cache",
}
_INTERACTIVE = ("container_run", "container_exec", "container_start", "container_attach")


def _prompt(text: str, secret: bool) -> str:
    if secret:
        return getpass.getpass(text)
    sys.stderr.write(text)
    sys.stderr.flush()
    return sys.stdin.readline().strip()


def _confirm(args: Any) -> bool:
    """docker's prune prompt; `-f` skips it."""
    if getattr(args, "force", True):
        return True
    warning = _PRUNE[args.command]
    if args.command == "image_prune" and args.all:
        warning = "WARNING! This will remove all images without at least one container associated to them."
    sys.stderr.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


@contextlib.contextmanager
def _raw_terminal(args: Any) -> Iterator[None]:
    """Put the terminal in raw mode for `-it`, and restore it afterwards."""
    wants = args.command in _INTERACTIVE and getattr(args, "tty", False) and \
        getattr(args, "interactive", False)
    if not wants or not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _stdin() -> Any:
    stdin = getattr(sys.stdin, "buffer", None)
    return stdin


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `workbench` command line; return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse(argv)
    except HelpRequested as shown:
        sys.stdout.write(shown.text)
        return 0
    except UsageError as err:
        sys.stderr.write(f"{err}\n{err.hint}\n")
        return err.exit_code
    if args.command in _PRUNE and not _confirm(args):
        return 0
    args.stdin = _stdin()
    args.prompt = _prompt if sys.stdin is not None and sys.stdin.isatty() else None
    try:
        return _execute(args)
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141


def _execute(args: Any) -> int:
    from workbench.cli.commands import COMMANDS, PartialResult
    from workbench.cli.render import Output, error_text, render
    from workbench.cli.sessions import StatusError
    from workbench.client import Client

    output = Output()
    try:
        client = Client(args.host, config_dir=args.config)
    except WorkbenchError as err:
        output.error(error_text(err))
        return 1
    try:
        with _raw_terminal(args):
            result = COMMANDS[args.command](client, args)
            return render(args.command, args, result, output)
    except PartialResult as err:
        render(args.command, args, err.found, output)
        for item in err.errors:
            output.error(error_text(item))
        return 1
    except StatusError as err:
        _debug(args)
        output.error(error_text(err))
        return err.exit_code
    except UsageError as err:
        output.error(f"{err}\n{err.hint}")
        return err.exit_code
    except WorkbenchError as err:
        _debug(args)
        output.error(error_text(err))
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        client.close()


def _debug(args: Any) -> None:
    if getattr(args, "debug", False):
        import traceback

        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
