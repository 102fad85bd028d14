"""Blob GET throughput: our registry vs Debian's docker-registry (CNCF distribution 2.8).

Both serve the same 10 MB blob from their own storage on loopback; 32 concurrent keep-alive
clients GET it over and over for a few seconds per round. The load generator is the same for
both: one asyncio process reading into a reused buffer (recv_into), so it costs little CPU next to
the servers on this 2-core machine. Prints MB/s per round, the median, and the ratio.

    .venv/bin/python bench/registry_serve.py [--rounds 5] [--seconds 4] [--clients 32] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BLOB_SIZE = 10 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str) -> None:
    for _ in range(200):
        try:
            if httpx.get(f"{url}/v2/", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def push_blob(url: str, repo: str, data: bytes) -> str:
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post(f"/v2/{repo}/blobs/uploads/")
        loc = r.headers["Location"]
        r = c.put(loc + ("&" if "?" in loc else "?") + f"digest={d}", content=data,
                  headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
        assert c.get(f"/v2/{repo}/blobs/{d}").content == data
    return d


async def _client(port: int, path: str, deadline: float, counts: list[int]) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    try:
        while time.perf_counter() < deadline:
            await loop.sock_sendall(sock, request)
            head = b""
            while b"\r\n\r\n" not in head:
                n = await loop.sock_recv_into(sock, view)
                if not n:
                    raise ConnectionError("server closed the connection")
                head += bytes(view[:n])
            header, _, rest = head.partition(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in header.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            assert header.startswith(b"HTTP/1.1 200"), header[:100]
            left = length - len(rest)
            while left > 0:
                n = await loop.sock_recv_into(sock, view[:min(left, len(buf))])
                if not n:
                    raise ConnectionError("short body")
                left -= n
            counts.append(length)
    finally:
        sock.close()


async def _round(port: int, path: str, clients: int, seconds: float) -> float:
    counts: list[int] = []
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, path, start + seconds, counts) for _ in range(clients)))
    return sum(counts) / (time.perf_counter() - start) / 1e6


def measure(url: str, path: str, rounds: int, clients: int, seconds: float) -> list[float]:
    port = int(url.rsplit(":", 1)[1])
    asyncio.run(_round(port, path, clients, 1.0))                    # warm up the page cache
    return [asyncio.run(_round(port, path, clients, seconds)) for _ in range(rounds)]


def start_ours(root: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workbench.engine.registry.standalone", "--root", str(root),
                             "--addr", f"127.0.0.1:{port}", "--workers", str(workers)])
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    time.sleep(0.3 * workers)                    # let every worker bind its SO_REUSEPORT socket
    return proc, url


def start_distribution(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("docker-registry")
    if exe is None:
        raise SystemExit("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\n"
                      f"storage:\n  filesystem: {{rootdirectory: {root / 'data'}}}\n"
                      f"http: {{addr: 127.0.0.1:{port}}}\n")
    proc = subprocess.Popen([exe, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts to measure")
    a = p.parse_args()
    data = os.urandom(BLOB_SIZE)
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        dproc, durl = start_distribution(Path(tmp) / "distribution")
        try:
            d = push_blob(durl, "bench/blob", data)
            results["docker-registry"] = measure(durl, f"/v2/bench/blob/blobs/{d}", a.rounds, a.clients,
                                                 a.seconds)
        finally:
            stop(dproc)
        for workers in (int(w) for w in a.workers.split(",")):
            proc, url = start_ours(Path(tmp) / "ours", workers)
            try:
                d = push_blob(url, "bench/blob", data)
                results[f"workbench ({workers} worker{'s' if workers > 1 else ''})"] = measure(
                    url, f"/v2/bench/blob/blobs/{d}", a.rounds, a.clients, a.seconds)
            finally:
                stop(proc)
    peer = statistics.median(results["docker-registry"])
    print(f"GET of a 10 MB blob, {a.clients} concurrent loopback clients, {a.rounds} rounds of "
          f"{a.seconds:g} s, {os.cpu_count()} CPUs")
    for name, rounds in results.items():
        med = statistics.median(rounds)
        print(f"  {name:<26} median {med:8.0f} MB/s  ratio {med / peer:5.2f}   "
              f"rounds: {', '.join(f'{r:.0f}' for r in rounds)}")


if __name__ == "__main__":
    main()
