"""Dockerfile text → `Dockerfile` (stages of `Instruction`s), with Docker's syntax and errors.

Pure: no IO. This module holds the data model (`Dockerfile`, `Stage`, `Instruction`,
`HealthConfig`, `Heredoc`), checks each scanned instruction (flags, argument counts, HEALTHCHECK,
ONBUILD) and assembles stages; the line scanner (directives, continuations, comments, heredoc
bodies, argument shapes) is `_dockerfile_lines.py`. The reading rules are BuildKit's
`frontend/dockerfile/parser` and `instructions/parse.go`, which the classic builder also uses:

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

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from workbench.engine.build._dockerfile_lines import (
    Directives, Heredoc, Node, ParseError, parse_heredoc_marker, scan, split_lines)
from workbench.errors import BuildError

__all__ = ["INSTRUCTIONS", "Dockerfile", "HealthConfig", "Heredoc", "Instruction", "Stage",
           "parse", "parse_duration", "parse_heredoc_marker", "parse_instruction"]

INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
                "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
                "WORKDIR")
_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9-_.]*$")
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


# --------------------------------------------------------------------------- instruction level


def _parse_flags(node: Node, cmd: str, spec: dict[str, str]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for arg in node.flags:
        if arg == "--":
            break
        name, eq, value = arg[2:].partition("=")
        kind = spec.get(name)
        if kind is None:
            raise ParseError(f"Unknown flag: {name}")
        if name in seen and kind != "strings":
            raise ParseError(f"Duplicate flag specified: {name}")
        seen.add(name)
        if kind == "bool":
            if eq and value == "":
                raise ParseError(f"Missing a value on flag: {name}")
            if value.lower() not in ("", "true", "false"):
                raise ParseError(f"Expecting boolean value for flag {name}, not: {value}")
            out.append((name, value.lower() or "true"))
        else:
            if not eq:
                raise ParseError(f"Missing a value on flag: {name}")
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
        raise ParseError(f'time: invalid duration "{orig}"')
    total = 0.0
    while s:
        m = _DURATION_RE.match(s)
        num, unit = (m.group(1), m.group(2)) if m else ("", "")
        if num in ("", "."):
            raise ParseError(f'time: invalid duration "{orig}"')
        if not unit:
            raise ParseError(f'time: missing unit in duration "{orig}"')
        if unit not in _UNITS:
            raise ParseError(f'time: unknown unit "{unit}" in duration "{orig}"')
        total += float(num) * _UNITS[unit]
        s = s[len(num) + len(unit):]
    return sign * round(total)


def _interval(flags: tuple[tuple[str, str], ...], name: str) -> int:
    value = dict(flags).get(name, "")
    if not value:
        return 0
    ns = parse_duration(value)
    if ns != 0 and ns < _MIN_DURATION_NS:
        raise ParseError(f'Interval "{name}" cannot be less than 1ms')
    return ns


def _health(node: Node) -> tuple[tuple[tuple[str, str], ...], HealthConfig]:
    if not node.args:
        raise ParseError("HEALTHCHECK requires at least one argument")
    typ, args = node.args[0].upper(), node.args[1:]
    if typ == "NONE":
        if args:
            raise ParseError("HEALTHCHECK NONE takes no arguments")
        return (), HealthConfig(("NONE",))
    flags = _parse_flags(node, "HEALTHCHECK", _FLAGS["HEALTHCHECK"])
    if typ != "CMD":
        raise ParseError(f'Unknown type "{typ}" in HEALTHCHECK (try CMD)')
    if not args:
        raise ParseError("Missing command after HEALTHCHECK CMD")
    test = (typ, *args) if node.json_form else ("CMD-SHELL", " ".join(args))
    retries = 0
    raw = dict(flags).get("retries", "")
    if raw:
        try:
            retries = int(raw, 10)
        except ValueError:
            raise ParseError(f'strconv.ParseInt: parsing "{raw}": invalid syntax') from None
        if retries < 0:
            raise ParseError(f"--retries cannot be negative ({retries})")
    return flags, HealthConfig(test, _interval(flags, "interval"), _interval(flags, "timeout"),
                               _interval(flags, "start-period"),
                               _interval(flags, "start-interval"), retries)


def _kv_checks(node: Node, cmd: str) -> None:
    if not node.args:
        raise ParseError(f"{cmd} requires at least one argument")
    for k in node.args[::2]:
        if not k:
            raise ParseError(f"{cmd} names can not be blank")


def _instruction(node: Node) -> Instruction:
    cmd = node.word.upper()
    if cmd not in INSTRUCTIONS:
        raise ParseError(f"unknown instruction: {node.word}")
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
            raise ParseError("ARG requires at least one argument")
        if any(a.startswith("=") for a in args):
            raise ParseError("ARG names can not be blank")
    elif cmd in ("COPY", "ADD"):
        if len(args) < 2:
            raise ParseError(f"{cmd} requires at least two arguments, but only one was "
                              "provided. Destination could not be determined")
        if parse_heredoc_marker(args[-1]) is not None:
            raise ParseError(f"{cmd} cannot accept a heredoc as a destination")
    elif cmd == "FROM":
        if not (len(args) == 1 or (len(args) == 3 and args[1].lower() == "as")):
            raise ParseError("FROM requires either one or three arguments")
        if len(args) == 3 and not _STAGE_NAME_RE.match(args[2].lower()):
            raise ParseError(f'invalid name for build stage: "{args[2]}", name can\'t start '
                              "with a number or contain symbols")
    elif cmd in ("MAINTAINER", "USER", "WORKDIR", "STOPSIGNAL"):
        if len(args) != 1:
            raise ParseError(f"{cmd} requires exactly one argument")
    elif cmd in ("EXPOSE", "VOLUME"):
        if not args:
            raise ParseError(f"{cmd} requires at least one argument")
        if cmd == "EXPOSE":
            args.sort()
        else:
            args = [a.strip() for a in args]
            if "" in args:
                raise ParseError("VOLUME specified can not be an empty string")
    elif cmd == "SHELL":
        if not args:
            raise ParseError("SHELL requires at least one argument")
        if not node.json_form:
            raise ParseError("SHELL requires the arguments to be in JSON form")
    elif cmd == "RUN" and not args:
        raise ParseError("RUN requires at least one argument")
    elif cmd == "ONBUILD":
        trigger, args = _onbuild(node)
    return Instruction(cmd, tuple(args), node.original.strip(), flags, node.json_form,
                       tuple(node.heredocs), node.start, node.end, trigger, health)


def _onbuild(node: Node) -> tuple[Instruction, list[str]]:
    if node.child is None:
        raise ParseError("ONBUILD requires at least one argument")
    word = node.child.word.upper()
    if word == "ONBUILD":
        raise ParseError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if word in ("MAINTAINER", "FROM"):
        raise ParseError(f"{word} isn't allowed as an ONBUILD trigger")
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
        nodes, directives = scan(text, warnings)
        if not nodes:
            raise ParseError("file with no instructions", len(split_lines(text)))
        return _assemble(name, nodes, directives, warnings)
    except ParseError as err:
        raise BuildError(f"{name} parse error on line {err.line}: {err.message}",
                         line=err.line) from None


def parse_instruction(text: str, name: str = "ONBUILD trigger") -> Instruction:
    """Parse one instruction on its own (an ONBUILD trigger stored in an image config).

    Raises:
        BuildError: a syntax error, or more than one instruction in `text`.
    """
    try:
        nodes, _ = scan(text, [])
        if len(nodes) != 1:
            raise ParseError("onbuild trigger should be a single expression", 1)
        return next(_instructions(nodes))
    except ParseError as err:
        raise BuildError(f"{name} parse error on line {err.line}: {err.message}",
                         line=err.line) from None


def _instructions(nodes: list[Node]) -> Iterator[Instruction]:
    for node in nodes:
        try:
            yield _instruction(node)
        except ParseError as err:
            raise ParseError(err.message, node.start) from None


def _assemble(name: str, nodes: list[Node], d: Directives, warnings: list[str]) -> Dockerfile:
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
                raise ParseError(f'duplicate stage name "{stage_name}"', ins.line)
            if stage_name:
                seen.add(stage_name)
            stages.append(Stage(len(stages), stage_name, ins.args[0], ins.flag("platform", "")
                                or "", ins, ()))
        elif not stages and ins.cmd == "ARG":
            global_args.append(ins)
        elif not stages:
            raise ParseError("no build stage in current context", ins.line)
        else:
            body.append(ins)
        if ins.cmd == "MAINTAINER":
            warnings.append("MAINTAINER instruction is deprecated in favor of using label")
        if node.legacy_kv:
            warnings.append(f'"{ins.cmd} key=value" should be used instead of legacy '
                            f'"{ins.cmd} key value" format (line {ins.line})')
    if not stages:
        raise ParseError("dockerfile contains no stages to build", nodes[-1].end)
    stages[-1] = _with_body(stages[-1], body)
    return Dockerfile(name, d.escape, dict(d.seen), tuple(global_args), tuple(stages),
                      tuple(warnings))


def _with_body(stage: Stage, body: list[Instruction]) -> Stage:
    return Stage(stage.index, stage.name, stage.base, stage.platform, stage.from_instruction,
                 tuple(body))
