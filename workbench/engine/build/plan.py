"""Build plan: which stages to build and, per stage, the steps an executor runs (pure, no IO).

Two calls drive a build:

1. `plan_build(dockerfile, target=, build_args=)` resolves global ARGs, expands every FROM,
   finds the target stage and the stages it needs (its base stage, `COPY --from` and
   `RUN --mount=from=` stages, transitively) and orders them dependencies first. Stages the
   target does not need are skipped, as BuildKit does (the classic builder builds every stage
   before the target); `BuildPlan.stages` lists only the ones to build.
2. For each `StagePlan`, once the executor has the base image's config (`None` for scratch, the
   finished config of an earlier stage for `FROM <stage>`), `evaluate_stage(plan, stage,
   base_config)` returns every `Step`: ONBUILD triggers of the base first, then the stage's
   instructions, each with its arguments substituted (only where Docker substitutes), the image
   config after the step, the build args it uses, its history text and its cache text.

The executor then, per step: computes `key = step.cache_key(parent_id, sources)` (for COPY/ADD
`sources` is `combine_source_hashes` of `source_hash` per source) and looks it up; on a miss it
runs a `RunAction`, copies a `CopyAction`, or for a `ConfigAction` only writes `step.config`;
it records history `{"created_by": step.created_by(sources), "empty_layer": ...}`.
ARG scoping follows the classic builder: a stage sees only ARGs it declares (a declaration
without default takes the global value), `build_args` override defaults, ENV beats ARG of the
same name, and the proxy args (`HTTP_PROXY` ...) work undeclared but stay out of history and
cache keys unless declared.

This module holds the plan records, `plan_build`, `evaluate_stage`, cache keys and source
hashing; the per-instruction evaluation (`StageState`, the `Action` records, history-text and
EXPOSE/STOPSIGNAL/WORKDIR helpers) is `_dispatch.py`, whose public names are re-exported here.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from workbench.engine.build._dispatch import (
    DEFAULT_SHELL, JSON, PROXY_ARGS, Action, ConfigAction, CopyAction, InlineFile, RunAction,
    StageState, StepError, dest_path, stage_ref, workdir_path)
from workbench.engine.build.dockerfile import Dockerfile, Instruction, Stage, parse_instruction
from workbench.engine.build.shell_words import Lexer, ShellWordError
from workbench.errors import BuildError, InvalidArgument

__all__ = ["DEFAULT_SHELL", "PROXY_ARGS", "Action", "BuildPlan", "ConfigAction", "CopyAction",
           "InlineFile", "RunAction", "SourceEntry", "StagePlan", "StageSteps", "Step",
           "cache_key", "combine_source_hashes", "dest_path", "evaluate_stage", "hash_sources",
           "plan_build", "source_hash", "unused_args_warning", "workdir_path"]


@dataclass(frozen=True, slots=True)
class StagePlan:
    index: int                        # position in the Dockerfile
    name: str                         # "" when unnamed
    stage: Stage
    base: str                         # FROM after substitution: an image reference or "scratch"
    base_stage: int | None            # the stage used as base when FROM names an earlier stage
    platform: str                     # --platform after substitution, "" if none
    deps: tuple[int, ...]             # stages this one needs (base stage, --from stages)
    number: int                       # "Step <number>/<total>" of its FROM line

    @property
    def display(self) -> str:
        return self.stage.from_instruction.original


@dataclass(frozen=True, slots=True)
class BuildPlan:
    dockerfile: Dockerfile
    stages: tuple[StagePlan, ...]     # to build, dependencies first; the last is the target
    target: int                       # index of the target stage
    build_args: Mapping[str, str | None]
    meta_args: Mapping[str, str | None]   # global ARGs (and platform args), resolved
    meta_steps: tuple[tuple[int, str], ...]   # (number, "ARG ...") for the global ARG lines
    total_steps: int
    consumed: frozenset[str]          # build-arg names declared by ARGs that will run

    def stage_plan(self, index: int) -> StagePlan:
        for sp in self.stages:
            if sp.index == index:
                return sp
        raise KeyError(index)

    def unused_build_args(self, also_consumed: Iterable[str] = ()) -> list[str]:
        """Build args given but never declared by an ARG that ran (proxy args excepted).
        Pass the ARG names ONBUILD triggers declared (`StageSteps.declared_args`)."""
        seen = self.consumed | set(also_consumed)
        return sorted(k for k in self.build_args if k not in seen and k not in PROXY_ARGS)


@dataclass(frozen=True, slots=True)
class Step:
    number: int | None                # "Step n/N" number; None for an ONBUILD trigger
    display: str                      # the text after "Step n/N : "
    instruction: Instruction
    action: Action
    config: JSON                      # the image config after this step (Docker field names)
    author: str                       # the image author after this step (MAINTAINER)
    used_args: tuple[tuple[str, str], ...]   # build args (name, value) this step depends on
    shell: tuple[str, ...]            # the SHELL in effect, used in history text
    history: str                      # created_by; COPY/ADD use created_by(sources) instead
    trigger: bool = False

    @property
    def config_only(self) -> bool:
        """True when the step changes only the config (no container, no layer)."""
        return isinstance(self.action, ConfigAction)

    @property
    def cache_text(self) -> str:
        """The instruction after substitution, as canonical JSON (what `cache_key` hashes)."""
        return _canonical({"cmd": self.instruction.cmd, "action": asdict(self.action)})

    def created_by(self, sources: str = "") -> str:
        """Docker's history text; for COPY/ADD pass the combined source hash."""
        if isinstance(self.action, CopyAction):
            a = self.action
            chown = f"--chown={a.chown}" if a.chown else ""
            return f"{' '.join(self.shell)} #(nop) {a.cmd} {chown}{sources} in {a.dest} "
        return self.history

    def cache_key(self, parent_image_id: str, sources: str = "") -> str:
        return cache_key(parent_image_id, self.cache_text, self.used_args, sources)


@dataclass(frozen=True, slots=True)
class StageSteps:
    stage: StagePlan
    steps: tuple[Step, ...]
    config: JSON                      # the final config of the stage
    author: str
    declared_args: frozenset[str]     # ARG names declared while evaluating (triggers included)
    trigger_count: int                # "# Executing <n> build trigger(s)" before the steps


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(parent_image_id: str, instruction: str, used_build_args: Iterable[tuple[str, str]],
              sources_digest: str = "") -> str:
    """sha256 over canonical JSON of the four things a cached step must match."""
    doc = {"v": 1, "parent": parent_image_id, "instruction": instruction,
           "args": sorted([k, v] for k, v in used_build_args), "sources": sources_digest}
    return "sha256:" + hashlib.sha256(_canonical(doc).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One file system entry a COPY/ADD source contributes.

    `path` is where it lands relative to the destination: a copied file's base name, or the
    path inside a copied directory ("" for the directory itself). `mode` is the full st_mode
    (type bits included). Regular files carry `digest` ("sha256:<hex>" of the content),
    symlinks `link` (the target); mtimes are deliberately not part of the hash.
    """

    path: str
    mode: int
    uid: int = 0
    gid: int = 0
    digest: str = ""
    link: str = ""


def hash_sources(entries: Iterable[SourceEntry]) -> str:
    """sha256 over the canonical JSON of the entries, sorted by path."""
    rows = sorted([e.path, e.mode, e.uid, e.gid, e.digest, e.link] for e in entries)
    return "sha256:" + hashlib.sha256(_canonical(rows).encode()).hexdigest()


def source_hash(entries: Iterable[SourceEntry], *, is_dir: bool) -> str:
    """One source's hash as the history shows it: `file:<hex>` or `dir:<hex>`."""
    return ("dir:" if is_dir else "file:") + hash_sources(entries).removeprefix("sha256:")


def combine_source_hashes(hashes: Sequence[str]) -> str:
    """Several sources → `multi:<hex>` (Docker's hashStringSlice); one → itself."""
    if len(hashes) == 1:
        return hashes[0]
    return "multi:" + hashlib.sha256(",".join(hashes).encode()).hexdigest()


def unused_args_warning(names: Sequence[str]) -> str:
    """Docker's warning line for build args no ARG consumed ("" when there are none)."""
    return f"[Warning] One or more build-args [{' '.join(names)}] were not consumed" if names \
        else ""


# --------------------------------------------------------------------------- planning


def _expand(word: str, env: Mapping[str, str], escape: str, line: int) -> str:
    try:
        return Lexer(escape).word(word, env)
    except ShellWordError as err:
        raise BuildError(err.message, line=line) from None


def _resolve_meta(df: Dockerfile, build_args: Mapping[str, str | None],
                  platform_args: Mapping[str, str]) -> dict[str, str | None]:
    meta: dict[str, str | None] = dict(platform_args)
    for ins in df.global_args:
        env = {k: v for k, v in meta.items() if v is not None}
        env.update({k: v for k in PROXY_ARGS if (v := build_args.get(k)) is not None})
        for word in ins.args:
            key, eq, default = word.partition("=")
            key = _expand(key, env, df.escape, ins.line)
            value = _expand(default, env, df.escape, ins.line) if eq else None
            override = build_args.get(key)
            meta[key] = override if override is not None else value
    return meta


def _mount_froms(ins: Instruction) -> list[str]:
    out = []
    for spec in ins.flag_all("mount"):
        for part in spec.split(","):
            k, _, v = part.partition("=")
            if k.strip() == "from" and v:
                out.append(v.strip())
    return out


def _deps(df: Dockerfile, st: Stage, meta_env: Mapping[str, str]) -> list[int]:
    deps: list[int] = []
    for ins in st.instructions:
        refs = []
        if ins.cmd == "COPY" and ins.flag("from"):
            refs.append(ins.flag("from") or "")
        if ins.cmd == "RUN":
            refs += _mount_froms(ins)
        for ref in refs:
            value = _expand(ref, meta_env, df.escape, ins.line)
            idx = stage_ref(df, value, st.index, ins.line)
            if idx is not None and idx not in deps:
                deps.append(idx)
    return deps


def _order(target: int, deps: Mapping[int, Sequence[int]], names: Sequence[str]) -> list[int]:
    order: list[int] = []
    state: dict[int, str] = {}

    def visit(i: int) -> None:
        if state.get(i) == "done":
            return
        if state.get(i) == "active":
            raise BuildError(f"circular dependency detected on stage: {names[i] or i}")
        state[i] = "active"
        for d in sorted(deps[i]):
            visit(d)
        state[i] = "done"
        order.append(i)

    visit(target)
    return order


def plan_build(dockerfile: Dockerfile, *, target: str | None = None,
               build_args: Mapping[str, str | None] | None = None,
               platform_args: Mapping[str, str] | None = None) -> BuildPlan:
    """Resolve stages, the target and the build order.

    Args:
        build_args: `--build-arg` values; None means "given without a value" (Docker sends that
            when the client has no such variable): it overrides nothing but counts as given.
        platform_args: BuildKit's automatic args (BUILDPLATFORM, TARGETARCH ...), global scope.

    Raises:
        InvalidArgument: `target stage "x" could not be found`.
        BuildError: a substitution that fails, a bad stage index, a dependency cycle.
    """
    df, build_args = dockerfile, dict(build_args or {})
    meta = _resolve_meta(df, build_args, dict(platform_args or {}))
    meta_env = {k: v for k, v in meta.items() if v is not None}
    meta_env.update({k: v for k in PROXY_ARGS if (v := build_args.get(k)) is not None})
    if target:
        st = df.stage(target, by_index=False)
        if st is None:
            raise InvalidArgument(f'target stage "{target}" could not be found')
        target_index = st.index
    else:
        target_index = len(df.stages) - 1
    bases: dict[int, tuple[str, int | None, str]] = {}
    deps: dict[int, list[int]] = {}
    for st in df.stages:
        base = _expand(st.base, meta_env, df.escape, st.line)
        platform = _expand(st.platform, meta_env, df.escape, st.line) if st.platform else ""
        ref = df.stage(base, by_index=False) if base else None
        base_stage = ref.index if ref is not None and ref.index < st.index else None
        if not base:
            raise BuildError(f"base name ({st.base}) should not be blank", line=st.line)
        bases[st.index] = (base, base_stage, platform)
        deps[st.index] = ([base_stage] if base_stage is not None else []) + \
            [d for d in _deps(df, st, meta_env) if d != base_stage]
    order = _order(target_index, deps, [s.name for s in df.stages])
    number = len(df.global_args) + 1
    plans: list[StagePlan] = []
    for i in order:
        st = df.stages[i]
        base, base_stage, platform = bases[i]
        plans.append(StagePlan(i, st.name, st, base, base_stage, platform, tuple(deps[i]), number))
        number += 1 + len(st.instructions)
    consumed = set(meta) - set(platform_args or {})
    for sp in plans:
        for ins in sp.stage.instructions:
            if ins.cmd == "ARG":
                consumed.update(w.partition("=")[0] for w in ins.args)
    meta_steps = tuple((n + 1, ins.original) for n, ins in enumerate(df.global_args))
    return BuildPlan(df, tuple(plans), target_index, build_args, meta, meta_steps, number - 1,
                     frozenset(consumed))


# --------------------------------------------------------------------------- evaluation


def evaluate_stage(plan: BuildPlan, stage: StagePlan,
                   base_config: Mapping[str, Any] | None) -> StageSteps:
    """Every step of `stage`, substituted against `base_config` (the base image's "config").

    Raises:
        BuildError: a substitution, port, signal, WORKDIR, --from or ONBUILD trigger error,
            with the instruction's line and Docker's wording.
    """
    config: JSON = copy.deepcopy(dict(base_config or {}))
    triggers = [str(t) for t in (config.get("OnBuild") or [])]
    if "OnBuild" in config:
        config["OnBuild"] = None
    state = StageState(plan, config, stage.index)
    steps = [_step(state, parse_instruction(t), None, trigger=True) for t in triggers]
    steps += [_step(state, ins, stage.number + 1 + n)
              for n, ins in enumerate(stage.stage.instructions)]
    return StageSteps(stage, tuple(steps), copy.deepcopy(state.config), state.author,
                      frozenset(state.declared), len(triggers))


def _step(state: StageState, ins: Instruction, number: int | None, *, trigger: bool = False
          ) -> Step:
    shell = state.shell()
    try:
        action, used, comment = state.apply(ins)
    except (ShellWordError, StepError) as err:
        msg = err.message if isinstance(err, ShellWordError) else str(err)
        raise BuildError(msg, step=ins.original, line=ins.line) from None
    if isinstance(action, RunAction):
        history = " ".join(([comment] if comment else []) + list(action.argv))
    elif ins.cmd == "WORKDIR":
        history = f"{' '.join(shell)} #(nop) {comment}"
    else:
        history = f"{' '.join(shell)} #(nop)  {comment}"
    return Step(number, ins.original, ins, action, copy.deepcopy(state.config), state.author,
                used, shell, history, trigger)
