"""A small subset of Go's text/template, enough for docker's `--format`.

Supported: `{{.}}`, `{{.A.B}}`, functions `json`, `index`, `join`, `lower`, `upper`, `title`,
`len`, `println`, `{{range .X}}...{{end}}`, `{{if .X}}...{{else}}...{{end}}`, and docker's
`table` prefix (a header row from the field names, columns aligned like docker's). Values print as
Go prints them: `true`, `map[k:v]`, `[a b]`, `<no value>` for a missing field.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from workbench.errors import InvalidArgument

__all__ = ["Template", "go_str"]

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


def go_str(value: Any) -> str:
    """Format a value the way Go's fmt `%v` does for JSON-decoded data."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_inner(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_inner(v) for v in value) + "]"
    return str(value)


def _inner(value: Any) -> str:
    return "<nil>" if value is None else go_str(value)


def _field(value: Any, path: str) -> Any:
    for part in path.split(".")[1:]:
        if not part:
            continue
        if isinstance(value, dict):
            value = value.get(part)
        else:
            value = getattr(value, part, None)
        if value is None:
            return None
    return value


class Template:
    """A parsed template: `render(data)` for one object."""

    def __init__(self, text: str) -> None:
        text = text.replace("\\t", "\t").replace("\\n", "\n")
        self.table = text.startswith("table ") or text == "table"
        if self.table:
            text = text[len("table"):].lstrip(" ")
        self.text = text
        self._nodes, rest = self._parse(self._tokens(text), 0, ())
        if rest is not None:
            raise InvalidArgument(f"template: unexpected {{{{{rest}}}}}")

    @staticmethod
    def _tokens(text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        pos = 0
        for m in _ACTION.finditer(text):
            if m.start() > pos:
                out.append(("text", text[pos:m.start()]))
            out.append(("action", m.group(1)))
            pos = m.end()
        if pos < len(text):
            out.append(("text", text[pos:]))
        return out

    def _parse(self, tokens: list[tuple[str, str]], i: int, stop: tuple[str, ...]) -> tuple[list[Any], Any]:
        nodes: list[Any] = []
        self._pos = i
        while self._pos < len(tokens):
            kind, value = tokens[self._pos]
            self._pos += 1
            if kind == "text":
                nodes.append(("text", value))
                continue
            word = value.split(" ", 1)[0]
            if word in stop:
                return nodes, word
            if word in ("range", "if"):
                expr = value[len(word):].strip()
                body, end = self._parse(tokens, self._pos, ("end", "else"))
                other: list[Any] = []
                if end == "else":
                    other, end = self._parse(tokens, self._pos, ("end",))
                if end != "end":
                    raise InvalidArgument(f"template: unexpected EOF in {word}")
                nodes.append((word, expr, body, other))
            elif word in ("end", "else"):
                raise InvalidArgument(f"template: unexpected {{{{{word}}}}}")
            else:
                nodes.append(("expr", value))
        return nodes, None

    def header(self, titles: dict[str, str] | None = None) -> str:
        """The `table` header: each field's title (docker's upper-case names) in place of its action."""
        def title(m: re.Match[str]) -> str:
            name = re.match(r"(?:\w+\s+)?\.(\w+)", m.group(1))
            if not name:
                return ""
            return (titles or {}).get(name.group(1)) or _title(name.group(1))
        return _ACTION.sub(title, self.text)

    def render(self, data: Any) -> str:
        return "".join(self._run(self._nodes, data))

    def _run(self, nodes: list[Any], dot: Any) -> list[str]:
        out: list[str] = []
        for node in nodes:
            if node[0] == "text":
                out.append(node[1])
            elif node[0] == "expr":
                out.append(go_str(self._eval(node[1], dot)) if not _is_text(node[1]) else
                           str(self._eval(node[1], dot)))
            elif node[0] == "if":
                out.extend(self._run(node[2] if _truthy(self._eval(node[1], dot)) else node[3], dot))
            else:  # range
                items = self._eval(node[1], dot)
                seq = list(items.values()) if isinstance(items, dict) else list(items or ())
                if not seq:
                    out.extend(self._run(node[3], dot))
                for item in seq:
                    out.extend(self._run(node[2], item))
        return out

    def _eval(self, expr: str, dot: Any) -> Any:
        try:
            words = shlex.split(expr)
        except ValueError as err:
            raise InvalidArgument(f"template: bad action {{{{{expr}}}}}: {err}") from err
        if not words:
            return ""
        args = [self._arg(w, dot) for w in words[1:]]
        fn = words[0]
        if fn.startswith("."):
            return _field(dot, fn)
        if fn == "json":
            return json.dumps(args[0] if args else dot, separators=(",", ":"))
        if fn == "index":
            value = args[0]
            for key in args[1:]:
                value = value.get(key) if isinstance(value, dict) else (
                    value[int(key)] if isinstance(value, list) else None)
            return value
        if fn == "join":
            return str(args[1]).join(go_str(v) for v in args[0] or ())
        if fn in ("lower", "upper", "title"):
            return getattr(str(args[0]), fn)()
        if fn == "len":
            return len(args[0] or ())
        if fn == "println":
            return " ".join(go_str(a) for a in args) + "\n"
        raise InvalidArgument(f'template: function "{fn}" not defined')

    @staticmethod
    def _arg(word: str, dot: Any) -> Any:
        if word.startswith("."):
            return _field(dot, word)
        return word


def _is_text(expr: str) -> bool:
    return expr.split(" ", 1)[0] in ("json", "join", "lower", "upper", "title", "println")


def _truthy(value: Any) -> bool:
    return bool(value) and value != "<no value>"


def _title(name: str) -> str:
    special = {"ID": "CONTAINER ID", "CreatedSince": "CREATED", "RunningFor": "CREATED",
               "CreatedAt": "CREATED AT"}
    if name in special:
        return special[name]
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).upper()
