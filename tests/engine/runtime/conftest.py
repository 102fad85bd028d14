"""Fixtures for the runtime tests: real runc (and crun where installed), a busybox rootfs under a real
overlay mount per container, and teardown that leaves no container, monitor, cgroup or mount behind.

Everything here needs root: namespaces, overlay mounts and cgroups are the point of these tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workbench.engine.runtime import ExitStatus, Runtime
from workbench.engine.runtime.bundle import RunSpec, write_bundle

RUNTIMES = ["runc"] + (["crun"] if shutil.which("crun") else [])
CGROUP_ROOT = Path("/sys/fs/cgroup")


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the runtime tests need root (namespaces, overlay mounts, cgroups)")
    if shutil.which("runc") is None:
        pytest.fail("runc is required: apt-get install runc")


@pytest.fixture(scope="session")
def lower() -> Iterator[Path]:
    """A busybox rootfs: the host's static busybox with every applet symlinked (`--install -s`)."""
    require_root()
    base = Path(tempfile.mkdtemp(prefix="wbrt-lower-", dir="/tmp"))
    root = base / "rootfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root"):
        (root / d).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    subprocess.run(["chroot", str(root), "/bin/busybox", "--install", "-s", "/bin"], check=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    yield root
    shutil.rmtree(base, ignore_errors=True)


def run(coro):
    return asyncio.run(coro)


@dataclass
class Box:
    """One test's runtime, containers and mounts; `close()` removes all of them."""

    runtime: Runtime
    base: Path
    lower: Path
    cids: list[str] = field(default_factory=list)
    mounts: list[Path] = field(default_factory=list)

    def prepare(self, args: list[str], **spec: object) -> tuple[str, Path]:
        """A new container: its dir, an overlay rootfs mounted in it, and its bundle."""
        cid = "wbt" + uuid.uuid4().hex[:20]
        cdir = self.base / cid
        for d in ("upper", "work", "rootfs"):
            (cdir / d).mkdir(parents=True)
        rootfs = cdir / "rootfs"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.lower},upperdir={cdir / 'upper'},workdir={cdir / 'work'}", str(rootfs)],
                       check=True)
        self.mounts.append(rootfs)
        self.cids.append(cid)
        spec.setdefault("hostname", cid[:12])
        write_bundle(cdir, cid, RunSpec(args=args, rootfs=rootfs, **spec))  # type: ignore[arg-type]
        return cid, cdir

    async def start(self, args: list[str], **spec: object) -> tuple[str, Path, int]:
        cid, cdir = self.prepare(args, **spec)
        pid = await self.runtime.start(cid, cdir, cdir)
        return cid, cdir, pid

    async def run(self, args: list[str], **spec: object) -> tuple[str, Path, ExitStatus]:
        cid, cdir, _ = await self.start(args, **spec)
        return cid, cdir, await asyncio.wait_for(self.runtime.wait_exit(cdir), 60)

    def logs(self, cid: str, cdir: Path) -> list[dict]:
        import json
        path = cdir / f"{cid}-json.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def output(self, cid: str, cdir: Path, stream: str = "stdout") -> str:
        return "".join(r["log"] for r in self.logs(cid, cdir) if r["stream"] == stream)

    def close(self) -> None:
        for cid in self.cids:
            cdir = self.base / cid
            _kill_monitor(cdir)
            try:
                self.runtime.delete(cid, force=True)
            except Exception:
                subprocess.run([self.runtime.runc.opts.binary, "--root", str(self.runtime.root), "delete", "--force",
                                cid], capture_output=True)
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(m)], check=False, capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def _kill_monitor(cdir: Path) -> None:
    try:
        pid, start = (cdir / "monitor.pid").read_text().split()[:2]
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[19] == start:
                os.kill(int(pid), signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


def leftover_cgroups(cid: str) -> list[str]:
    return [str(p) for p in CGROUP_ROOT.glob(f"*/workbench/{cid}")]


@pytest.fixture(params=RUNTIMES)
def box(request, lower: Path) -> Iterator[Box]:
    """A Runtime on a private state root (runc, and crun when installed)."""
    require_root()
    base = Path(tempfile.mkdtemp(prefix="wbrt-", dir="/tmp"))
    b = Box(Runtime(base / "state", request.param), base, lower)
    try:
        yield b
    finally:
        b.close()
    for cid in b.cids:
        assert not leftover_cgroups(cid), f"cgroups left behind for {cid}"
    assert str(base) not in Path("/proc/self/mountinfo").read_text(), "mounts left behind"


@pytest.fixture
def runc_box(lower: Path) -> Iterator[Box]:
    """Like `box`, runc only (for tests about mechanisms, not runtimes)."""
    require_root()
    base = Path(tempfile.mkdtemp(prefix="wbrt-", dir="/tmp"))
    b = Box(Runtime(base / "state", "runc"), base, lower)
    try:
        yield b
    finally:
        b.close()
