"""THE argument parser: docker's verbs and flags, shared by the `workbench` CLI and the `%docker` magics.

`parse(argv)` returns an `argparse.Namespace` whose `command` is a canonical name
(`image_ls` for `images`, `image ls` and `image list`; `container_rm` for `rm` ...), and never exits:
bad usage raises `UsageError` (exit status 125, as docker's), `--help` raises `HelpRequested` carrying
the help text. The verbs and their flags are in `verbs.py`; the raising parser in `_argparse.py`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from workbench.cli import verbs
from workbench.cli._argparse import PROG, HelpRequested, Parser, UsageError, VersionAction, add_format
from workbench.cli._argparse import group as _group
from workbench.cli._argparse import verb as _verb

__all__ = ["PROG", "HelpRequested", "Parser", "UsageError", "build_parser", "commands", "parse"]


def build_parser() -> Parser:
    """The whole tree: top-level verbs plus the `image`, `container`, `network`, `volume`, `system`,
    `registry` and `engine` groups."""
    parser = Parser(prog=PROG, description="A notebook-first container engine speaking the Docker API")
    parser.add_argument("-H", "--host", help="Engine address (unix:///PATH or tcp://HOST:PORT); "
                        "default $WORKBENCH_HOST, else unix:///run/workbench/engine.sock")
    parser.add_argument("--config", help="Location of client config files (default $DOCKER_CONFIG, "
                        "else ~/.workbench)")
    parser.add_argument("-D", "--debug", action="store_true", help="Show tracebacks of errors")
    parser.add_argument("-v", "--version", action=VersionAction, help="Print version information and quit")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True, parser_class=Parser)
    verbs.image_verbs(sub, prefix=False)
    verbs.container_verbs(sub, prefix=False)
    p = _verb(sub, "inspect", "inspect", "Return low-level information on objects")
    add_format(p, short=True)
    p.add_argument("--type", choices=["container", "image", "network", "volume"], help="Type to inspect")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes for containers")
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    p = _verb(sub, "login", "login", "Log in to a registry")
    p.add_argument("-u", "--username", help="Username")
    p.add_argument("-p", "--password", help="Password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    p.add_argument("server", nargs="?", help="Registry (default: Docker Hub)")
    p = _verb(sub, "logout", "logout", "Log out from a registry")
    p.add_argument("server", nargs="?", help="Registry (default: Docker Hub)")
    add_format(_verb(sub, "version", "version", "Show the client and engine version information"), short=True)
    add_format(_verb(sub, "info", "info", "Display system-wide information"), short=True)
    verbs.image_verbs(_group(sub, "image", "Manage images"), prefix=True)
    verbs.container_verbs(_group(sub, "container", "Manage containers"), prefix=True)
    verbs.network_verbs(_group(sub, "network", "Manage networks"))
    verbs.volume_verbs(_group(sub, "volume", "Manage volumes"))
    verbs.system_verbs(_group(sub, "system", "Manage the engine"))
    verbs.registry_verbs(_group(sub, "registry", "Run and browse OCI registries"))
    verbs.engine_verbs(_group(sub, "engine", "Start, stop and check the engine daemon"))
    return parser


_PARSER: Parser | None = None


def parse(argv: Sequence[str], *, parser: Parser | None = None) -> argparse.Namespace:
    """Parse a command line (without the program name) into a Namespace with `command` set.

    Raises:
        UsageError: unknown verb or flag, a missing argument (exit status 125).
        HelpRequested: `--help`/`--version`; `.text` is the text to show.
    """
    global _PARSER
    if parser is None:
        if _PARSER is None:
            _PARSER = build_parser()
        parser = _PARSER
    args, extra = parser.parse_known_args(list(argv))
    prog = getattr(args, "prog", PROG)
    if extra:
        first = extra[0]
        raise UsageError(f"unknown flag: {first}" if first.startswith("-") else
                         f"{prog} got an unexpected argument: {first}", prog=prog)
    if not getattr(args, "command", None):
        raise UsageError("missing command", prog=PROG)
    return args


def commands() -> list[str]:
    """Every canonical command name the parser can produce."""
    found: set[str] = set()

    def walk(p: argparse.ArgumentParser) -> None:
        if p.get_default("command"):
            found.add(p.get_default("command"))
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    walk(child)

    walk(_PARSER or build_parser())
    return sorted(found)
