"""The argparse plumbing under `parser.py`: a parser that raises instead of exiting, and helpers."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from workbench.errors import InvalidArgument

__all__ = ["PROG", "HelpRequested", "Parser", "UsageError", "VersionAction", "add_filters", "add_force",
           "add_format", "group", "verb", "Sub"]

PROG = "workbench"


class UsageError(InvalidArgument):
    """The command line is wrong. `prog` names the (sub)command for a `--help` hint."""

    exit_code = 125

    def __init__(self, message: str, *, prog: str = PROG) -> None:
        super().__init__(message)
        self.prog = prog

    @property
    def hint(self) -> str:
        return f"See '{self.prog} --help'."


class HelpRequested(UsageError):
    """`--help` (or `--version`) was given: `text` is what to show; not a failure."""

    exit_code = 0

    def __init__(self, text: str, *, prog: str = PROG) -> None:
        super().__init__(text, prog=prog)
        self.text = text


class _HelpAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kw: Any) -> None:
        kw.setdefault("help", "Print usage")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        raise HelpRequested(parser.format_help(), prog=parser.prog)


class VersionAction(_HelpAction):
    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        from workbench import __version__

        raise HelpRequested(f"Workbench version {__version__}\n", prog=parser.prog)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing and exiting."""

    def __init__(self, *args: Any, help_short: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("add_help", False)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.add_argument(*(("-h", "--help") if help_short else ("--help",)), action=_HelpAction)

    def error(self, message: str) -> NoReturn:
        match = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if match:
            message = f"'{match.group(1)}' is not a {self.prog} command."
        raise UsageError(message, prog=self.prog)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise UsageError((message or "").strip() or f"exit status {status}", prog=self.prog)
        raise HelpRequested(message or "", prog=self.prog)


Sub = Any  # argparse's private _SubParsersAction


def verb(sub: Sub, name: str, command: str, help: str, *, aliases: Sequence[str] = (),
          help_short: bool = True) -> Parser:
    p: Parser = sub.add_parser(name, aliases=list(aliases), help=help, description=help,
                               help_short=help_short)
    p.set_defaults(command=command, prog=p.prog)
    return p


def group(sub: Sub, name: str, help: str, *, aliases: Sequence[str] = ()) -> Sub:
    p: Parser = sub.add_parser(name, aliases=list(aliases), help=help, description=help)
    return p.add_subparsers(dest=f"{name}_verb", metavar="COMMAND", required=True, parser_class=Parser)


def add_filters(p: Parser) -> None:
    p.add_argument("-f", "--filter", action="append", default=[], dest="filter", metavar="FILTER",
                   help="Filter output based on conditions provided (key=value)")


def add_format(p: Parser, *, short: bool = False) -> None:
    flags = ("-f", "--format") if short else ("--format",)
    p.add_argument(*flags, dest="format", help="Format output using a Go-style template ({{.Field}}, {{json .}})")


def add_force(p: Parser, help: str = "Do not prompt for confirmation") -> None:
    p.add_argument("-f", "--force", action="store_true", help=help)


# -- images -----------------------------------------------------------------------------------------
