"""Build benchmark: a ~10-step Dockerfile on a context of 200 small files and one 50 MB file, on our
daemon and, when `dockerd` is installed, on a private Docker engine with its classic builder and with
BuildKit. Every engine is driven by the same docker CLI. Three figures per engine:

- cold: the build cache pruned (`docker builder prune -af`), then `build --no-cache`. BuildKit keeps
  the files of earlier context transfers in that cache, so this is its first-build cost;
- no-cache: `build --no-cache` on a warm engine (BuildKit re-sends only changed context files);
- cached: the same build again, every step a cache hit.

Usage: python bench/build.py [--runs 5] [--no-docker] [--keep]

Starts its own workbench daemon and (unless --no-docker) its own dockerd, each on a temporary root,
with busybox imported from the same rootfs tar. Prints medians per engine and the ratios; the issue's
targets are a cached rebuild under 0.3 s and a cold build no slower than BuildKit's.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.helpers import busybox_rootfs_tar, mounts_under, ping  # noqa: E402

DOCKERFILE = """\
FROM busybox
ARG BUILD_ID=1
ENV APP_HOME=/app
WORKDIR /app
COPY src/ /app/src/
COPY big.bin /app/data/big.bin
RUN find /app/src -type f | wc -l > /app/count
RUN mkdir -p /app/out && cat /app/src/file_000.txt > /app/out/first.txt
LABEL org.example.bench=build
EXPOSE 8080
USER nobody
CMD ["cat", "/app/count"]
"""


def make_context(root: Path) -> Path:
    """200 small files (1-4 KiB) and one 50 MB file of pseudo-random bytes, the same every time."""
    rng = random.Random(20260101)
    (root / "src").mkdir(parents=True)
    for i in range(200):
        (root / "src" / f"file_{i:03d}.txt").write_bytes(rng.randbytes(rng.randint(1024, 4096)))
    (root / "big.bin").write_bytes(rng.randbytes(50 * 1000 * 1000))
    (root / "Dockerfile").write_text(DOCKERFILE)
    return root


def docker_cli() -> str | None:
    """A docker CLI that still has the classic builder and BuildKit built in (20.10), else any."""
    for cand in ("/usr/bin/docker", shutil.which("docker"), "/usr/local/bin/docker"):
        if cand and os.path.exists(cand):
            return cand
    return None


@dataclass
class Engine:
    name: str
    host: str
    buildkit: bool = False


class Runner:
    def __init__(self, cli: str, config_dir: Path) -> None:
        self.cli = cli
        self.config_dir = config_dir

    def docker(self, engine: Engine, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/bin:/bin:/usr/local/bin:/usr/sbin:/sbin", "DOCKER_CONFIG": str(self.config_dir),
               "DOCKER_BUILDKIT": "1" if engine.buildkit else "0", "HOME": str(self.config_dir)}
        p = subprocess.run([self.cli, "-H", engine.host, *args], input=input, capture_output=True, env=env,
                           timeout=600)
        if p.returncode != 0:
            raise SystemExit(f"{engine.name}: docker {' '.join(args)} failed: {p.stderr.decode()[-2000:]}")
        return p

    def timed_build(self, engine: Engine, ctx: Path, *flags: str) -> float:
        t0 = time.perf_counter()
        self.docker(engine, "build", "--network", "none", *flags, "-t", "bench:latest", str(ctx))
        return time.perf_counter() - t0

    def cold_build(self, engine: Engine, ctx: Path) -> float:
        self.docker(engine, "builder", "prune", "-af")
        return self.timed_build(engine, ctx, "--no-cache")

    def measure(self, engine: Engine, ctx: Path, runs: int) -> dict[str, list[float]]:
        self.timed_build(engine, ctx, "--no-cache")        # warm-up: base unpacked, page cache hot
        out = {"cold": [self.cold_build(engine, ctx) for _ in range(runs)],
               "no-cache": [self.timed_build(engine, ctx, "--no-cache") for _ in range(runs)]}
        self.timed_build(engine, ctx)                      # fill the cache for this exact context
        out["cached"] = [self.timed_build(engine, ctx) for _ in range(runs)]
        return out


def start_workbench(base: Path) -> tuple[subprocess.Popen, str]:
    sock = base / "engine.sock"
    proc = subprocess.Popen([sys.executable, "-m", "workbench.engine.daemon", "--root", str(base / "root"),
                             "--host", f"unix://{sock}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    deadline = time.monotonic() + 60
    while not ping(str(sock)):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("workbench daemon failed to start")
        time.sleep(0.05)
    return proc, f"unix://{sock}"


def start_dockerd(base: Path) -> tuple[subprocess.Popen, str] | None:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        return None
    sock = base / "docker.sock"
    log = open(base / "dockerd.log", "wb")
    # Its own bridge, not `--bridge none`: a dockerd with the default bridge disabled deletes the
    # host's docker0, which would break a real Docker running on the same machine.
    bridge = _private_bridge()
    proc = subprocess.Popen([dockerd, "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
                             "--host", f"unix://{sock}", "--pidfile", str(base / "dockerd.pid"),
                             "--bridge", bridge, "--iptables=false", "--ip-masq=false"],
                            stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    while not ping(str(sock)):
        if proc.poll() is not None or time.monotonic() > deadline:
            print(f"dockerd did not start; see {base / 'dockerd.log'}")
            return None
        time.sleep(0.1)
    return proc, f"unix://{sock}"


_BENCH_BRIDGE = "wbbenchdock0"


def _private_bridge() -> str:
    """A throwaway bridge for the bench's dockerd (removed again by `stop`)."""
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=_BENCH_BRIDGE):
            ipr.link("add", ifname=_BENCH_BRIDGE, kind="bridge")
        idx = ipr.link_lookup(ifname=_BENCH_BRIDGE)[0]
        if not ipr.get_addr(index=idx):
            ipr.addr("add", index=idx, address="10.251.0.1", prefixlen=24)
        ipr.link("set", index=idx, state="up")
    return _BENCH_BRIDGE


def _remove_private_bridge() -> None:
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        for idx in ipr.link_lookup(ifname=_BENCH_BRIDGE):
            ipr.link("del", index=idx)


def stop(proc: subprocess.Popen, base: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
    for m in sorted(mounts_under(base), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)
    if "dockerd" in " ".join(map(str, proc.args)):
        _remove_private_bridge()


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):7.3f} s (min {min(values):.3f}, max {max(values):.3f})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-docker", action="store_true", help="measure only the workbench daemon")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    a = ap.parse_args()
    cli = docker_cli()
    if cli is None:
        raise SystemExit("a docker CLI is needed to drive the builds (apt-get install docker.io)")
    base = Path(tempfile.mkdtemp(prefix="wbbuild-", dir="/tmp"))
    procs: list[tuple[subprocess.Popen, Path]] = []
    results: dict[str, dict[str, list[float]]] = {}
    try:
        ctx = make_context(base / "context")
        runner = Runner(cli, base / "cli")
        rootfs = busybox_rootfs_tar()
        engines: list[Engine] = []
        (base / "wb").mkdir()
        wb_proc, wb_host = start_workbench(base / "wb")
        procs.append((wb_proc, base / "wb"))
        engines.append(Engine("workbench", wb_host))
        if not a.no_docker:
            (base / "dk").mkdir()
            started = start_dockerd(base / "dk")
            if started is not None:
                procs.append((started[0], base / "dk"))
                engines += [Engine("docker classic", started[1]), Engine("docker buildkit", started[1], True)]
            else:
                print("no dockerd: comparing nothing")
        imported: set[str] = set()
        for engine in engines:
            if engine.host not in imported:
                runner.docker(engine, "import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=rootfs)
                imported.add(engine.host)
        print(f"context: 200 small files + 50 MB, {DOCKERFILE.count(chr(10))} instructions; docker CLI {cli}; "
              f"{a.runs} runs each, medians")
        kinds = ("cold", "no-cache", "cached")
        for engine in engines:
            results[engine.name] = runner.measure(engine, ctx, a.runs)
            for kind in kinds:
                print(f"{engine.name:16s} {kind:9s} {fmt(results[engine.name][kind])}")
        ours = {k: statistics.median(v) for k, v in results["workbench"].items()}
        for name in ("docker classic", "docker buildkit"):
            if name in results:
                theirs = {k: statistics.median(v) for k, v in results[name].items()}
                print(f"ratio {name}/workbench: " + ", ".join(f"{k} {theirs[k] / ours[k]:.2f}x" for k in kinds))
        print(f"target cached < 0.3 s: {'met' if ours['cached'] < 0.3 else 'MISSED'} ({ours['cached']:.3f} s)")
        if "docker buildkit" in results:
            bk = {k: statistics.median(v) for k, v in results["docker buildkit"].items()}
            print(f"target cold <= BuildKit's: {'met' if ours['cold'] <= bk['cold'] else 'MISSED'} "
                  f"({ours['cold']:.3f} s vs {bk['cold']:.3f} s)")
            print(f"(no target) no-cache rebuild vs BuildKit's: {ours['no-cache']:.3f} s vs {bk['no-cache']:.3f} s")
    finally:
        for proc, where in reversed(procs):
            stop(proc, where)
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
