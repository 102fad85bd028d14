"""How fast the notebook layer draws: `%docker ps -a` and `%docker images` with 200 containers and 200
images (magic + DataFrame + HTML and text formatting, i.e. everything until the cell can show it), and how
long `%load_ext workbench` takes. Target: < 100 ms per listing, < 300 ms for the extension.

Peer, in the same run: docker-py's low-level API against the same engine (one request per listing, as
ours), into a pandas DataFrame rendered with pandas' own `to_html` (what a notebook user does without
Workbench). Ratio = peer / ours.

    sudo .venv/bin/python bench/notebook.py [--count 200] [--rounds 20]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _tiny_rootfs(i: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = f"image {i}\n".encode()
        ti = tarfile.TarInfo("id.txt")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _start_engine(base: Path) -> tuple[subprocess.Popen, str]:
    from tests.helpers import ping

    sock = base / "engine.sock"
    log = open(base / "engine.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "workbench.engine.daemon", "--root", str(base / "root"),
                             "--host", f"unix://{sock}"], stdout=log, stderr=log, start_new_session=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
                                str(REPO), os.environ.get("PYTHONPATH")]))))
    deadline = time.monotonic() + 30
    while not ping(str(sock)):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"engine did not start: {(base / 'engine.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return proc, f"unix://{sock}"


def _populate(host: str, count: int) -> None:
    from workbench.client import Client

    client = Client(host)
    for i in range(count):
        client.images.import_(_tiny_rootfs(i), repository=f"bench/img{i:03d}:1", changes=['CMD ["/id.txt"]'])
    for i in range(count):
        client.containers.create("bench/img000:1", ["/id.txt"], name=f"bench-{i:03d}")
    client.close()


def _median_ms(fn, rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), times[0]


def _load_ext_ms(host: str, rounds: int) -> float:
    code = ("import time\nfrom IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance()\nt = time.perf_counter()\nip.run_line_magic('load_ext', 'workbench')\n"
            "print((time.perf_counter() - t) * 1000)")
    env = dict(os.environ, WORKBENCH_HOST=host, WORKBENCH_AUTOSTART="0",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                check=True).stdout.split()[-1]) for _ in range(rounds)]
    return statistics.median(out)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--rounds", type=int, default=20)
    a = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the engine needs root: sudo .venv/bin/python bench/notebook.py")
    base = Path(tempfile.mkdtemp(prefix="wb-bench-nb-"))
    proc, host = _start_engine(base)
    try:
        t = time.perf_counter()
        _populate(host, a.count)
        print(f"engine with {a.count} images and {a.count} containers ready in {time.perf_counter() - t:.1f}s")
        os.environ["WORKBENCH_HOST"] = host
        os.environ["WORKBENCH_AUTOSTART"] = "0"
        os.environ["WORKBENCH_LOCK"] = str(base / "workbench.lock")
        from IPython.core.interactiveshell import InteractiveShell

        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "workbench")
        fmt = ip.display_formatter.format

        def ours(line: str):
            def go() -> None:
                df = ip.run_line_magic("docker", line)
                data, _ = fmt(df)
                assert "wb-table" in data["text/html"] and len(df) >= a.count
            return go

        import docker
        import pandas as pd

        peer = docker.DockerClient(base_url=host, version="1.41")

        def peer_ps() -> None:  # docker-py's low-level API: one request, like ours
            df = pd.DataFrame([{"id": c["Id"][:12], "name": c["Names"][0].lstrip("/"), "image": c["Image"],
                                "command": c["Command"], "created": c["Created"], "state": c["State"],
                                "status": c["Status"]} for c in peer.api.containers(all=True)])
            df["created"] = pd.to_datetime(df["created"], unit="s", utc=True)
            df.to_html()

        def peer_images() -> None:
            df = pd.DataFrame([{"tag": t, "id": i["Id"][7:19], "created": i["Created"], "size": i["Size"]}
                               for i in peer.api.images() for t in i.get("RepoTags") or ["<none>"]])
            df["created"] = pd.to_datetime(df["created"], unit="s", utc=True)
            df.to_html()

        print(f"{'what':<34}{'median ms':>10}{'first ms':>10}{'peer ms':>10}{'ratio':>8}   target")
        for label, fn, peer_fn in ((f"%docker ps -a ({a.count})", ours("ps -a"), peer_ps),
                                   (f"%docker images ({a.count})", ours("images"), peer_images)):
            med, first = _median_ms(fn, a.rounds)
            pmed, _ = _median_ms(peer_fn, a.rounds)
            print(f"{label:<34}{med:>10.1f}{first:>10.1f}{pmed:>10.1f}{pmed / med:>7.2f}x   < 100 ms "
                  f"{'ok' if med < 100 else 'MISSED'}")
        load = _load_ext_ms(host, max(3, a.rounds // 4))
        print(f"{'%load_ext workbench':<34}{load:>10.1f}{'':>10}{'':>10}{'':>8}   < 300 ms "
              f"{'ok' if load < 300 else 'MISSED'}")
        peer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(["umount", "-R", "-l", str(base / "root")], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
