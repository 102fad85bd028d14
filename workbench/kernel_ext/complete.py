"""Tab completion for `%docker`: verbs and flags from THE parser, image and container names live.

Names come from the engine (cached for a few seconds), so `%docker run bu<TAB>` offers local image
tags and `%docker logs <TAB>` the containers. IPython splits its completion token at `:` and `/`,
so candidates are returned relative to that token (`busybox:la<TAB>` → `latest`).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["complete", "install", "uninstall"]

_IMAGE_COMMANDS = {"container_run", "container_create", "image_history", "image_tag", "image_rm", "image_push",
                   "image_save", "image_inspect", "image_pull"}
_FIRST_ONLY = {"container_run", "container_create"}
_NO_NAMES = {"container_ls", "container_prune"}
_parser: argparse.ArgumentParser | None = None


def _tree() -> argparse.ArgumentParser:
    global _parser
    if _parser is None:
        from workbench.cli.parser import build_parser

        _parser = build_parser()
    return _parser


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _takes_value(p: argparse.ArgumentParser, flag: str) -> bool:
    for action in p._actions:
        if flag in action.option_strings:
            return action.nargs != 0
    return False


def _flags(p: argparse.ArgumentParser) -> list[str]:
    return sorted({s for a in p._actions for s in a.option_strings})


def _image_names(session: Any) -> list[str]:
    def fetch() -> list[str]:
        out = []
        for image in session.client.images.list():
            out.extend(image.tags)
        return sorted(set(out))
    return session.cached_names("images", fetch)


def _container_names(session: Any) -> list[str]:
    def fetch() -> list[str]:
        return sorted(c.name for c in session.client.containers.list(all=True) if c.name)
    return session.cached_names("containers", fetch)


def candidates(words: list[str], current: str, session: Any) -> list[str]:
    """Completions of `current` after the magic's earlier `words`."""
    parser = _tree()
    rest: list[str] = []
    for i, word in enumerate(words):
        subs = _subparsers(parser)
        if word in subs:
            parser = subs[word]
        elif not word.startswith("-") or rest:
            rest = words[i:]
            break
        elif _takes_value(parser, word):
            continue
    subs = _subparsers(parser)
    if subs and not rest and not current.startswith("-"):
        return sorted(k for k in subs if k.startswith(current))
    if current.startswith("-"):
        return [f for f in _flags(parser) if f.startswith(current)]
    if rest and rest[-1].startswith("-") and _takes_value(parser, rest[-1]):
        return []  # completing an option's value
    command = parser.get_default("command") or ""
    positionals = [w for j, w in enumerate(rest) if not w.startswith("-")
                   and not (j and rest[j - 1].startswith("-") and _takes_value(parser, rest[j - 1]))]
    if command in _FIRST_ONLY and positionals:
        return []
    if command in _IMAGE_COMMANDS:
        names = _image_names(session)
    elif command == "inspect":
        names = _image_names(session) + _container_names(session)
    elif command.startswith("container_") and command not in _NO_NAMES:
        names = _container_names(session)
    else:
        return []
    return [n for n in names if n.startswith(current)]


def complete(shell: Any, event: Any) -> list[str]:
    """IPython `complete_command` hook for `%docker` and `%%docker`."""
    from workbench.kernel_ext.session import current

    session = current()
    if session is None:
        return []
    text = event.text_until_cursor
    parts = text.split()
    if not parts or not parts[0].lstrip("%") == "docker":
        return []
    current_word = "" if text.endswith((" ", "\t")) else parts[-1]
    earlier = parts[1:] if current_word == "" else parts[1:-1]
    found = candidates(earlier, current_word, session)
    offset = len(current_word) - len(event.symbol or "")
    return [c[offset:] for c in found] if offset > 0 else found


def install(shell: Any) -> None:
    shell.set_hook("complete_command", complete, str_key="%docker")
    shell.set_hook("complete_command", complete, str_key="%%docker")


def uninstall(shell: Any) -> None:
    dispatcher = getattr(shell, "strdispatchers", {}).get("complete_command")
    if dispatcher is None:
        return
    for key in ("%docker", "%%docker"):
        chain = dispatcher.strs.get(key)
        if chain is not None:
            chain.chain = [(p, f) for p, f in chain.chain if getattr(f, "__func__", f) is not complete]
