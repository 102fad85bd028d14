"""Median latency of `run --rm busybox true` through the Engine API (create + start + wait + remove),
ours vs a Docker engine on the same rootfs when one is reachable.

Usage: python bench/run_latency.py [--runs 20] [--docker unix:///var/run/docker.sock]
Starts its own workbench daemon on a temporary root. Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.helpers import busybox_rootfs_tar, ping


def client(sock: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://docker", timeout=60)


def ensure_busybox(api: httpx.Client) -> None:
    if api.get("/images/busybox:latest/json").status_code != 200:
        r = api.post("/images/create", params={"fromSrc": "-", "repo": "busybox:latest"},
                     content=busybox_rootfs_tar())
        r.raise_for_status()


def run_once(api: httpx.Client, network: str | None = None) -> float:
    """What `docker run --rm busybox true` does: create, wait(removed) in parallel, start."""
    t0 = time.perf_counter()
    host = {"AutoRemove": True}
    if network:
        host["NetworkMode"] = network
    r = api.post("/v1.41/containers/create", json={"Image": "busybox", "Cmd": ["true"], "HostConfig": host})
    r.raise_for_status()
    cid = r.json()["Id"]
    result = {}

    def waiter() -> None:
        result["r"] = api.post(f"/v1.41/containers/{cid}/wait", params={"condition": "removed"})

    t = threading.Thread(target=waiter)
    t.start()
    api.post(f"/v1.41/containers/{cid}/start").raise_for_status()
    t.join()
    assert result["r"].json()["StatusCode"] == 0
    return time.perf_counter() - t0


def measure(api: httpx.Client, runs: int, network: str | None = None) -> list[float]:
    run_once(api, network)  # warm-up: unpack, page cache
    return [run_once(api, network) for _ in range(runs)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--docker", default=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    ap.add_argument("--network", default=None, help="NetworkMode for our runs (default: engine default)")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="wbbench-", dir="/tmp"))
    sock = base / "engine.sock"
    proc = subprocess.Popen([sys.executable, "-m", "workbench.engine.daemon", "--root", str(base / "root"),
                             "--host", f"unix://{sock}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not ping(str(sock)):
            if proc.poll() is not None:
                raise SystemExit("daemon failed to start")
            time.sleep(0.05)
        ours_api = client(str(sock))
        ensure_busybox(ours_api)
        ours = measure(ours_api, a.runs, a.network)
        print(f"workbench run --rm busybox true: median {statistics.median(ours) * 1000:.1f} ms "
              f"(min {min(ours) * 1000:.1f}, max {max(ours) * 1000:.1f}, n={len(ours)})")
        dsock = a.docker.removeprefix("unix://")
        if os.path.exists(dsock) and ping(dsock):
            dapi = client(dsock)
            ensure_busybox(dapi)
            theirs = measure(dapi, a.runs)
            print(f"docker    run --rm busybox true: median {statistics.median(theirs) * 1000:.1f} ms "
                  f"(min {min(theirs) * 1000:.1f}, max {max(theirs) * 1000:.1f}, n={len(theirs)})")
            print(f"ratio docker/workbench: {statistics.median(theirs) / statistics.median(ours):.1f}x")
        else:
            print(f"no Docker engine at {a.docker}; start dockerd to compare")
    finally:
        proc.terminate()
        proc.wait(30)
        cleanup(base)
    return 0


def cleanup(base: Path) -> None:
    """Leave nothing behind: the engine's bridge and firewall table, mounts, the temporary root."""
    import shutil

    from tests.helpers import mounts_under
    from workbench.engine.config import DaemonConfig
    from workbench.engine.network.cleanup import remove_engine_state
    root = base / "root"
    remove_engine_state(DaemonConfig(root=root).tag, root / "run")
    for m in sorted(mounts_under(base), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
