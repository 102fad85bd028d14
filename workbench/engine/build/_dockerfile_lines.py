"""The Dockerfile line scanner: text → one raw node per instruction (pure, no IO).

`scan` reads the file as BuildKit's `frontend/dockerfile/parser` does: parser directives
(`# escape=`, `# syntax=`, `# check=`) only before anything else; `#` comment lines, also
between continuation lines; the escape character at the end of a line continues it (not when
itself escaped), empty continuation lines dropped with a warning; then per instruction word the
argument shape (JSON or shell form, `--flags`, ENV/LABEL pairs, ARG words) and, for RUN, COPY
and ADD in shell form (also under ONBUILD), the here-document bodies that follow the line.

`dockerfile.py` turns the `Node`s into checked `Instruction`s and stages; errors raised here are
`ParseError`s, which it reports with the file name and line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from workbench.engine.build.shell_words import Lexer, ShellWordError, is_space

__all__ = ["Directives", "Heredoc", "Node", "ParseError", "parse_heredoc_marker", "scan",
           "split_lines"]

_DIRECTIVES = ("syntax", "escape", "check")
_DIRECTIVE_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_WS_RE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC_RE = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$", re.DOTALL)
_HEREDOC_CMDS = ("ADD", "COPY", "RUN")


class ParseError(Exception):
    """Raised inside the parser; `parse` turns it into a positioned BuildError."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message, self.line = message, line


@dataclass(frozen=True, slots=True)
class Heredoc:
    """One here-document. `content` is the raw body: every line with its newline, tabs kept."""

    name: str
    content: str
    chomp: bool = False   # `<<-`: leading tabs are stripped from the body (see `data`)
    expand: bool = True   # False when any part of the name was quoted
    fd: int = 0           # `3<<EOF` → 3

    @property
    def data(self) -> str:
        """The body as it is used: with leading tabs removed when `chomp`."""
        return re.sub(r"(?m)^\t+", "", self.content) if self.chomp else self.content


@dataclass(slots=True)
class Node:
    """One instruction as scanned: the word, raw arguments and flags, heredoc bodies, lines."""

    word: str                       # the instruction word as written
    args: list[str]
    original: str
    flags: list[str]
    json_form: bool = False
    child: Node | None = None
    heredocs: list[Heredoc] = field(default_factory=list)
    legacy_kv: bool = False
    start: int = 0
    end: int = 0


class Directives:
    """Parser directives seen so far, and the escape character they set."""

    def __init__(self) -> None:
        self.done = False
        self.seen: dict[str, str] = {}
        self._set_escape("\\")

    def _set_escape(self, escape: str) -> None:
        e = re.escape(escape)
        self.escape = escape
        self._continuation = re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")

    def feed(self, line: str) -> None:
        if self.done:
            return
        if not line.startswith("#"):
            self.done = True
            return
        m = _DIRECTIVE_RE.match(line[1:].lstrip())
        key = m.group(1).lower() if m else ""
        if not m or key not in _DIRECTIVES:
            self.done = True
            return
        if key in self.seen:
            raise ParseError(f"only one {key} parser directive can be used")
        self.seen[key] = m.group(2)
        if key == "escape":
            if m.group(2) not in ("`", "\\"):
                raise ParseError(
                    f"invalid escape token '{m.group(2)}' does not match ` or \\")
            self._set_escape(m.group(2))

    def continuation(self, line: str) -> tuple[str, bool]:
        """Strip a trailing escape character; return (line, ends_here)."""
        m = self._continuation.search(line)
        if not m:
            return line, True
        return line[: m.start()] + (m.group(1) or ""), False


def split_lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _lstrip(s: str) -> str:
    i = 0
    while i < len(s) and is_space(s[i]):
        i += 1
    return s[i:]


def _is_comment(raw: str) -> bool:
    return _lstrip(raw.rstrip("\r\n")).startswith("#")


def scan(text: str, warnings: list[str]) -> tuple[list[Node], Directives]:
    d = Directives()
    lines = split_lines(text)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    nodes: list[Node] = []
    i, current = 0, 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        token = _lstrip(raw.rstrip("\r\n"))
        try:
            d.feed(token)
        except ParseError as err:
            raise ParseError(err.message, current + 1) from None
        token = "" if token.startswith("#") else token
        current += 1
        start = current
        line, done = d.continuation(token)
        if done and line == "":
            continue
        empty_continuation = False
        while not done and i < len(lines):
            raw = lines[i]
            i += 1
            part = raw.rstrip("\r\n")
            current += 1
            if _is_comment(raw):
                continue
            if not _lstrip(part):
                empty_continuation = True
                continue
            part, done = d.continuation(part)
            line += part
        if empty_continuation:
            warnings.append(f"Empty continuation line found in: {line}")
        try:
            node = _node_from_line(line, d)
        except ParseError as err:
            raise ParseError(err.message, start) from None
        node.start = start
        target = node.child if node.word.upper() == "ONBUILD" and node.child else node
        if target.word.upper() in _HEREDOC_CMDS and not target.json_form and "<<" in line:
            try:
                docs = _heredocs_from_line(line)
            except ParseError as err:
                raise ParseError(err.message, start) from None
            for doc in docs:
                body: list[str] = []
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    current += 1
                    end = raw.rstrip("\r\n")
                    if (end.lstrip("\t") if doc.chomp else end) == doc.name:
                        break
                    body.append(raw)
                else:
                    raise ParseError("unterminated heredoc", start)
                node.heredocs.append(Heredoc(doc.name, "".join(body), doc.chomp, doc.expand,
                                             doc.fd))
        node.end = current
        nodes.append(node)
    return nodes, d


def _node_from_line(line: str, d: Directives) -> Node:
    stripped = line.strip()
    parts = _WS_RE.split(stripped, maxsplit=1)
    word = parts[0]
    rest, flags = ("", [])
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1])
    rest = rest.strip()
    node = Node(word, [], line, flags)
    cmd = word.upper()
    if cmd in ("ADD", "COPY", "VOLUME"):
        node.args, node.json_form = _maybe_json_list(rest)
    elif cmd in ("CMD", "ENTRYPOINT", "RUN", "SHELL"):
        node.args, node.json_form = _maybe_json(rest)
    elif cmd in ("ENV", "LABEL"):
        node.args, node.legacy_kv = _name_val(rest, cmd, d.escape)
    elif cmd == "ARG":
        node.args = _words(rest, d.escape)
    elif cmd in ("EXPOSE", "FROM"):
        node.args = _WS_RE.split(rest) if rest else []
    elif cmd == "HEALTHCHECK":
        node.args, node.json_form = _health_args(rest)
    elif cmd in ("MAINTAINER", "STOPSIGNAL", "USER", "WORKDIR"):
        node.args = [rest] if rest else []
    elif cmd == "ONBUILD":
        if rest:
            node.child = _node_from_line(rest, d)
            node.args = [rest]
    return node


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """Split leading `--name=value` words (BuildKit's extractBuilderFlags) off the arguments."""
    words: list[str] = []
    word: list[str] = []
    phase, quote, blank_ok = "space", "", False
    pos, n = 0, len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == "space":
            if pos == n:
                break
            if is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = "word"
        if pos == n:
            w = "".join(word)
            if w != "--" and (blank_ok or w):
                words.append(w)
            break
        if phase == "word":
            if is_space(ch):
                phase = "space"
                w = "".join(word)
                if w == "--":
                    return line[pos:], words
                if blank_ok or w:
                    words.append(w)
                word, blank_ok = [], False
            elif ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
            elif ch == "\\":
                if pos + 1 < n:
                    pos += 1
                    word.append(line[pos])
            else:
                word.append(ch)
        else:
            if ch == quote:
                phase = "word"
            elif ch == "\\":
                if pos + 1 == n:
                    phase = "word"
                else:
                    pos += 1
                    word.append(line[pos])
            else:
                word.append(ch)
        pos += 1
    return "", words


def _words(rest: str, escape: str) -> list[str]:
    """BuildKit's parseWords: split on blanks, keep quotes and escapes for later processing."""
    words: list[str] = []
    word: list[str] = []
    phase, quote, blank_ok = "space", "", False
    pos, n = 0, len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == "space":
            if pos == n:
                break
            if is_space(ch):
                pos += 1
                continue
            phase = "word"
        if pos == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == "word":
            if is_space(ch):
                phase = "space"
                if blank_ok or word:
                    words.append("".join(word))
                word, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
        else:
            if ch == quote:
                phase = "word"
            if ch == escape and quote != "'":
                if pos + 1 == n:
                    phase = "word"
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
        pos += 1
    return words


def _name_val(rest: str, cmd: str, escape: str) -> tuple[list[str], bool]:
    words = _words(rest, escape)
    if not words:
        return [], False
    if "=" not in words[0]:
        parts = _WS_RE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ParseError(f"{cmd} must have two arguments")
        return [parts[0], parts[1]], True
    out: list[str] = []
    for w in words:
        if "=" not in w:
            raise ParseError(
                f'Syntax error - can\'t find = in "{w}". Must be of the form: name=value')
        k, _, v = w.partition("=")
        out += [k, v]
    return out, False


def _reject_constant(name: str) -> None:
    raise ValueError(name)


def _json(rest: str) -> list[str] | None:
    rest = _lstrip(rest)
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise ParseError(
            "when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _maybe_json(rest: str) -> tuple[list[str], bool]:
    if not rest:
        return [], False
    value = _json(rest)
    return (value, True) if value is not None else ([rest], False)


def _maybe_json_list(rest: str) -> tuple[list[str], bool]:
    value = _json(rest)
    if value is not None:
        return value, True
    return (_WS_RE.split(rest) if rest else []), False


def _health_args(rest: str) -> tuple[list[str], bool]:
    sep = 0
    while sep < len(rest) and not rest[sep].isspace():
        sep += 1
    if sep == 0:
        return [], False
    typ = rest[:sep]
    cmd, is_json = _maybe_json(rest[sep:].lstrip())
    return [typ, *cmd], is_json


def parse_heredoc_marker(word: str) -> Heredoc | None:
    """`<<EOF`, `<<-'EOF'`, `3<<EOF` → a Heredoc without content; anything else → None."""
    m = _HEREDOC_RE.match(word)
    if not m or not m.group(3):
        return None
    rest = m.group(3)
    lex = Lexer("\\", skip_unset=True)
    try:
        words = lex.words(rest, {})
        if len(words) != 1:
            return None
        raw = Lexer("\\", skip_unset=True, raw_quotes=True).words(rest, {})
    except ShellWordError as err:
        raise ParseError(err.message) from None
    name = words[0]
    expand = (name.count("'") + name.count('"')) == (raw[0].count("'") + raw[0].count('"'))
    return Heredoc(name, "", m.group(2) == "-", expand, int(m.group(1) or 0))


def _heredocs_from_line(line: str) -> list[Heredoc]:
    lex = Lexer("\\", raw_quotes=True, raw_escapes=True, skip_unset=True, heredoc_words=True)
    try:
        words = lex.words(line, {})
    except ShellWordError:
        words = []
    return [h for h in (parse_heredoc_marker(w) for w in words) if h is not None]
