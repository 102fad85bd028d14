"""BuildService: a build context and options → an image, as Docker's classic builder makes it.

`build(options, body)` is an async iterator of `BuildEvent`s (output text, then the image ID as an
aux record and Docker's `Successfully built` / `Successfully tagged` lines). Errors a user can
cause raise `BuildError` / `InvalidArgument`: before the first event they are plain request errors;
after it the caller reports them in-stream. Nothing is tagged unless the whole build succeeded,
every sandbox and the extracted context are removed whatever happens, and blocking work (tar,
hashing, copying, layer commits) runs in worker threads so the daemon keeps serving.

With SOURCE_DATE_EPOCH (a build arg, else the daemon's environment) every `created` time is the
epoch and layer mtimes are clamped to it, so two clean builds give byte-identical image IDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from workbench.engine.build.cache import BuildCache
from workbench.engine.build.context import SourceTree, apply_dockerignore, extract_context, read_dockerfile
from workbench.engine.build.dockerfile import Dockerfile, Instruction, parse
from workbench.engine.build.executor import BuildEvent, ExecOptions, Executor, PullFn, short_id
from workbench.engine.build.plan import plan_build, unused_args_warning
from workbench.engine.build.runner import RunLimits
from workbench.engine.services.image_io import ImageIO
from workbench.errors import BuildError, InvalidArgument
from workbench.oci import reference
from workbench.oci.image import default_platform, parse_platform, platform_matches

__all__ = ["BuildEvent", "BuildOptions", "BuildService"]

EPOCH_ARG = "SOURCE_DATE_EPOCH"


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """`POST /build`'s parameters, parsed (Docker's names in the comments)."""

    tags: tuple[str, ...] = ()                                 # t
    dockerfile: str = "Dockerfile"                             # dockerfile
    build_args: Mapping[str, str | None] = field(default_factory=dict)   # buildargs
    labels: Mapping[str, str] = field(default_factory=dict)   # labels
    target: str = ""                                           # target
    nocache: bool = False                                      # nocache
    rm: bool = True                                            # rm (intermediate containers are always removed)
    forcerm: bool = False                                      # forcerm
    quiet: bool = False                                        # q
    pull: bool = False                                         # pull (FROM images, even when present)
    cache_from: tuple[str, ...] = ()                           # cachefrom (accepted)
    network_mode: str = ""                                     # networkmode: "host" or none
    memory: int | None = None                                  # memory
    memory_swap: int | None = None                             # memswap
    cpu_quota: int | None = None                               # cpuquota
    cpu_period: int | None = None                              # cpuperiod
    shm_size: int | None = None                                # shmsize
    extra_hosts: tuple[str, ...] = ()                          # extrahosts ("name:ip")
    platform: str = ""                                         # platform


def _platform_args(platform: str) -> dict[str, str]:
    p = parse_platform(platform or None)
    text = "/".join(x for x in (p["os"], p["architecture"], p.get("variant", "")) if x)
    out = {"BUILDPLATFORM": text, "BUILDOS": p["os"], "BUILDARCH": p["architecture"],
           "TARGETPLATFORM": text, "TARGETOS": p["os"], "TARGETARCH": p["architecture"]}
    if p.get("variant"):
        out["BUILDVARIANT"] = out["TARGETVARIANT"] = p["variant"]
    return out


def _literal(text: str, escape: str) -> str:
    """A word the Dockerfile lexer reads back unchanged (quotes, `$` and the escape escaped)."""
    return "".join(escape + c if c in "\"'$" + escape else c for c in text)


def with_labels(df: Dockerfile, target: str, labels: Mapping[str, str]) -> Dockerfile:
    """Append one `LABEL k=v` step per `--label` (sorted) to the target stage, as moby does."""
    if not labels:
        return df
    st = df.stage(target, by_index=False) if target else df.stages[-1]
    if st is None:
        return df  # plan_build reports the unknown target
    extra = tuple(Instruction("LABEL", (_literal(k, df.escape), _literal(labels[k], df.escape)),
                              f"LABEL {k}={labels[k]}", line=st.instructions[-1].line if st.instructions
                              else st.line) for k in sorted(labels))
    stages = list(df.stages)
    stages[st.index] = replace(st, instructions=st.instructions + extra)
    return replace(df, stages=tuple(stages))


def source_date_epoch(build_args: Mapping[str, str | None]) -> int | None:
    raw = build_args.get(EPOCH_ARG) or os.environ.get(EPOCH_ARG)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {EPOCH_ARG} {raw!r}: must be an integer (unix seconds)") from None
    if value < 0:
        raise InvalidArgument(f"invalid {EPOCH_ARG} {raw!r}: must not be negative")
    return value


class BuildService:
    """Args:
        image_io: the image store's register/ingest side (`image_io.images` is the ImageService).
        runtime: the container runtime RUN steps use.
        tmp_dir: where each build gets a private directory (`build-<random>`).
        cache_mounts: where `RUN --mount=type=cache` directories persist.
    """

    def __init__(self, image_io: ImageIO, runtime: Any, tmp_dir: Path, cache_mounts: Path) -> None:
        self.image_io = image_io
        self.images = image_io.images
        self.runtime = runtime
        self.tmp_dir = Path(tmp_dir)
        self.cache_mounts = Path(cache_mounts)
        self.cache = BuildCache(self.images.md, self.images)

    # -- recovery --------------------------------------------------------------------------
    def recover(self) -> None:
        """Remove what builds interrupted by a daemon stop left: containers, mounts, directories."""
        for build_dir in self.tmp_dir.glob("build-*"):
            for box in build_dir.iterdir() if build_dir.is_dir() else ():
                if self.runtime.monitor_alive(box):
                    with contextlib.suppress(Exception):
                        self.runtime.kill(box.name, 9)
                    deadline = time.monotonic() + 10    # its monitor records the exit, then leaves
                    while self.runtime.monitor_alive(box) and time.monotonic() < deadline:
                        time.sleep(0.05)
                with contextlib.suppress(Exception):
                    self.runtime.delete(box.name, force=True)
            _unmount_below(build_dir, self.images.snapshots)
            shutil.rmtree(build_dir, ignore_errors=True)

    def prune(self) -> dict[str, Any]:
        return {"CachesDeleted": self.cache.prune() or None, "SpaceReclaimed": 0}

    # -- build -----------------------------------------------------------------------------
    def check(self, opts: BuildOptions) -> list[str]:
        """Validate what can be checked before reading the context; return the tags to set."""
        tags = []
        for t in opts.tags:
            try:
                ref = reference.parse(t)
            except InvalidArgument as err:
                raise InvalidArgument(f"invalid reference format: {t}: {err.message}") from None
            if ref.digest:
                raise InvalidArgument(f"invalid tag {t}: a tag cannot contain a digest")
            tags.append(ref.with_default_tag().familiar)
        if opts.platform and not platform_matches(default_platform(), parse_platform(opts.platform)):
            raise InvalidArgument(f"platform {opts.platform} is not supported by this daemon "
                                  f"(linux/{default_platform()['architecture']} only)")
        source_date_epoch(opts.build_args)
        return tags

    async def build(self, opts: BuildOptions, body: BinaryIO, *, pull: PullFn | None = None
                    ) -> AsyncIterator[BuildEvent]:
        """Build from the context tar read from `body` (a blocking reader, read in a worker thread
        to its end); see the module docstring and `_build`. Layer collection waits while a build
        runs: each step's layer is made before the step's image refers to it."""
        async with self.images.gc.busy_async():
            async for ev in self._build(opts, body, pull=pull):
                yield ev

    async def _build(self, opts: BuildOptions, body: BinaryIO, *, pull: PullFn | None = None
                     ) -> AsyncIterator[BuildEvent]:
        """The build itself.

        Args:
            pull: fetches a FROM image missing from the store (or every one, with `opts.pull`);
                without it such an image is an error.
        """
        tags = self.check(opts)
        epoch = source_date_epoch(opts.build_args)
        workdir = self.tmp_dir / f"build-{secrets.token_hex(6)}"
        context = workdir / "context"
        try:
            plan, digests = await asyncio.to_thread(self._prepare, opts, body, context)
            limits = RunLimits(network="host" if opts.network_mode == "host" else "none",
                               memory=opts.memory or None, memory_swap=opts.memory_swap or None,
                               nano_cpus=_nano_cpus(opts.cpu_quota, opts.cpu_period),
                               shm_size=opts.shm_size or None, extra_hosts=opts.extra_hosts)
            executor = Executor(image_io=self.image_io, runtime=self.runtime, cache=self.cache,
                                context=SourceTree(context, known=digests), workdir=workdir,
                                cache_mounts=self.cache_mounts,
                                options=ExecOptions(nocache=opts.nocache, epoch=epoch, limits=limits,
                                                    pull=opts.pull), pull=pull)
            held: list[BuildEvent] = []
            try:
                async for ev in executor.run(plan):
                    if opts.quiet:
                        held.append(ev)
                    else:
                        yield ev
            except Exception:
                for ev in held:  # a quiet build that fails shows its output after all, as dockerd does
                    yield ev
                raise
            result = executor.result
            if result is None or not result.id:
                raise BuildError("No image was generated. Is your Dockerfile empty?")
            unused = plan.unused_build_args(also_consumed={*executor.declared, EPOCH_ARG})
            if unused and not opts.quiet:
                yield BuildEvent(stream=unused_args_warning(unused) + "\n")
            for t in tags:
                repo, _, tag = t.rpartition(":")
                await asyncio.to_thread(self.images.tag, result.id, repo, tag)
            if opts.quiet:
                yield BuildEvent(stream=result.id + "\n")
                return
            yield BuildEvent(aux={"ID": result.id})
            yield BuildEvent(stream=f"Successfully built {short_id(result.id)}\n")
            for t in tags:
                yield BuildEvent(stream=f"Successfully tagged {t}\n")
        finally:
            await asyncio.to_thread(self._cleanup, workdir)

    def _prepare(self, opts: BuildOptions, body: BinaryIO, context: Path) -> tuple[Any, dict[str, Any]]:
        context.mkdir(parents=True)
        digests = extract_context(body, context)
        name, text = read_dockerfile(context, opts.dockerfile)
        apply_dockerignore(context)
        df = with_labels(parse(text, name=name), opts.target, opts.labels)
        plan = plan_build(df, target=opts.target or None, build_args=dict(opts.build_args),
                          platform_args=_platform_args(opts.platform))
        return plan, digests

    def _cleanup(self, workdir: Path) -> None:
        _unmount_below(workdir, self.images.snapshots)
        shutil.rmtree(workdir, ignore_errors=True)


def _nano_cpus(quota: int | None, period: int | None) -> int | None:
    if not quota or quota <= 0:
        return None
    return quota * 1_000_000_000 // (period or 100_000)


def _unmount_below(top: Path, snapshots: Any) -> None:
    """Detach every mount under `top`, deepest first (leftovers of an interrupted build)."""
    prefix = str(top.resolve()) + "/"
    points = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp.startswith(prefix):
                points.append(mp)
    for mp in sorted(points, key=len, reverse=True):
        with contextlib.suppress(Exception):
            snapshots.unmount(Path(mp))
