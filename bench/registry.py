"""Push and pull of a 200 MB image through the workbench engine vs skopeo, against the same registry.

The image has 4 layers of 50 MB each (half compressible text, half random bytes), gzip-compressed.
It is written once as an OCI image layout (what skopeo copies from) and loaded into a workbench
engine daemon started by this script (`python -m workbench.engine.daemon --root DIR --host
unix://SOCK`), so both tools push exactly the same blobs and manifest.

- push: `POST /images/{name}/push` through the engine vs `skopeo copy oci:LAYOUT docker://...`;
  every run goes to a fresh, empty registry so every blob is uploaded.
- pull: `POST /images/create?fromImage=` into a fresh engine (download, verify, store the blobs
  and unpack every layer into its snapshot) vs `skopeo copy docker://... oci:DIR` (download,
  verify, store; skopeo does not unpack).

Registries: Debian's docker-registry (CNCF distribution) and our own registry server, each as its
own process. Before every timed run the page cache's dirty data is flushed (`sync`) so one run's
writeback does not land in the next. Prints each run, the medians, MB/s of image size
(uncompressed) and the ratio workbench/skopeo (above 1 means workbench is faster).

    sudo .venv/bin/python bench/registry.py [--runs 3] [--registry both|distribution|ours] [--layer-mb 50]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from isal import igzip

ROOT = Path(__file__).resolve().parent.parent
LAYERS = 4
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


# ---- the image -----------------------------------------------------------------------------------
@dataclass
class BenchImage:
    layout: Path          # OCI image layout, tag "v1"
    archive: Path         # the same layout as a tar, for POST /images/load
    size: int             # uncompressed bytes (sum of the layer tars)
    compressed: int       # bytes on the wire (layers + config + manifest)


def _layer_tar(index: int, size: int) -> bytes:
    half = size // 2
    words = b" ".join(b"line %d of layer %d: the quick brown fox %x" % (i, index, i * 2654435761 % 2**32)
                      for i in range(4096))
    text = (words * (half // len(words) + 1))[:half]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((f"data/{index}/text.log", text), (f"data/{index}/random.bin", os.urandom(size - half))):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(work: Path, layer_bytes: int) -> BenchImage:
    layout = work / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest

    layers, diff_ids, size = [], [], 0
    for i in range(LAYERS):
        tar = _layer_tar(i, layer_bytes)
        size += len(tar)
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        gz = igzip.compress(tar, compresslevel=1)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz),
                       "size": len(gz)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                         "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"layer {i}"} for i in range(LAYERS)]}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": put(config), "size": len(config)},
                           "layers": layers}).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": put(manifest),
                                                "size": len(manifest),
                                                "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}
    (layout / "index.json").write_text(json.dumps(index))
    archive = work / "image.tar"
    with tarfile.open(archive, "w") as tar:
        for p in sorted(layout.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(layout)), recursive=False)
    compressed = sum(ly["size"] for ly in layers) + len(config) + len(manifest)
    return BenchImage(layout, archive, size, compressed)


# ---- processes -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Registry:
    """A registry process of one kind on a fresh port with fresh storage."""

    def __init__(self, kind: str, work: Path) -> None:
        self.kind = kind
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"reg-{kind}-", dir=work))
        log = open(self.dir / "log", "wb")
        if kind == "distribution":
            config = self.dir / "config.yml"
            config.write_text(f"version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: "
                              f"{{rootdirectory: {self.dir / 'data'}}}\nhttp: {{addr: 127.0.0.1:{self.port}}}\n")
            argv = ["docker-registry", "serve", str(config)]
        else:
            argv = [sys.executable, "-m", "workbench.engine.registry.standalone", "--root", str(self.dir / "data"),
                    "--addr", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=ROOT, start_new_session=True)
        for _ in range(300):
            try:
                httpx.get(f"http://{self.host}/v2/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"{kind} registry did not start: {(self.dir / 'log').read_text()[-2000:]}")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Engine:
    """A workbench engine daemon on its own root and socket."""

    def __init__(self, work: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="engine-", dir=work))
        self.sock = self.dir / "engine.sock"
        log = open(self.dir / "engine.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.engine.daemon", "--root", str(self.dir / "root"),
             "--host", f"unix://{self.sock}"], stdout=log, stderr=log, cwd=ROOT, start_new_session=True)
        self.api = httpx.Client(transport=httpx.HTTPTransport(uds=str(self.sock)), base_url="http://engine",
                                timeout=600)
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited: {(self.dir / 'engine.log').read_text()[-3000:]}")
            try:
                if self.api.get("/_ping").status_code == 200:
                    # the bench's own first streamed request costs ~10 ms of set-up in this
                    # process (httpx), which is not the engine's time: make it before timing
                    with self.api.stream("GET", "/_ping", params={"warm": "1"}) as r:
                        r.read()
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("engine did not answer")

    def stream(self, path: str, params: dict[str, str]) -> None:
        with self.api.stream("POST", path, params=params, headers={"X-Registry-Auth": "e30="}) as r:
            body = r.read()
        if r.status_code != 200 or b'"error"' in body:
            raise RuntimeError(f"{path} failed ({r.status_code}): {body[-500:]!r}")

    def close(self) -> None:
        self.api.close()
        stop(self.proc)
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            mp = line.split()[4]
            if mp.startswith(str(self.dir)):
                subprocess.run(["umount", "-l", mp], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def skopeo(*args: str, home: Path) -> None:
    env = dict(os.environ, HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CACHE_HOME=str(home / "cache"))
    p = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args)}: {p.stderr}")


def timed(prepare: Callable[[], object], run: Callable[[object], None], finish: Callable[[object], None]) -> float:
    state = prepare()
    try:
        os.sync()
        t = time.perf_counter()
        run(state)
        return time.perf_counter() - t
    finally:
        finish(state)


# ---- the measurements ---------------------------------------------------------------------------------
def bench_registry(kind: str, image: BenchImage, work: Path, runs: int) -> dict[str, list[float]]:
    home = work / "skopeo-home"
    home.mkdir(exist_ok=True)
    out: dict[str, list[float]] = {k: [] for k in ("push-workbench", "push-skopeo", "pull-workbench", "pull-skopeo")}
    source = Engine(work)
    try:
        r = source.api.post("/images/load", content=image.archive.read_bytes())
        assert r.status_code == 200 and b"Loaded image" in r.content, r.text
        image_id = next(i["Id"] for i in source.api.get("/images/json").json() if i["Size"] >= image.size // 2)
        for n in range(runs):
            def push_prepare() -> Registry:
                reg = Registry(kind, work)
                r = source.api.post(f"/images/{image_id}/tag", params={"repo": f"{reg.host}/bench/app", "tag": "v1"})
                assert r.status_code == 201, r.text
                return reg

            out["push-workbench"].append(timed(
                push_prepare, lambda reg: source.stream(f"/images/{reg.host}/bench/app/push", {"tag": "v1"}),
                lambda reg: reg.close()))
            out["push-skopeo"].append(timed(
                lambda: Registry(kind, work),
                lambda reg: skopeo("copy", "-q", "--dest-tls-verify=false", f"oci:{image.layout}:v1",
                                   f"docker://{reg.host}/bench/app:v1", home=home),
                lambda reg: reg.close()))
            print(f"  push run {n + 1}: workbench {out['push-workbench'][-1]:.3f} s, "
                  f"skopeo {out['push-skopeo'][-1]:.3f} s", flush=True)
    finally:
        source.close()
    reg = Registry(kind, work)
    try:
        skopeo("copy", "-q", "--dest-tls-verify=false", f"oci:{image.layout}:v1", f"docker://{reg.host}/bench/app:v1",
               home=home)
        for n in range(runs):
            out["pull-workbench"].append(timed(
                lambda: Engine(work),
                lambda eng: eng.stream("/images/create", {"fromImage": f"{reg.host}/bench/app", "tag": "v1"}),
                lambda eng: eng.close()))
            out["pull-skopeo"].append(timed(
                lambda n=n: work / f"pulled-{n}",
                lambda target: skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{reg.host}/bench/app:v1",
                                      f"oci:{target}:v1", home=home),
                lambda target: shutil.rmtree(target, ignore_errors=True)))
            print(f"  pull run {n + 1}: workbench {out['pull-workbench'][-1]:.3f} s, "
                  f"skopeo {out['pull-skopeo'][-1]:.3f} s", flush=True)
    finally:
        reg.close()
    return out


def report(kind: str, image: BenchImage, times: dict[str, list[float]]) -> None:
    mb = image.size / 1e6
    print(f"\n{kind}: medians of {len(times['push-workbench'])} runs, MB/s of the {mb:.0f} MB image")
    for op, ours_note, theirs_note in (("push", "", ""), ("pull", " (incl. unpacking)", " (to OCI layout)")):
        ours, theirs = statistics.median(times[f"{op}-workbench"]), statistics.median(times[f"{op}-skopeo"])
        print(f"  {op} workbench{ours_note}: {ours:.3f} s  {mb / ours:7.1f} MB/s")
        print(f"  {op} skopeo{theirs_note}: {theirs:.3f} s  {mb / theirs:7.1f} MB/s")
        print(f"  {op} ratio workbench/skopeo: {theirs / ours:.2f}x")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--registry", choices=["both", "distribution", "ours"], default="both")
    p.add_argument("--layer-mb", type=int, default=50)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    a = p.parse_args()
    if os.geteuid() != 0:
        print("the engine needs root (overlay snapshots): run with sudo", file=sys.stderr)
        return 2
    for tool in ("skopeo",) + (("docker-registry",) if a.registry != "ours" else ()):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="wb-bench-registry-", dir="/var/tmp"))
    try:
        image = make_image(work, a.layer_mb * 1_000_000)
        print(f"image: {LAYERS} layers, {image.size / 1e6:.1f} MB uncompressed, "
              f"{image.compressed / 1e6:.1f} MB gzip on the wire; {os.cpu_count()} CPUs")
        kinds = ["distribution", "ours"] if a.registry == "both" else [a.registry]
        results = {}
        for kind in kinds:
            name = "docker-registry (CNCF distribution)" if kind == "distribution" else "workbench registry server"
            print(f"\n== registry: {name}")
            results[kind] = bench_registry(kind, image, work, a.runs)
        for kind in kinds:
            report(kind, image, results[kind])
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
