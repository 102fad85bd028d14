"""Start→exit latency of `busybox true` through workbench.engine.runtime.Runtime, for each OCI runtime
installed (runc, crun) and each launch mode, plus bare `unshare`+`chroot` as the floor.

Usage: python bench/runtime_latency.py [--runs 20]. Prints medians; run as root.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.cli.bootstrap import busybox_rootfs
from workbench.engine.runtime import Runtime
from workbench.engine.runtime.bundle import RunSpec, write_bundle


def make_lower(base: Path) -> Path:
    lower = base / "lower"
    lower.mkdir()
    with tarfile.open(fileobj=io.BytesIO(busybox_rootfs())) as t:
        t.extractall(lower, filter="fully_trusted")
    return lower


async def once(rt: Runtime, base: Path, lower: Path) -> float:
    cid = "wbb" + uuid.uuid4().hex[:20]
    cdir = base / cid
    for d in ("upper", "work", "rootfs"):
        (cdir / d).mkdir(parents=True)
    rootfs = cdir / "rootfs"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={cdir / 'upper'},workdir={cdir / 'work'}", str(rootfs)], check=True)
    write_bundle(cdir, cid, RunSpec(args=["true"], rootfs=rootfs, hostname=cid[:12]))
    try:
        t0 = time.perf_counter()
        await rt.start(cid, cdir, cdir)
        status = await rt.wait_exit(cdir)
        took = time.perf_counter() - t0
        assert status.exit_code == 0, status
        return took * 1000
    finally:
        subprocess.run(["umount", "-l", str(rootfs)], check=False)
        shutil.rmtree(cdir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="wb-rtbench-", dir="/tmp"))
    try:
        lower = make_lower(base)
        bare = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            subprocess.run(["unshare", "-m", "-p", "-f", "-u", "-i", "-n", "chroot", str(lower), "/bin/true"],
                           check=True)
            bare.append((time.perf_counter() - t0) * 1000)
        print(f"bare unshare+chroot true: median {statistics.median(bare):.1f} ms")
        for binary in [b for b in ("runc", "crun") if shutil.which(b)]:
            for launch in ("run", "create-start"):
                rt = Runtime(base / f"state-{binary}-{launch}", binary, launch=launch)
                asyncio.run(once(rt, base, lower))                     # warm-up
                times = [asyncio.run(once(rt, base, lower)) for _ in range(a.runs)]
                print(f"{binary:4s} ({launch:12s}) start→exit: median {statistics.median(times):.1f} ms "
                      f"(min {min(times):.1f}, n={len(times)})")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
