"""Per-instruction evaluation for `plan.evaluate_stage` (pure, no IO).

`StageState` carries one stage's evolving image config, declared ARGs, CMD flag and author;
`StageState.apply(instruction)` substitutes the instruction's arguments (only where Docker
substitutes, with the build args the stage may see and no ENV shadows), applies it to the config
and returns the `Action` an executor performs (`RunAction`, `CopyAction` or `ConfigAction`), the
build args it used and its history comment. The helpers format Docker's history text (Go's
`%q`, durations, HEALTHCHECK), check EXPOSE ports and STOPSIGNAL names, and resolve WORKDIR and
COPY/ADD destinations. Errors are `StepError`s; `plan._step` reports them with the line.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.engine.build.dockerfile import (
    Dockerfile, HealthConfig, Instruction, parse_heredoc_marker)
from workbench.engine.build.shell_words import Lexer, env_from_list, go_quote
from workbench.errors import BuildError

if TYPE_CHECKING:
    from workbench.engine.build.plan import BuildPlan

__all__ = ["DEFAULT_SHELL", "JSON", "PROXY_ARGS", "Action", "ConfigAction", "CopyAction",
           "InlineFile", "RunAction", "StageState", "StepError", "dest_path", "stage_ref",
           "workdir_path"]

JSON = dict[str, Any]
_X = Callable[..., str]   # substitute one word: x(word, lexer=None) -> str, recording matches
DEFAULT_SHELL = ("/bin/sh", "-c")
# Docker's predefined args: usable without ARG, kept out of history and cache keys unless declared
PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                        "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})


@dataclass(frozen=True, slots=True)
class InlineFile:
    """A file whose content is in the Dockerfile (a heredoc). For RUN, `path` is where to mount
    it in the container; for COPY/ADD it is the file name (the heredoc's name)."""

    path: str
    data: str
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class RunAction:
    """Run `argv` in a container of the current image, then commit its changes as a layer."""

    argv: tuple[str, ...]             # the shell prepended already for the shell form
    env: tuple[str, ...]              # config Env + build args (K=V) that no ENV shadows
    workdir: str                      # "/" when the config has none
    user: str                         # "" = root; else name/uid[:group] to resolve in the image
    shell_form: bool
    files: tuple[InlineFile, ...] = ()    # heredoc scripts to mount read-only (mode 0755)
    mounts: tuple[str, ...] = ()      # --mount specs after substitution (BuildKit syntax)
    network: str = ""                 # --network
    security: str = ""                # --security


@dataclass(frozen=True, slots=True)
class CopyAction:
    """Copy `sources` (context paths, globs, or ADD URLs/tars) and `inline` files to `dest`."""

    cmd: str                          # "COPY" or "ADD"
    sources: tuple[str, ...]          # after substitution, as written (relative to the context
                                      # or to the --from image's root)
    inline: tuple[InlineFile, ...]    # heredoc sources, substituted unless the name was quoted
    dest: str                         # after substitution, as written (history shows this)
    dest_path: str                    # resolved against WORKDIR; a written trailing "/" kept
    from_stage: int | None            # --from naming a stage (by name or index)
    from_image: str                   # --from naming an image reference
    chown: str
    chmod: str
    link: bool
    checksum: str                     # ADD --checksum
    keep_git_dir: bool                # ADD --keep-git-dir
    excludes: tuple[str, ...]         # --exclude patterns
    parents: bool                     # COPY --parents


@dataclass(frozen=True, slots=True)
class ConfigAction:
    """Only the image config changes (`Step.config` is the result); `values` are the
    instruction's values after substitution (ENV `K=V` items, the WORKDIR path, CMD argv...).
    WORKDIR's directory should exist afterwards; Docker creates it (owned by root)."""

    cmd: str
    values: tuple[str, ...]


Action = RunAction | CopyAction | ConfigAction


class StepError(Exception):
    """A dispatch-time error; `_step` turns it into a positioned BuildError."""


def stage_ref(df: Dockerfile, value: str, current: int, line: int) -> int | None:
    """The stage `--from=<value>` names (name or index), or None for an image."""
    st = df.stage(value) if value else None
    if st is None and value.isdigit():
        raise BuildError(f"invalid stage index {value}", line=line)
    if st is not None and st.index == current:
        raise BuildError(f"circular dependency detected on stage: {st.name or st.index}",
                         line=line)
    return None if st is None else st.index


def workdir_path(current: str, requested: str) -> str:
    """Docker's WORKDIR normalisation: absolute paths stay as written, relative ones join."""
    if not requested:
        raise StepError("cannot normalize nothing")
    if requested.startswith("/"):
        return requested
    return posixpath.normpath(posixpath.join("/", current, requested))


def dest_path(workdir: str, dest: str) -> str:
    """A COPY/ADD destination resolved against WORKDIR, keeping a trailing `/`."""
    if dest.startswith("/"):
        return dest
    out = posixpath.normpath(posixpath.join("/", workdir, dest))
    return out + "/" if dest.endswith("/") and out != "/" else out


def _go_list(items: Sequence[str] | None) -> str:
    return "[" + " ".join(go_quote(a) for a in items or ()) + "]"


def _go_duration(ns: int) -> str:
    """Go's time.Duration.String ("30s", "5m0s", "1h0m0s", "1.5s", "300ms")."""
    if ns == 0:
        return "0s"
    u, sign = abs(ns), "-" if ns < 0 else ""

    def frac(v: int, digits: int) -> str:
        whole, rest = divmod(v, 10 ** digits)
        return f"{whole}.{rest:0{digits}d}".rstrip("0") if rest else str(whole)

    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{frac(u, 3)}µs"
    if u < 1_000_000_000:
        return f"{sign}{frac(u, 6)}ms"
    minutes, rem = divmod(u, 60_000_000_000)
    hours, minutes = divmod(minutes, 60)
    out = frac(rem, 9) + "s"
    if hours or minutes:
        out = f"{minutes}m" + out
    if hours:
        out = f"{hours}h" + out
    return sign + out


def _go_rune(n: int) -> str:
    """Go's %q of an int: a quoted rune literal (3 → '\\x03')."""
    ch = chr(n) if 0 <= n <= 0x10FFFF else "\ufffd"
    inner = {'"': '"', "'": "\\'"}.get(ch) or go_quote(ch)[1:-1]
    return f"'{inner}'"


def _health_text(h: HealthConfig) -> str:
    """`fmt.Sprintf("%q", *container.HealthConfig)` as Docker writes it into history."""
    durations = " ".join(go_quote(_go_duration(d)) for d in
                         (h.interval, h.timeout, h.start_period, h.start_interval))
    return f"&{{{_go_list(h.test)} {durations} {_go_rune(h.retries)}}}"


def _health_config(h: HealthConfig) -> JSON:
    out: JSON = {"Test": list(h.test)}
    for key, value in (("Interval", h.interval), ("Timeout", h.timeout),
                       ("StartPeriod", h.start_period), ("StartInterval", h.start_interval),
                       ("Retries", h.retries)):
        if value:
            out[key] = value
    return out


def _port_specs(raw: str) -> list[str]:
    """go-connections nat.ParsePortSpec for EXPOSE: `80`, `80/udp`, `8000-8002/tcp`."""
    container = raw.split(":")[-1]
    parts = container.split("/")
    if not container or not parts[0]:
        raise StepError(f"no port specified: {raw}<empty>")
    proto, port = ("tcp", parts[0]) if len(parts) == 1 or not parts[1] else (parts[1], parts[0])
    if proto.lower() not in ("tcp", "udp", "sctp"):
        raise StepError(f"invalid proto: {proto}")
    try:
        lo_s, _, hi_s = port.partition("-")
        lo, hi = int(lo_s, 10), int(hi_s or lo_s, 10)
        if not (0 <= lo <= 65535 and 0 <= hi <= 65535) or hi < lo or "+" in port:
            raise ValueError(port)
    except ValueError:
        raise StepError(f"invalid containerPort: {port}") from None
    return [f"{p}/{proto.lower()}" for p in range(lo, hi + 1)]


_SIGNALS = frozenset(
    "ABRT ALRM BUS CHLD CLD CONT FPE HUP ILL INT IO IOT KILL PIPE POLL PROF PWR QUIT SEGV "
    "STKFLT STOP SYS TERM TRAP TSTP TTIN TTOU URG USR1 USR2 VTALRM WINCH XCPU XFSZ RTMIN "
    "RTMAX".split()) | {f"RTMIN+{i}" for i in range(1, 16)} | {f"RTMAX-{i}" for i in range(1, 15)}


def _check_signal(sig: str) -> None:
    """moby's signal.ParseSignal: a non-zero number or a known name, with or without SIG."""
    try:
        if int(sig, 10) == 0:
            raise StepError(f"Invalid signal: {sig}")
        return
    except ValueError:
        pass
    if sig.upper().removeprefix("SIG") not in _SIGNALS:
        raise StepError(f"Invalid signal: {sig}")


class StageState:
    """The evolving state of one stage: config, declared ARGs, CMD set, author."""

    def __init__(self, plan: BuildPlan, config: JSON, stage_index: int) -> None:
        self.plan, self.config, self.index = plan, config, stage_index
        self.escape = plan.dockerfile.escape
        self.args: dict[str, str | None] = {}
        self.declared: set[str] = set()
        self.cmd_set = False
        self.author = ""

    def shell(self) -> tuple[str, ...]:
        return tuple(self.config.get("Shell") or DEFAULT_SHELL)

    def arg_value(self, key: str) -> str | None:
        given = self.plan.build_args.get(key)
        if given is not None:
            return given
        default = self.args.get(key)
        return self.plan.meta_args.get(key) if default is None else default

    def filtered(self) -> dict[str, str]:
        """Build args usable in this stage that no ENV shadows (Docker's FilterAllowed)."""
        env_keys = set(env_from_list(self.config.get("Env") or []))
        out = {}
        for key in set(self.args) | PROXY_ARGS:
            value = self.arg_value(key)
            if value is not None and key not in env_keys:
                out[key] = value
        return out

    def env(self, filtered: Mapping[str, str]) -> dict[str, str]:
        env = env_from_list(self.config.get("Env") or [])
        env.update(filtered)
        return env

    def apply(self, ins: Instruction) -> tuple[Action, tuple[tuple[str, str], ...], str]:
        """Substitute and apply one instruction → (action, used build args, history comment)."""
        filtered = self.filtered()
        env, matched = self.env(filtered), set[str]()

        def x(word: str, lexer: Lexer | None = None) -> str:
            res = (lexer or Lexer(self.escape)).process(word, env)
            matched.update(res.matched)
            return res.text

        if ins.cmd == "RUN":
            visible = {k: v for k, v in filtered.items() if k in self.args or k not in PROXY_ARGS}
            items = sorted(f"{k}={v}" for k, v in visible.items())
            prefix = " ".join([f"|{len(items)}", *items]) if filtered else ""
            return self._run(ins, x, filtered), tuple(sorted(visible.items())), prefix
        if ins.cmd in ("COPY", "ADD"):
            action: Action = self._copy(ins, x, env)
            comment = ""
        else:
            values, comment = getattr(self, "_" + ins.cmd.lower())(ins, x, env, matched)
            action = ConfigAction(ins.cmd, tuple(values))
        used = tuple(sorted((k, filtered[k]) for k in matched if k in filtered))
        return action, used, comment

    # -- instructions that run something

    def _run(self, ins: Instruction, x: _X, filtered: Mapping[str, str]) -> RunAction:
        files: tuple[InlineFile, ...] = ()
        if ins.json_form:
            argv = list(ins.args)
        else:
            text = ins.args[0]
            if ins.heredocs and parse_heredoc_marker(text) is not None:
                doc = ins.heredocs[0]
                text = doc.data
                if text.startswith("#!"):
                    path = "/dev/pipes/" + doc.name
                    files, text = (InlineFile(path, doc.data, 0o755),), path
            elif ins.heredocs:
                text += "".join("\n" + d.content + d.name for d in ins.heredocs)
            argv = [*self.shell(), text]
        env = list(self.config.get("Env") or []) + sorted(f"{k}={v}" for k, v in filtered.items())
        return RunAction(tuple(argv), tuple(env), self.config.get("WorkingDir") or "/",
                         self.config.get("User") or "", not ins.json_form, files,
                         tuple(x(m) for m in ins.flag_all("mount")), ins.flag("network") or "",
                         ins.flag("security") or "")

    def _copy(self, ins: Instruction, x: _X, env: Mapping[str, str]) -> CopyAction:
        docs = {d.name: d for d in ins.heredocs}
        sources: list[str] = []
        inline: list[InlineFile] = []
        for src in ins.args[:-1]:
            marker = parse_heredoc_marker(src)
            if marker is None:
                sources.append(x(src))
                continue
            doc = docs.get(marker.name)
            data = doc.data if doc else ""
            if marker.expand:
                data = x(data, Lexer("\\", skip_quotes=True))
            inline.append(InlineFile(marker.name, data, 0o644))
        dest = x(ins.args[-1])
        from_stage, from_image = None, ""
        raw_from = ins.flag("from") if ins.cmd == "COPY" else None
        if raw_from:
            meta = {k: v for k, v in self.plan.meta_args.items() if v is not None}
            value = Lexer(self.escape).word(raw_from, {**meta, **env})
            try:
                from_stage = stage_ref(self.plan.dockerfile, value, self.index, ins.line)
            except BuildError as err:
                raise StepError(f"invalid from flag value {value}: {err.message}") from None
            if from_stage is None:
                from_image = value
            elif from_stage not in {sp.index for sp in self.plan.stages}:
                raise StepError(f"invalid from flag value {value}: stage was not planned")
        workdir = self.config.get("WorkingDir") or ""
        return CopyAction(ins.cmd, tuple(sources), tuple(inline), dest, dest_path(workdir, dest),
                          from_stage, from_image, x(ins.flag("chown") or ""),
                          x(ins.flag("chmod") or ""), ins.flag("link") == "true",
                          x(ins.flag("checksum") or ""), ins.flag("keep-git-dir") == "true",
                          ins.flag_all("exclude"), ins.flag("parents") == "true")

    # -- instructions that change only the config: (values, history comment)

    def _pairs(self, ins: Instruction, x: _X) -> list[tuple[str, str]]:
        return [(x(k), x(v)) for k, v in zip(ins.args[::2], ins.args[1::2])]

    def _env(self, ins: Instruction, x: _X, *_: Any) -> tuple[list[str], str]:
        items = [f"{k}={v}" for k, v in self._pairs(ins, x)]
        env = list(self.config.get("Env") or [])
        for item in items:
            key = item.partition("=")[0]
            at = next((i for i, e in enumerate(env) if e.partition("=")[0] == key), None)
            if at is None:
                env.append(item)
            else:
                env[at] = item
        self.config["Env"] = env
        return items, "ENV " + " ".join(items)

    def _label(self, ins: Instruction, x: _X, *_: Any) -> tuple[list[str], str]:
        pairs = self._pairs(ins, x)
        labels = dict(self.config.get("Labels") or {})
        labels.update(pairs)
        self.config["Labels"] = labels
        items = [f"{k}={v}" for k, v in pairs]
        return items, "LABEL " + " ".join(items)

    def _arg(self, ins: Instruction, x: _X, *_: Any) -> tuple[list[str], str]:
        decls = []
        for word in ins.args:
            key, eq, default = word.partition("=")
            decls.append((x(key), x(default) if eq else None))
        for key, value in decls:
            self.args[key] = value
            self.declared.add(key)
        items = [k if v is None else f"{k}={v}" for k, v in decls]
        return items, "ARG " + " ".join(items)

    def _workdir(self, ins: Instruction, x: _X, *_: Any) -> tuple[list[str], str]:
        path = workdir_path(self.config.get("WorkingDir") or "", x(ins.args[0]))
        self.config["WorkingDir"] = path
        return [path], "WORKDIR " + path

    def _user(self, ins: Instruction, x: _X, *_: Any) -> tuple[list[str], str]:
        self.config["User"] = user = x(ins.args[0])
        return [user], "USER " + user

    def _expose(self, ins: Instruction, x: _X, env: Mapping[str, str], matched: set[str]
                ) -> tuple[list[str], str]:
        ports: list[str] = []
        for word in ins.args:
            res = Lexer(self.escape).process(word, env)
            matched.update(res.matched)
            ports += res.words
        exposed = dict(self.config.get("ExposedPorts") or {})
        for port in ports:
            exposed.update({spec: {} for spec in _port_specs(port)})
        self.config["ExposedPorts"] = exposed
        return ports, "EXPOSE " + " ".join(ports)

    def _volume(self, ins: Instruction, x: _X, *_: Any) -> tuple[list[str], str]:
        vols = [x(v) for v in ins.args]
        if "" in vols:
            raise StepError("VOLUME specified can not be an empty string")
        volumes = dict(self.config.get("Volumes") or {})
        volumes.update({v: {} for v in vols})
        self.config["Volumes"] = volumes
        return vols, f"VOLUME [{' '.join(vols)}]"

    def _stopsignal(self, ins: Instruction, x: _X, *_: Any) -> tuple[list[str], str]:
        sig = x(ins.args[0])
        _check_signal(sig)
        self.config["StopSignal"] = sig
        return [sig], "STOPSIGNAL " + sig

    def _cmdline(self, ins: Instruction, empty_as_none: bool) -> list[str] | None:
        argv = list(ins.args) if ins.json_form else ([" ".join(ins.args)] if ins.args else [])
        if empty_as_none and not argv:
            return None
        return argv if ins.json_form else [*self.shell(), *argv]

    def _cmd(self, ins: Instruction, *_: Any) -> tuple[list[str], str]:
        argv = self._cmdline(ins, False) or []
        self.config["Cmd"] = argv
        self.cmd_set = self.cmd_set or bool(ins.args)
        return argv, "CMD " + _go_list(argv)

    def _entrypoint(self, ins: Instruction, *_: Any) -> tuple[list[str], str]:
        argv = self._cmdline(ins, True)
        self.config["Entrypoint"] = argv
        if not self.cmd_set:
            self.config["Cmd"] = None
        return list(argv or []), "ENTRYPOINT " + _go_list(argv)

    def _healthcheck(self, ins: Instruction, *_: Any) -> tuple[list[str], str]:
        assert ins.health is not None
        self.config["Healthcheck"] = _health_config(ins.health)
        return list(ins.health.test), "HEALTHCHECK " + _health_text(ins.health)

    def _shell(self, ins: Instruction, *_: Any) -> tuple[list[str], str]:
        self.config["Shell"] = list(ins.args)
        return list(ins.args), f"SHELL [{' '.join(ins.args)}]"

    def _maintainer(self, ins: Instruction, *_: Any) -> tuple[list[str], str]:
        self.author = ins.args[0]
        return [self.author], "MAINTAINER " + self.author

    def _onbuild(self, ins: Instruction, *_: Any) -> tuple[list[str], str]:
        self.config["OnBuild"] = list(self.config.get("OnBuild") or []) + [ins.args[0]]
        return [ins.args[0]], "ONBUILD " + ins.args[0]
