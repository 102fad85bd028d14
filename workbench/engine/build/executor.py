"""The build executor: runs a `BuildPlan` stage by stage and step by step, yielding Docker's output.

For each stage (dependencies first) the base is resolved (`scratch`, an image in the store, or an
earlier stage's result) and `plan.evaluate_stage` gives its steps. Each step then:

1. computes its cache key from the parent image ID, the instruction after substitution, the build
   args it uses and, for COPY/ADD, the content hash of its sources (`steps.py` finds and hashes
   them: context files, files of a `--from` stage or image, downloads, heredocs);
2. on a hit (unless `nocache`) reuses the cached image: ` ---> Using cache`;
3. otherwise runs: RUN in a container (output streamed as it is logged), COPY/ADD into an overlay
   of the parent, WORKDIR creating its directory; each makes one layer from the upper dir, other
   instructions change only the config;
4. records the step's image (config, history, layers; parent = the previous step's image) and the
   cache entry, and prints ` ---> <id>`.

Every sandbox (mounts, container dir) is removed whatever happens, also when the client goes away
mid-build (the async generator's `aclose()` runs the cleanup). Blocking work runs in threads.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.engine.build.cache import BuildCache
from workbench.engine.build.commit import BuiltImage, commit_layer, created_time
from workbench.engine.build.context import SourceTree
from workbench.engine.build.plan import (
    BuildPlan, ConfigAction, CopyAction, RunAction, StagePlan, Step, combine_source_hashes, evaluate_stage)
from workbench.engine.build.runner import RunLimits, RunResult, Sandbox, prepare_run, run_container
from workbench.engine.build.steps import CopySources, do_copy, make_workdir, run_mounts
from workbench.engine.runtime.runc import RuntimeFailure
from workbench.engine.services.image_io import ImageIO
from workbench.errors import BuildError, NotFound, WorkbenchError

__all__ = ["BuildEvent", "ExecOptions", "Executor", "PullFn", "StepFailed", "short_id"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StepFailed(BuildError):
    """A RUN exited non-zero (or could not start): `code` is its exit code, Docker's errorDetail code."""


@dataclass(frozen=True, slots=True)
class BuildEvent:
    """One message of the build's progress: output text, an aux record (the image ID), or a pull's
    progress message as Docker writes it (`progress`, passed through)."""

    stream: str = ""
    aux: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None


PullFn = Callable[[str], AsyncIterator[dict[str, Any]]]
"""Pull an image reference into the store, yielding Docker's pull progress messages."""


@dataclass(frozen=True, slots=True)
class ExecOptions:
    nocache: bool = False
    epoch: int | None = None              # SOURCE_DATE_EPOCH
    limits: RunLimits = field(default_factory=RunLimits)
    pull: bool = False                    # pull FROM images even when they are in the store


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _with_default_path(config: dict[str, Any] | None) -> dict[str, Any]:
    """moby's setDefaultPath: every stage's config has a PATH."""
    out = copy.deepcopy(config) if config else {}
    env = list(out.get("Env") or [])
    if not any(e.partition("=")[0] == "PATH" for e in env):
        env.append("PATH=" + DEFAULT_PATH)
    out["Env"] = env
    return out


def _say(text: str) -> BuildEvent:
    return BuildEvent(stream=text)


def _step_line(number: int, total: int, text: str) -> tuple[BuildEvent, BuildEvent]:
    """`Step n/N : ...` and its newline, as two messages, the way dockerd writes them."""
    return _say(f"Step {number}/{total} : {text}"), _say("\n")


class Executor:
    """Runs one plan. `result` is the target stage's image once `run()` is exhausted.

    Args:
        image_io: registers images and ingests/unpacks layers (its `images` is the ImageService).
        runtime: the container runtime (`start`, `wait_exit`, `kill`).
        cache: the build cache.
        context: the extracted build context.
        workdir: this build's private scratch directory (sandboxes go below it).
        cache_mounts: where `RUN --mount=type=cache` directories persist.
    """

    def __init__(self, *, image_io: ImageIO, runtime: Any, cache: BuildCache, context: SourceTree,
                 workdir: Path, cache_mounts: Path, options: ExecOptions, pull: PullFn | None = None) -> None:
        self.image_io = image_io
        self.snapshots = image_io.images.snapshots
        self.runtime = runtime
        self.cache = cache
        self.context = context
        self.workdir = Path(workdir)
        self.cache_mounts = Path(cache_mounts)
        self.opts = options
        self.pull = pull
        self.stages: dict[int, BuiltImage] = {}
        self.declared: set[str] = set()
        self.result: BuiltImage | None = None
        self.plan: BuildPlan | None = None

    # -- driver ----------------------------------------------------------------------------
    async def run(self, plan: BuildPlan) -> AsyncIterator[BuildEvent]:
        self.plan, total = plan, plan.total_steps
        for number, text in plan.meta_steps:
            for ev in _step_line(number, total, text):
                yield ev
        for sp in plan.stages:
            for ev in _step_line(sp.number, total, sp.display):
                yield ev
            if sp.base_stage is None and sp.base.lower() != "scratch":
                async for ev in self._maybe_pull(sp.base):
                    yield ev
            image = await self._base(sp)
            yield _say(f" ---> {short_id(image.id)}\n")
            evaluated = evaluate_stage(plan, sp, _with_default_path(image.config))
            self.declared |= evaluated.declared_args
            if evaluated.trigger_count:
                n = evaluated.trigger_count
                yield _say(f"# Executing {n} build trigger{'s' if n > 1 else ''}\n")
            for step in evaluated.steps:
                if step.number is not None:
                    for ev in _step_line(step.number, total, step.display):
                        yield ev
                box: list[BuiltImage] = []
                async for ev in self._step(step, image, box):
                    yield ev
                image = box[0]
                yield _say(f" ---> {short_id(image.id)}\n")
            self.stages[sp.index] = image
        self.result = self.stages[plan.target]

    async def _maybe_pull(self, ref: str, what: str = "") -> AsyncIterator[BuildEvent]:
        """Pull `ref` when it is missing from the store (or always, with the `pull` option);
        errors are prefixed with `what` (`invalid from flag value x`), as dockerd words them."""
        if self.pull is None or not (self.opts.pull or self.image_io.images.find(ref) is None):
            return
        try:
            async for progress in self.pull(ref):
                yield BuildEvent(progress=progress)
        except WorkbenchError as err:
            if not what:
                raise
            raise BuildError(f"{what}: {err.message}") from err

    async def _base(self, sp: StagePlan) -> BuiltImage:
        if sp.base_stage is not None:
            return self.stages[sp.base_stage]
        if sp.base.lower() == "scratch":
            return BuiltImage.scratch()
        return await self._image(sp.base, "")

    async def _image(self, ref: str, what: str) -> BuiltImage:
        try:
            return await asyncio.to_thread(BuiltImage.load, self.image_io, ref)
        except NotFound as err:
            prefix = f"{what}: " if what else ""
            raise BuildError(f"{prefix}pull access denied for {ref}, repository does not exist or may "
                             f"require 'docker login': {err.message}") from None

    # -- one step --------------------------------------------------------------------------
    async def _step(self, step: Step, parent: BuiltImage, out: list[BuiltImage]) -> AsyncIterator[BuildEvent]:
        action = step.action
        box: Sandbox | None = None
        try:
            sources, hashes = None, ""
            if isinstance(action, CopyAction):
                if action.from_image:
                    async for ev in self._maybe_pull(action.from_image,
                                                     f"invalid from flag value {action.from_image}"):
                        yield ev
                box = self._sandbox()
                sources = await self._copy_sources(action, box)
                hashes = combine_source_hashes(sources.hashes) if sources.hashes else ""
            key = step.cache_key(parent.id, hashes)
            hit = None if self.opts.nocache else await asyncio.to_thread(self.cache.lookup, key)
            if hit is not None:
                yield _say(" ---> Using cache\n")
                out.append(await asyncio.to_thread(BuiltImage.load, self.image_io, hit))
                return
            layer = None
            if isinstance(action, RunAction):
                box = box or self._sandbox()
                yield _say(f" ---> Running in {box.cid[:12]}\n")
                async for ev in self._run(step, action, parent, box):
                    yield ev
                layer = await asyncio.to_thread(self._commit, box, parent)
                await asyncio.to_thread(box.remove, self.snapshots)
                cid, box = box.cid, None
                yield _say(f"Removing intermediate container {cid[:12]}\n")
            elif isinstance(action, CopyAction):
                assert box is not None and sources is not None
                await asyncio.to_thread(self._copy, box, parent, action, sources)
                layer = await asyncio.to_thread(self._commit, box, parent)
            elif isinstance(action, ConfigAction) and action.cmd == "WORKDIR":
                box = self._sandbox()
                if await asyncio.to_thread(self._workdir, box, parent, action.values[0]):
                    layer = await asyncio.to_thread(self._commit, box, parent)
            doc = parent.child(config=step.config, author=step.author, created=created_time(self.opts.epoch),
                               created_by=step.created_by(hashes), layer=layer)
            image = await asyncio.to_thread(parent.register, self.image_io, doc, layer)
            await asyncio.to_thread(self.cache.store, key, image.id)
            out.append(image)
        finally:
            if box is not None:
                await asyncio.to_thread(box.remove, self.snapshots)

    def _sandbox(self) -> Sandbox:
        cid = secrets.token_hex(32)
        return Sandbox(self.workdir / cid, cid)

    def _commit(self, box: Sandbox, parent: BuiltImage) -> Any:
        box.unmount(self.snapshots)
        return commit_layer(self.image_io, box.upper, parent.chain, epoch=self.opts.epoch)

    def _root_of(self, box: Sandbox, name: str) -> Path:
        """Mount a `RUN --mount from=` stage or image read-only in the sandbox (blocking)."""
        stage = self.plan.dockerfile.stage(name) if self.plan is not None else None
        if stage is not None and stage.index in self.stages:
            image = self.stages[stage.index]
        else:
            try:
                image = BuiltImage.load(self.image_io, name)
            except NotFound as err:
                raise BuildError(f"--mount from={name}: {err.message}") from None
        return box.mount_view(self.snapshots, image.chain, f"mnt-{len(box.mounted)}")

    # -- COPY / ADD --------------------------------------------------------------------------
    async def _copy_sources(self, action: CopyAction, box: Sandbox) -> CopySources:
        tree = self.context
        if action.from_stage is not None or action.from_image:
            if action.from_stage is not None:
                src_image = self.stages[action.from_stage]
            else:
                src_image = await self._image(action.from_image, f"invalid from flag value {action.from_image}")
            root = await asyncio.to_thread(box.mount_view, self.snapshots, src_image.chain, "from")
            tree = SourceTree(root, what="image")
        return await asyncio.to_thread(CopySources.collect, tree, action, box.dir)

    def _copy(self, box: Sandbox, parent: BuiltImage, action: CopyAction, sources: CopySources) -> None:
        box.mount(self.snapshots, parent.chain)
        do_copy(box.rootfs, action, sources)

    def _workdir(self, box: Sandbox, parent: BuiltImage, path: str) -> bool:
        box.mount(self.snapshots, parent.chain)
        return make_workdir(box.rootfs, path)

    # -- RUN ---------------------------------------------------------------------------------
    async def _run(self, step: Step, action: RunAction, parent: BuiltImage, box: Sandbox) -> AsyncIterator[BuildEvent]:
        volumes = list((parent.config or {}).get("Volumes") or {})

        def prepare() -> None:
            box.mount(self.snapshots, parent.chain)
            mounts = run_mounts(action.mounts, self.context, self.cache_mounts,
                                lambda name: self._root_of(box, name))
            prepare_run(box, action, self.opts.limits, volumes=volumes, mounts=mounts)

        await asyncio.to_thread(prepare)
        result = RunResult(0, False, "", [])
        try:
            async for text in run_container(self.runtime, box, result):
                yield _say(text)
        except RuntimeFailure as err:
            raise StepFailed(err.message, step=step.display, code=err.exit_status if err.exit_status > 0 else 1,
                             log="\n".join(result.tail)) from None
        if result.exit_code != 0:
            raise StepFailed(f"The command '{' '.join(action.argv)}' returned a non-zero code: "
                             f"{result.exit_code}", step=step.display, code=result.exit_code,
                             log="\n".join(result.tail))

        def settle() -> None:
            box.unmount(self.snapshots)
            box.drop_stubs()
            box.discard_volumes(volumes)

        await asyncio.to_thread(settle)


def describe_error(err: WorkbenchError) -> tuple[str, int | None]:
    """(message, errorDetail code) for an error in the stream: only RUN failures carry a code."""
    return err.message, (err.code if isinstance(err, StepFailed) else None)
