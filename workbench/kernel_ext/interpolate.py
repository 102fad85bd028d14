"""Python values in `%docker` lines: `{expr}`, `$name` and `${name}`, split like a shell.

The line is split with `shlex` *after* the values are put in, and each value stays one argument
whatever it contains (spaces, quotes, `;`), so nothing a variable holds can turn into extra flags or
shell syntax. A value that is a list or tuple and stands alone as a word becomes several arguments.

- `{expr}`: any Python expression in the caller's namespace; if it fails to evaluate, the text is
  left as written (IPython's rule), so `{a,b}` in a container's shell command survives.
- `$name`, `${name}`: a variable; left as written when no such variable exists (`$HOME` goes to the
  container's shell). `$$` is a literal `$`.
- `{{ ... }}` is left alone, so docker's Go templates (`--format '{{.ID}}'`) need no escaping.

For a Dockerfile cell only `{name}` / `{name.attr}` of existing variables is replaced: `${VAR}` and
`$VAR` belong to the Dockerfile's own ARG/ENV expansion.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

__all__ = ["expand_dockerfile", "split"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTTED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\}")
_MARK = "\x00{}\x00"
_MARK_RE = re.compile("\x00(\\d+)\x00")
_MISSING = object()


def _eval(expr: str, ns: Mapping[str, Any]) -> Any:
    try:
        return eval(expr, ns if isinstance(ns, dict) else dict(ns))  # the user's own code, as IPython does
    except Exception:
        return _MISSING


def _close(text: str, start: int) -> int:
    """Index of the `}` matching the `{` at `start`, or -1."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _substitute(line: str, ns: Mapping[str, Any]) -> tuple[str, list[Any]]:
    out: list[str] = []
    values: list[Any] = []

    def mark(value: Any) -> None:
        out.append(_MARK.format(len(values)))
        values.append(value)

    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n:
            out.append(line[i:i + 2])
            i += 2
        elif line.startswith("{{", i):
            end = line.find("}}", i + 2)
            end = n if end == -1 else end + 2
            out.append(line[i:end])
            i = end
        elif c == "{":
            end = _close(line, i)
            value = _eval(line[i + 1:end], ns) if end > i + 1 else _MISSING
            if value is _MISSING:
                out.append(c)
                i += 1
            else:
                mark(value)
                i = end + 1
        elif c == "$" and line.startswith("$$", i):
            out.append("$")
            i += 2
        elif c == "$":
            braced = line.startswith("${", i)
            m = _NAME.match(line, i + (2 if braced else 1))
            if m and (not braced or line.startswith("}", m.end())) and m.group(0) in ns:
                mark(ns[m.group(0)])
                i = m.end() + (1 if braced else 0)
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out), values


def split(line: str, ns: Mapping[str, Any]) -> list[str]:
    """The magic's line → argv, with Python values put in (see the module docstring).

    Raises:
        ValueError: unbalanced quotes.
    """
    text, values = _substitute(line, ns)
    words: list[str] = []
    for token in shlex.split(text, posix=True):
        whole = _MARK_RE.fullmatch(token)
        if whole:
            value = values[int(whole.group(1))]
            if isinstance(value, list | tuple):
                words.extend(str(v) for v in value)
                continue
        words.append(_MARK_RE.sub(lambda m: str(values[int(m.group(1))]), token))
    return words


def expand_dockerfile(text: str, ns: Mapping[str, Any]) -> str:
    """Replace `{name}` / `{name.attr}` of existing variables in a Dockerfile cell; nothing else."""
    def repl(m: re.Match[str]) -> str:
        start = m.start()
        if start > 0 and text[start - 1] in "${":
            return m.group(0)
        head, *rest = m.group(1).split(".")
        if head not in ns:
            return m.group(0)
        value = ns[head]
        try:
            for attr in rest:
                value = getattr(value, attr)
        except AttributeError:
            return m.group(0)
        return str(value)

    return _DOTTED.sub(repl, text)
