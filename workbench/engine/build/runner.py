"""Sandboxes for build steps, and RUN in a real container from the runtime.

A `Sandbox` is one step's directory: `rootfs/` (an overlay mount of the parent image's snapshots
under a fresh `upper/`), `work/`, the OCI bundle, hosts/hostname/resolv.conf and the monitor's
files. COPY/ADD write into the mount directly; RUN starts a container on it (`run_container`),
with the stage's env, workdir, user and shell, streaming its json-file log live.

The committed layer is the upper dir's content, so what only the runtime needed is taken out of it
after the run, as Docker's init layer keeps it out of the container's diff: mount points runc had
to create (`/etc/hosts`, `/etc/resolv.conf`, `/proc`, `--mount` targets...) and directories copied
up only to hold them. Changes under a declared VOLUME are discarded, as the classic builder does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.engine.build.plan import RunAction
from workbench.engine.runtime.bundle import RunSpec, write_bundle
from workbench.engine.services import logs
from workbench.engine.services.mounts import DEFAULT_HOSTS, RUNTIME_PATHS, host_resolv_conf
from workbench.engine.services.users import resolve_user
from workbench.engine.store.layers import OPAQUE_XATTR
from workbench.engine.store.paths import mkdir_in, secure_join
from workbench.errors import BuildError, InvalidArgument, WorkbenchError

__all__ = ["RunLimits", "Sandbox", "run_container"]

_TAIL_LINES = 20


@dataclass(frozen=True, slots=True)
class RunLimits:
    """Build-wide container settings from the request (`networkmode`, `memory`, `cpu*`...)."""

    network: str = "none"               # "none" | "host"
    memory: int | None = None
    memory_swap: int | None = None
    nano_cpus: int | None = None
    shm_size: int | None = None
    extra_hosts: tuple[str, ...] = ()    # "name:ip"


@dataclass
class Sandbox:
    """One step's directory and overlay mount. `cid` names the container (and the directory)."""

    dir: Path
    cid: str
    mounted: list[Path] = field(default_factory=list)
    stubs: dict[str, bool] = field(default_factory=dict)        # runtime stub → existed before
    parents: dict[str, tuple[int, int, int] | None] = field(default_factory=dict)  # dir → (mode, uid, gid)

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def log(self) -> Path:
        return self.dir / f"{self.cid}-json.log"

    def mount(self, snapshots: Any, chain: str | None) -> None:
        for d in (self.rootfs, self.upper, self.dir / "work"):
            d.mkdir(parents=True, exist_ok=True)
        self.upper.chmod(0o755)
        snapshots.mount(self.rootfs, self.upper, self.dir / "work", chain)
        self.mounted.append(self.rootfs)

    def mount_view(self, snapshots: Any, chain: str | None, name: str) -> Path:
        """A read-only view of an image (a `--from` source), unmounted with the sandbox."""
        target = self.dir / name
        target.mkdir(parents=True, exist_ok=True)
        snapshots.mount(target, None, None, chain)
        self.mounted.append(target)
        return target

    def unmount(self, snapshots: Any) -> None:
        """Unmount everything this sandbox mounted (idempotent, never raises)."""
        while self.mounted:
            target = self.mounted.pop()
            with contextlib.suppress(OSError, WorkbenchError):
                snapshots.unmount(target)

    def remove(self, snapshots: Any) -> None:
        self.unmount(snapshots)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- runtime stubs ---------------------------------------------------------------------
    def note_stubs(self, extra: Sequence[str] = ()) -> None:
        """Record, before the run, which mount points exist in the image (and their parents)."""
        for rel in (*RUNTIME_PATHS, *(p.strip("/") for p in extra)):
            if not rel:
                continue
            self.stubs[rel] = os.path.lexists(self.rootfs / rel)
            parent = rel.rpartition("/")[0]
            while parent and parent not in self.parents:
                try:
                    st = os.lstat(self.rootfs / parent)
                    self.parents[parent] = (st.st_mode, st.st_uid, st.st_gid)
                except OSError:
                    self.parents[parent] = None
                parent = parent.rpartition("/")[0]

    def drop_stubs(self) -> None:
        """After the run (unmounted): remove mount points runc created, and copied-up parents that
        hold nothing else, from the upper dir."""
        for rel, existed in self.stubs.items():
            if existed:
                continue
            path = self.upper / rel
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                with contextlib.suppress(OSError):
                    os.rmdir(path)
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(path)
            self._drop_parents(rel.rpartition("/")[0])

    def _drop_parents(self, parent: str) -> None:
        while parent:
            path = self.upper / parent
            if parent not in self.parents:
                return
            want = self.parents[parent]
            try:
                st = os.lstat(path)
                if (not stat.S_ISDIR(st.st_mode) or os.listdir(path)
                        or (want is not None and (st.st_mode, st.st_uid, st.st_gid) != want)
                        or _xattr(path, OPAQUE_XATTR) == b"y"):
                    return
                os.rmdir(path)
            except OSError:
                return
            parent = parent.rpartition("/")[0]

    def discard_volumes(self, volumes: Sequence[str]) -> None:
        """Throw away what a RUN changed under declared volumes (the classic builder does)."""
        for vol in volumes:
            rel = vol.strip("/")
            if not rel:
                continue
            path = self.upper / rel
            if not os.path.lexists(path):
                continue
            if self.stubs.get("volume:" + rel, True):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() \
                    else path.unlink()
            else:
                for child in path.iterdir():
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def _xattr(path: Path, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def _hosts(hostname: str, limits: RunLimits) -> str:
    extra = "".join(f"{ip}\t{name}\n" for name, _, ip in (h.partition(":") for h in limits.extra_hosts) if ip)
    return DEFAULT_HOSTS + extra + f"127.0.1.1\t{hostname}\n"


def prepare_run(box: Sandbox, action: RunAction, limits: RunLimits, *, volumes: Sequence[str] = (),
                mounts: Sequence[tuple[str, str, str, list[str]]] = ()) -> RunSpec:
    """Resolve the user, create the workdir, write the hosts files and the bundle (blocking).

    Raises:
        BuildError: an unknown user, a bad workdir.
    """
    rootfs = box.rootfs
    try:
        user = resolve_user(rootfs, action.user)
    except InvalidArgument as err:
        raise BuildError(err.message) from None
    workdir = action.workdir or "/"
    if not workdir.startswith("/"):
        raise BuildError(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    box.note_stubs([m[1] for m in mounts])
    for vol in volumes:
        rel = vol.strip("/")
        if rel:
            box.stubs["volume:" + rel] = os.path.lexists(secure_join(rootfs, rel))
    mkdir_in(rootfs, workdir)
    hostname = box.cid[:12]
    (box.dir / "hostname").write_text(hostname + "\n")
    (box.dir / "hosts").write_text(_hosts(hostname, limits))
    network = action.network or "default"
    if network not in ("default", "none", "host"):
        raise BuildError(f"unsupported network mode for RUN: {network}")
    network = limits.network if network == "default" else network
    (box.dir / "resolv.conf").write_text(host_resolv_conf())
    binds: list[tuple[str, str, str, list[str]]] = [
        (str(box.dir / name), f"/etc/{name}", "bind", ["rbind", "rprivate"])
        for name in ("hosts", "hostname", "resolv.conf")]
    for n, doc in enumerate(action.files):
        path = box.dir / f"heredoc-{n}"
        path.write_text(doc.data)
        path.chmod(doc.mode)
        binds.append((str(path), doc.path, "bind", ["rbind", "ro"]))
    env = list(action.env)
    if not any(e.startswith("HOSTNAME=") for e in env):
        env.append(f"HOSTNAME={hostname}")
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    spec = RunSpec(args=list(action.argv), env=env, cwd=workdir, uid=user.uid, gid=user.gid,
                   additional_gids=list(user.additional_gids), hostname=hostname, rootfs=rootfs,
                   mounts=[*binds, *mounts], memory=limits.memory, memory_swap=limits.memory_swap,
                   nano_cpus=limits.nano_cpus, network=network, shm_size=limits.shm_size)
    write_bundle(box.dir, box.cid, spec)
    return spec


@dataclass
class RunResult:
    exit_code: int
    oom_killed: bool
    error: str
    tail: list[str]


async def run_container(runtime: Any, box: Sandbox, result: RunResult,
                        *, interval: float = 0.05) -> AsyncIterator[str]:
    """Start the prepared sandbox's container and yield its output as it is logged; fill `result`.

    On cancellation the container is killed and waited for before this returns.
    """
    await runtime.start(box.cid, box.dir, box.dir)
    waiter = asyncio.ensure_future(runtime.wait_exit(box.dir))
    offset = 0
    opts = logs.LogOptions()
    try:
        while True:
            done = waiter.done()
            entries, offset = await asyncio.to_thread(logs.iter_new, box.log, offset, opts)
            for _, data in entries:
                text = data.decode("utf-8", "replace")
                result.tail = (result.tail + text.splitlines())[-_TAIL_LINES:]
                yield text
            if done:
                break
            await asyncio.wait({waiter}, timeout=interval)
        status = waiter.result()
        result.exit_code, result.oom_killed, result.error = status.exit_code, status.oom_killed, status.error
    finally:
        if not waiter.done():
            with contextlib.suppress(Exception):
                runtime.kill(box.cid, 9)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(waiter), 10)
            waiter.cancel()
