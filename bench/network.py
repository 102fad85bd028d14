"""Network benchmarks for the bridge driver.

1. Added latency of bridge mode over `--network none` for `run --rm true`: per run, the network
   service's setup_container + `runc run` of a busybox bundle joining that namespace + teardown,
   against `runc run` of the same bundle with a fresh empty namespace (what `--network none` asks
   of the runtime). Target: under 30 ms (median difference). With `--daemon`, the same comparison
   is also made through the Engine API (create + wait(removed) + start) on a temporary daemon.
2. Throughput over loopback through a published port (host → 127.0.0.1:port → DNAT → container)
   against container-to-container direct on the same bridge. Target: at least 80% of direct.

Usage: python bench/network.py [--runs 30] [--seconds 2] [--daemon]
Needs root, runc, nft, /bin/busybox. Only loopback and its own namespaces are addressed.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.engine.network import netns
from workbench.engine.network.cleanup import remove_engine_state
from workbench.engine.services.networks import NetworkService
from workbench.engine.store.metadata import Metadata

# Throughput helper run inside namespaces: `recv PORT COUNT` prints "bytes seconds" per connection,
# `send HOST PORT SECONDS` streams 1 MiB writes for that long.
BLAST = r"""
import socket, sys, time
if sys.argv[1] == "recv":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(8); print("ready", flush=True)
    buf = bytearray(1 << 20)
    for _ in range(int(sys.argv[3])):
        c, _ = s.accept(); n = 0; t0 = None
        while True:
            k = c.recv_into(buf)
            if not k: break
            if t0 is None: t0 = time.perf_counter()
            n += k
        print(n, time.perf_counter() - (t0 or time.perf_counter()), flush=True); c.close()
else:
    c = socket.create_connection((sys.argv[2], int(sys.argv[3]))); data = b"\0" * (1 << 20)
    end = time.perf_counter() + float(sys.argv[4])
    while time.perf_counter() < end: c.sendall(data)
    c.close()
"""


def make_bundle(base: Path) -> Path:
    bundle = base / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", bundle / "rootfs" / "bin" / "busybox")
    (bundle / "rootfs" / "bin" / "true").symlink_to("busybox")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    return bundle


def write_config(bundle: Path, network: str | None) -> None:
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    ns = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
    ns.append({"type": "network", "path": network} if network else {"type": "network"})
    spec["linux"]["namespaces"] = ns
    (bundle / "config.json").write_text(json.dumps(spec))


def runc_run(bundle: Path, state: Path) -> None:
    cid = secrets.token_hex(8)
    subprocess.run(["runc", "--root", str(state), "run", "--bundle", str(bundle), cid], check=True,
                   stdin=subprocess.DEVNULL)


def latency(svc: NetworkService, base: Path, runs: int) -> tuple[list[float], list[float], list[float]]:
    bundle, state = make_bundle(base), base / "runc"
    none_b, bridge_b = base / "none", base / "bridge"
    for b in (none_b, bridge_b):
        shutil.copytree(bundle, b, symlinks=True)
    write_config(none_b, None)
    none, bridge, net_only = [], [], []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        runc_run(none_b, state)
        t1 = time.perf_counter()
        cid = secrets.token_hex(32)
        setup = svc.setup_container(cid, f"bench{i}", "bench", "bridge", {}, {}, [], False)
        write_config(bridge_b, setup.netns_path)   # the container service writes config.json anyway
        t2 = time.perf_counter()
        runc_run(bridge_b, state)
        t3 = time.perf_counter()
        svc.teardown_container(cid)
        t4 = time.perf_counter()
        if i:                                   # first round warms caches
            none.append(t1 - t0)
            bridge.append(t4 - t1)
            net_only.append((t2 - t1) + (t4 - t3))
    return none, bridge, net_only


def blast(svc: NetworkService, seconds: float, rounds: int) -> tuple[list[float], list[float]]:
    srv = svc.setup_container(secrets.token_hex(32), "sink", "sink", "bridge", {},
                              {"5001/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}, ["5001/tcp"], False)
    cli = svc.setup_container(secrets.token_hex(32), "source", "source", "bridge", {}, {}, [], False)
    port = int(srv.ports["5001/tcp"][0]["HostPort"])
    ip = srv.networks["bridge"]["IPAddress"]
    with netns.entered(srv.netns_path):
        recv = subprocess.Popen([sys.executable, "-c", BLAST, "recv", "5001", str(2 * rounds)],
                                stdout=subprocess.PIPE, text=True)
    assert recv.stdout is not None and recv.stdout.readline().strip() == "ready"
    direct, dnat = [], []

    def one(path: str | None, host: str, p: int) -> float:
        args = [sys.executable, "-c", BLAST, "send", host, str(p), str(seconds)]
        if path:
            with netns.entered(path):
                subprocess.run(args, check=True)
        else:
            subprocess.run(args, check=True)
        n, dt = recv.stdout.readline().split()     # type: ignore[union-attr]
        return int(n) / float(dt) / 1e9

    try:
        for _ in range(rounds):
            direct.append(one(cli.netns_path, ip, 5001))
            dnat.append(one(None, "127.0.0.1", port))
    finally:
        recv.kill()
        recv.wait()
    return direct, dnat


def daemon_latency(runs: int) -> tuple[float, float] | None:
    """Through the Engine API when the daemon can run containers: medians for none and default."""
    try:
        from bench.run_latency import client, ensure_busybox, measure
        from tests.helpers import ping
    except ImportError:
        return None
    base = Path(tempfile.mkdtemp(prefix="wbnetbench-", dir="/tmp"))
    sock = base / "engine.sock"
    proc = subprocess.Popen([sys.executable, "-m", "workbench.engine.daemon", "--root", str(base / "root"),
                             "--host", f"unix://{sock}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not ping(str(sock)):
            if proc.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        api = client(str(sock))
        ensure_busybox(api)
        none = statistics.median(measure(api, runs, "none"))
        bridge = statistics.median(measure(api, runs, "default"))
        return none, bridge
    except Exception as err:
        print(f"  (daemon run failed: {err})")
        return None
    finally:
        proc.terminate()
        proc.wait(30)
        subprocess.run(["umount", "-R", "-l", str(base)], capture_output=True)
        from workbench.engine.config import DaemonConfig
        remove_engine_state(DaemonConfig(root=base / "root").tag, base / "root" / "run")
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--daemon", action="store_true", help="also measure through a temporary daemon")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="wbnetbench-", dir="/tmp"))
    tag = secrets.token_hex(3)
    svc = NetworkService(Metadata(base / "metadata.db"), base / "run", tag)
    ok = True
    try:
        svc.list()
        none, bridge, net_only = latency(svc, base, a.runs)
        mn, mb, mo = (statistics.median(x) * 1000 for x in (none, bridge, net_only))
        print(f"run --rm true via runc ({a.runs} runs, medians): --network none {mn:.1f} ms, "
              f"bridge {mb:.1f} ms → added {mb - mn:.1f} ms (target < 30 ms); "
              f"network setup+teardown alone {mo:.1f} ms")
        ok &= mb - mn < 30
        direct, dnat = blast(svc, a.seconds, a.rounds)
        md_, mp = statistics.median(direct), statistics.median(dnat)
        print(f"TCP throughput ({a.rounds}×{a.seconds:g} s, medians): container→container direct "
              f"{md_:.2f} GB/s, host loopback→published port (DNAT) {mp:.2f} GB/s → "
              f"{100 * mp / md_:.0f}% of direct (target ≥ 80%)")
        ok &= mp >= 0.8 * md_
        if a.daemon:
            r = daemon_latency(min(a.runs, 20))
            if r is None:
                print("Engine API: daemon not usable for run --rm yet; skipped")
            else:
                print(f"Engine API run --rm true (medians): none {r[0] * 1000:.1f} ms, default bridge "
                      f"{r[1] * 1000:.1f} ms → added {(r[1] - r[0]) * 1000:.1f} ms")
    finally:
        svc.destroy()
        remove_engine_state(tag, base / "run")
        shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
