"""Dockerfile text → `Dockerfile` (stages of `Instruction`s), with Docker's syntax and errors.

Pure: no IO. The reading rules are BuildKit's `frontend/dockerfile/parser` and
`instructions/parse.go`, which the classic builder also uses:

- parser directives (`# escape=` and `# syntax=`/`# check=`, accepted) only before anything else;
- `#` comments on their own line, also between continuation lines; the escape character at the
  end of a line continues it (not when itself escaped); empty continuation lines are dropped
  with a warning;
- heredocs (`<<EOF`, `<<-EOF`, quoted names disable expansion, several per line, `3<<EOF`) for
  RUN, COPY and ADD in shell form, also under ONBUILD;
- JSON form for RUN/CMD/ENTRYPOINT/SHELL/COPY/ADD/VOLUME/HEALTHCHECK CMD; text that is not a
  valid JSON array of strings is shell form, an array with a non-string is an error.

`Instruction.args` by instruction (before variable substitution, which `plan.py` does):
FROM (image[, "AS", name]); ARG ("NAME[=default]", ...); ENV/LABEL (key1, value1, key2, ...);
RUN/CMD/ENTRYPOINT/SHELL the JSON items when `json_form`, else (command_text,);
COPY/ADD (src..., dest), a heredoc source written `<<NAME`; HEALTHCHECK ("NONE",) or
("CMD", *command) with `health` parsed; EXPOSE ports sorted; VOLUME paths;
WORKDIR/USER/STOPSIGNAL/MAINTAINER (text,); ONBUILD (expression,) with `trigger` parsed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from workbench.engine.build.shell_words import Lexer, ShellWordError, is_space
from workbench.errors import BuildError

__all__ = ["INSTRUCTIONS", "Dockerfile", "HealthConfig", "Heredoc", "Instruction", "Stage",
           "parse", "parse_duration", "parse_heredoc_marker", "parse_instruction"]

INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
                "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
                "WORKDIR")
_DIRECTIVES = ("syntax", "escape", "check")
_DIRECTIVE_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_WS_RE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC_RE = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$", re.DOTALL)
_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9-_.]*$")
_HEREDOC_CMDS = ("ADD", "COPY", "RUN")
# flags each instruction accepts: name -> "string" | "bool" | "strings" (repeatable)
_FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": "string"},
    "COPY": {"from": "string", "chown": "string", "chmod": "string", "link": "bool",
             "parents": "bool", "exclude": "strings"},
    "ADD": {"chown": "string", "chmod": "string", "link": "bool", "keep-git-dir": "bool",
            "checksum": "string", "exclude": "strings"},
    "RUN": {"mount": "strings", "network": "string", "security": "string"},
    "HEALTHCHECK": {"interval": "string", "timeout": "string", "start-period": "string",
                    "start-interval": "string", "retries": "string"},
}
_MIN_DURATION_NS = 1_000_000  # Docker's container.MinimumDuration (1ms)


class _ParseError(Exception):
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


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """HEALTHCHECK as Docker's config stores it; durations in nanoseconds."""

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction as written. See the module docstring for what `args` holds."""

    cmd: str                                   # upper case: "RUN"
    args: tuple[str, ...]
    original: str                              # the text (continuations joined), "RUN echo hi"
    flags: tuple[tuple[str, str], ...] = ()    # ("from", "builder"); bool flags "true"/"false"
    json_form: bool = False
    heredocs: tuple[Heredoc, ...] = ()
    line: int = 0                              # first line, 1-based
    end_line: int = 0                          # last line (heredoc bodies included)
    trigger: Instruction | None = None         # ONBUILD: the wrapped instruction
    health: HealthConfig | None = None         # HEALTHCHECK

    def flag(self, name: str, default: str | None = None) -> str | None:
        """The value of a flag given once (`--from=x` → "x"), else `default`."""
        for k, v in self.flags:
            if k == name:
                return v
        return default

    def flag_all(self, name: str) -> tuple[str, ...]:
        """Every value of a repeatable flag (`--mount`), in order."""
        return tuple(v for k, v in self.flags if k == name)


@dataclass(frozen=True, slots=True)
class Stage:
    index: int
    name: str                                  # lower case; "" when the FROM has no AS
    base: str                                  # image/stage word as written, before substitution
    platform: str                              # --platform as written, "" if none
    from_instruction: Instruction
    instructions: tuple[Instruction, ...]      # everything after the FROM

    @property
    def line(self) -> int:
        return self.from_instruction.line


@dataclass(frozen=True, slots=True)
class Dockerfile:
    name: str                                  # the file name used in error messages
    escape: str                                # "\\" or "`"
    directives: dict[str, str]                 # {"syntax": ..., "escape": ...} as given
    global_args: tuple[Instruction, ...]       # ARG instructions before the first FROM
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...] = field(default=())

    def stage(self, name_or_index: str, *, by_index: bool = True) -> Stage | None:
        """The stage called `name_or_index` (case-insensitive) or, when `by_index`, at that
        index (`COPY --from=0`; FROM and --target take names only)."""
        key = name_or_index.lower()
        for st in self.stages:
            if st.name and st.name == key:
                return st
        if by_index and key.isdigit() and int(key) < len(self.stages):
            return self.stages[int(key)]
        return None


# --------------------------------------------------------------------------- line level


@dataclass(slots=True)
class _Node:
    word: str                       # the instruction word as written
    args: list[str]
    original: str
    flags: list[str]
    json_form: bool = False
    child: _Node | None = None
    heredocs: list[Heredoc] = field(default_factory=list)
    legacy_kv: bool = False
    start: int = 0
    end: int = 0


class _Directives:
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
            raise _ParseError(f"only one {key} parser directive can be used")
        self.seen[key] = m.group(2)
        if key == "escape":
            if m.group(2) not in ("`", "\\"):
                raise _ParseError(
                    f"invalid escape token '{m.group(2)}' does not match ` or \\")
            self._set_escape(m.group(2))

    def continuation(self, line: str) -> tuple[str, bool]:
        """Strip a trailing escape character; return (line, ends_here)."""
        m = self._continuation.search(line)
        if not m:
            return line, True
        return line[: m.start()] + (m.group(1) or ""), False


def _split_lines(text: str) -> list[str]:
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


def _scan(text: str, warnings: list[str]) -> tuple[list[_Node], _Directives]:
    d = _Directives()
    lines = _split_lines(text)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    nodes: list[_Node] = []
    i, current = 0, 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        token = _lstrip(raw.rstrip("\r\n"))
        try:
            d.feed(token)
        except _ParseError as err:
            raise _ParseError(err.message, current + 1) from None
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
        except _ParseError as err:
            raise _ParseError(err.message, start) from None
        node.start = start
        target = node.child if node.word.upper() == "ONBUILD" and node.child else node
        if target.word.upper() in _HEREDOC_CMDS and not target.json_form and "<<" in line:
            try:
                docs = _heredocs_from_line(line)
            except _ParseError as err:
                raise _ParseError(err.message, start) from None
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
                    raise _ParseError("unterminated heredoc", start)
                node.heredocs.append(Heredoc(doc.name, "".join(body), doc.chomp, doc.expand,
                                             doc.fd))
        node.end = current
        nodes.append(node)
    return nodes, d


def _node_from_line(line: str, d: _Directives) -> _Node:
    stripped = line.strip()
    parts = _WS_RE.split(stripped, maxsplit=1)
    word = parts[0]
    rest, flags = ("", [])
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1])
    rest = rest.strip()
    node = _Node(word, [], line, flags)
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
            raise _ParseError(f"{cmd} must have two arguments")
        return [parts[0], parts[1]], True
    out: list[str] = []
    for w in words:
        if "=" not in w:
            raise _ParseError(
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
        raise _ParseError(
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
        raise _ParseError(err.message) from None
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


# --------------------------------------------------------------------------- instruction level


def _parse_flags(node: _Node, cmd: str, spec: dict[str, str]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for arg in node.flags:
        if arg == "--":
            break
        name, eq, value = arg[2:].partition("=")
        kind = spec.get(name)
        if kind is None:
            raise _ParseError(f"Unknown flag: {name}")
        if name in seen and kind != "strings":
            raise _ParseError(f"Duplicate flag specified: {name}")
        seen.add(name)
        if kind == "bool":
            if eq and value == "":
                raise _ParseError(f"Missing a value on flag: {name}")
            if value.lower() not in ("", "true", "false"):
                raise _ParseError(f"Expecting boolean value for flag {name}, not: {value}")
            out.append((name, value.lower() or "true"))
        else:
            if not eq:
                raise _ParseError(f"Missing a value on flag: {name}")
            out.append((name, value))
    return tuple(out)


_DURATION_RE = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
          "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration ("1m30s", "1.5h", "300ms") → nanoseconds."""
    orig, s, sign = text, text, 1
    if s and s[0] in "+-":
        sign, s = (-1 if s[0] == "-" else 1), s[1:]
    if s == "0":
        return 0
    if not s:
        raise _ParseError(f'time: invalid duration "{orig}"')
    total = 0.0
    while s:
        m = _DURATION_RE.match(s)
        num, unit = (m.group(1), m.group(2)) if m else ("", "")
        if num in ("", "."):
            raise _ParseError(f'time: invalid duration "{orig}"')
        if not unit:
            raise _ParseError(f'time: missing unit in duration "{orig}"')
        if unit not in _UNITS:
            raise _ParseError(f'time: unknown unit "{unit}" in duration "{orig}"')
        total += float(num) * _UNITS[unit]
        s = s[len(num) + len(unit):]
    return sign * round(total)


def _interval(flags: tuple[tuple[str, str], ...], name: str) -> int:
    value = dict(flags).get(name, "")
    if not value:
        return 0
    ns = parse_duration(value)
    if ns != 0 and ns < _MIN_DURATION_NS:
        raise _ParseError(f'Interval "{name}" cannot be less than 1ms')
    return ns


def _health(node: _Node) -> tuple[tuple[tuple[str, str], ...], HealthConfig]:
    if not node.args:
        raise _ParseError("HEALTHCHECK requires at least one argument")
    typ, args = node.args[0].upper(), node.args[1:]
    if typ == "NONE":
        if args:
            raise _ParseError("HEALTHCHECK NONE takes no arguments")
        return (), HealthConfig(("NONE",))
    flags = _parse_flags(node, "HEALTHCHECK", _FLAGS["HEALTHCHECK"])
    if typ != "CMD":
        raise _ParseError(f'Unknown type "{typ}" in HEALTHCHECK (try CMD)')
    if not args:
        raise _ParseError("Missing command after HEALTHCHECK CMD")
    test = (typ, *args) if node.json_form else ("CMD-SHELL", " ".join(args))
    retries = 0
    raw = dict(flags).get("retries", "")
    if raw:
        try:
            retries = int(raw, 10)
        except ValueError:
            raise _ParseError(f'strconv.ParseInt: parsing "{raw}": invalid syntax') from None
        if retries < 0:
            raise _ParseError(f"--retries cannot be negative ({retries})")
    return flags, HealthConfig(test, _interval(flags, "interval"), _interval(flags, "timeout"),
                               _interval(flags, "start-period"),
                               _interval(flags, "start-interval"), retries)


def _kv_checks(node: _Node, cmd: str) -> None:
    if not node.args:
        raise _ParseError(f"{cmd} requires at least one argument")
    for k in node.args[::2]:
        if not k:
            raise _ParseError(f"{cmd} names can not be blank")


def _instruction(node: _Node) -> Instruction:
    cmd = node.word.upper()
    if cmd not in INSTRUCTIONS:
        raise _ParseError(f"unknown instruction: {node.word}")
    args = list(node.args)
    flags: tuple[tuple[str, str], ...] = ()
    trigger: Instruction | None = None
    health: HealthConfig | None = None
    if cmd == "HEALTHCHECK":
        flags, health = _health(node)
    elif cmd != "STOPSIGNAL":
        flags = _parse_flags(node, cmd, _FLAGS.get(cmd, {}))
    if cmd in ("ENV", "LABEL"):
        _kv_checks(node, cmd)
    elif cmd == "ARG":
        if not args:
            raise _ParseError("ARG requires at least one argument")
        if any(a.startswith("=") for a in args):
            raise _ParseError("ARG names can not be blank")
    elif cmd in ("COPY", "ADD"):
        if len(args) < 2:
            raise _ParseError(f"{cmd} requires at least two arguments, but only one was "
                              "provided. Destination could not be determined")
        if parse_heredoc_marker(args[-1]) is not None:
            raise _ParseError(f"{cmd} cannot accept a heredoc as a destination")
    elif cmd == "FROM":
        if not (len(args) == 1 or (len(args) == 3 and args[1].lower() == "as")):
            raise _ParseError("FROM requires either one or three arguments")
        if len(args) == 3 and not _STAGE_NAME_RE.match(args[2].lower()):
            raise _ParseError(f'invalid name for build stage: "{args[2]}", name can\'t start '
                              "with a number or contain symbols")
    elif cmd in ("MAINTAINER", "USER", "WORKDIR", "STOPSIGNAL"):
        if len(args) != 1:
            raise _ParseError(f"{cmd} requires exactly one argument")
    elif cmd in ("EXPOSE", "VOLUME"):
        if not args:
            raise _ParseError(f"{cmd} requires at least one argument")
        if cmd == "EXPOSE":
            args.sort()
        else:
            args = [a.strip() for a in args]
            if "" in args:
                raise _ParseError("VOLUME specified can not be an empty string")
    elif cmd == "SHELL":
        if not args:
            raise _ParseError("SHELL requires at least one argument")
        if not node.json_form:
            raise _ParseError("SHELL requires the arguments to be in JSON form")
    elif cmd == "RUN" and not args:
        raise _ParseError("RUN requires at least one argument")
    elif cmd == "ONBUILD":
        trigger, args = _onbuild(node)
    return Instruction(cmd, tuple(args), node.original.strip(), flags, node.json_form,
                       tuple(node.heredocs), node.start, node.end, trigger, health)


def _onbuild(node: _Node) -> tuple[Instruction, list[str]]:
    if node.child is None:
        raise _ParseError("ONBUILD requires at least one argument")
    word = node.child.word.upper()
    if word == "ONBUILD":
        raise _ParseError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if word in ("MAINTAINER", "FROM"):
        raise _ParseError(f"{word} isn't allowed as an ONBUILD trigger")
    node.child.heredocs, node.child.start, node.child.end = node.heredocs, node.start, node.end
    trigger = _instruction(node.child)
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
    for doc in node.heredocs:
        expression += "\n" + doc.content + doc.name
    return trigger, [expression]


def parse(text: str | bytes, name: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile.

    Args:
        text: the file's content.
        name: the file name, used in error messages.

    Raises:
        BuildError: `<name> parse error on line <n>: <Docker's message>`, with `.line` set.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not text:
        raise BuildError(f"the Dockerfile ({name}) cannot be empty")
    warnings: list[str] = []
    try:
        nodes, directives = _scan(text, warnings)
        if not nodes:
            raise _ParseError("file with no instructions", len(_split_lines(text)))
        return _assemble(name, nodes, directives, warnings)
    except _ParseError as err:
        raise BuildError(f"{name} parse error on line {err.line}: {err.message}",
                         line=err.line) from None


def parse_instruction(text: str, name: str = "ONBUILD trigger") -> Instruction:
    """Parse one instruction on its own (an ONBUILD trigger stored in an image config).

    Raises:
        BuildError: a syntax error, or more than one instruction in `text`.
    """
    try:
        nodes, _ = _scan(text, [])
        if len(nodes) != 1:
            raise _ParseError("onbuild trigger should be a single expression", 1)
        return next(_instructions(nodes))
    except _ParseError as err:
        raise BuildError(f"{name} parse error on line {err.line}: {err.message}",
                         line=err.line) from None


def _instructions(nodes: list[_Node]) -> Iterator[Instruction]:
    for node in nodes:
        try:
            yield _instruction(node)
        except _ParseError as err:
            raise _ParseError(err.message, node.start) from None


def _assemble(name: str, nodes: list[_Node], d: _Directives, warnings: list[str]) -> Dockerfile:
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    body: list[Instruction] = []
    seen: set[str] = set()
    for node, ins in zip(nodes, _instructions(nodes)):
        if ins.cmd == "FROM":
            if stages:
                stages[-1] = _with_body(stages[-1], body)
            body = []
            stage_name = ins.args[2].lower() if len(ins.args) == 3 else ""
            if stage_name in seen:
                raise _ParseError(f'duplicate stage name "{stage_name}"', ins.line)
            if stage_name:
                seen.add(stage_name)
            stages.append(Stage(len(stages), stage_name, ins.args[0], ins.flag("platform", "")
                                or "", ins, ()))
        elif not stages and ins.cmd == "ARG":
            global_args.append(ins)
        elif not stages:
            raise _ParseError("no build stage in current context", ins.line)
        else:
            body.append(ins)
        if ins.cmd == "MAINTAINER":
            warnings.append("MAINTAINER instruction is deprecated in favor of using label")
        if node.legacy_kv:
            warnings.append(f'"{ins.cmd} key=value" should be used instead of legacy '
                            f'"{ins.cmd} key value" format (line {ins.line})')
    if not stages:
        raise _ParseError("dockerfile contains no stages to build", nodes[-1].end)
    stages[-1] = _with_body(stages[-1], body)
    return Dockerfile(name, d.escape, dict(d.seen), tuple(global_args), tuple(stages),
                      tuple(warnings))


def _with_body(stage: Stage, body: list[Instruction]) -> Stage:
    return Stage(stage.index, stage.name, stage.base, stage.platform, stage.from_instruction,
                 tuple(body))
