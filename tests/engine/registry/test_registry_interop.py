"""Interop with peers nobody here wrote: skopeo copies into and out of our registry (OCI and
Docker v2 schema 2), and Debian's docker-registry (CNCF distribution 2.8) exchanges images with it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from registry_support import DOCKER_MANIFEST, OCI_MANIFEST, Image, Registry, make_image, make_index

SKOPEO = shutil.which("skopeo")
DISTRIBUTION = shutil.which("docker-registry")


@pytest.fixture(autouse=True)
def _require_skopeo() -> None:
    if SKOPEO is None:
        pytest.fail("skopeo is required: apt-get install skopeo (make setup does it)")


def write_layout(path: Path, images: dict[str, Image]) -> None:
    """An OCI image layout holding `images` by tag (ref.name annotations), written by hand."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entries = []
    for tag, image in images.items():
        for d, data in image.blobs.items():
            (blobs / d[7:]).write_bytes(data)
        (blobs / image.digest[7:]).write_bytes(image.manifest)
        entries.append(image.descriptor(annotations={"org.opencontainers.image.ref.name": tag}))
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))


def skopeo(*args: str) -> str:
    proc = subprocess.run([SKOPEO or "skopeo", "--insecure-policy", *args], check=False, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def host(reg_url: str) -> str:
    return reg_url.removeprefix("http://")


def test_skopeo_oci_round_trip(registry: Registry, tmp_path: Path) -> None:
    image = make_image("skopeo-oci", layers=3)
    write_layout(tmp_path / "src", {"v1": image})
    digestfile = tmp_path / "digest"
    skopeo("copy", "--dest-tls-verify=false", "--digestfile", str(digestfile),
           f"oci:{tmp_path / 'src'}:v1", f"docker://{host(registry.url)}/interop/oci:v1")
    assert digestfile.read_text().strip() == image.digest       # OCI in, byte for byte
    r = registry.client.get("/v2/interop/oci/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.content == image.manifest and r.headers["Docker-Content-Digest"] == image.digest
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{host(registry.url)}/interop/oci:v1")
    assert raw.encode() == image.manifest
    skopeo("copy", "--src-tls-verify=false", f"docker://{host(registry.url)}/interop/oci:v1",
           f"oci:{tmp_path / 'out'}:v1")
    out = json.loads((tmp_path / "out" / "index.json").read_text())
    assert out["manifests"][0]["digest"] == image.digest
    for d, data in image.blobs.items():
        assert (tmp_path / "out" / "blobs" / "sha256" / d[7:]).read_bytes() == data


def test_skopeo_v2s2_round_trip(registry: Registry, tmp_path: Path) -> None:
    image = make_image("skopeo-v2s2", layers=2)
    write_layout(tmp_path / "src", {"v1": image})
    digestfile = tmp_path / "digest"
    skopeo("copy", "--dest-tls-verify=false", "--format", "v2s2", "--digestfile", str(digestfile),
           f"oci:{tmp_path / 'src'}:v1", f"docker://{host(registry.url)}/interop/docker:v1")
    pushed = digestfile.read_text().strip()
    r = registry.client.get("/v2/interop/docker/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert r.headers["Content-Type"] == DOCKER_MANIFEST
    assert r.headers["Docker-Content-Digest"] == pushed == "sha256:" + hashlib.sha256(r.content).hexdigest()
    doc = r.json()
    assert [layer["digest"] for layer in doc["layers"]] == [layer["digest"] for layer in image.doc["layers"]]
    skopeo("copy", "--src-tls-verify=false", f"docker://{host(registry.url)}/interop/docker:v1",
           f"dir:{tmp_path / 'out'}")
    assert (tmp_path / "out" / "manifest.json").read_bytes() == r.content
    for layer in doc["layers"]:
        assert (tmp_path / "out" / layer["digest"][7:]).read_bytes() == image.blobs[layer["digest"]]


def test_skopeo_multi_platform_index(registry: Registry, tmp_path: Path) -> None:
    amd, arm = make_image("amd", layers=1), make_image("arm", layers=1, arch="arm64")
    idx = make_index([amd, arm])
    write_layout(tmp_path / "src", {"multi": Image(idx.manifest, idx.media_type, {**amd.blobs, **arm.blobs,
                                                   amd.digest: amd.manifest, arm.digest: arm.manifest})})
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:multi",
           f"docker://{host(registry.url)}/interop/multi:latest")
    r = registry.client.get("/v2/interop/multi/manifests/latest")
    assert r.content == idx.manifest
    for im in (amd, arm):
        assert registry.client.get(f"/v2/interop/multi/manifests/{im.digest}").content == im.manifest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry on a loopback port, with its own storage."""
    if DISTRIBUTION is None:
        pytest.fail("docker-registry is required: apt-get install docker-registry")
    port = _free_port()
    config = tmp_path / "distribution.yml"
    config.write_text(f"""version: 0.1
log: {{level: error}}
storage:
  filesystem: {{rootdirectory: {tmp_path / 'distribution'}}}
  delete: {{enabled: true}}
http: {{addr: 127.0.0.1:{port}}}
""")
    proc = subprocess.Popen([DISTRIBUTION, "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{url}/v2/").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_registry_to_distribution_and_back(registry: Registry, distribution: str, tmp_path: Path) -> None:
    image = make_image("peer", layers=2)
    registry.push_image("peer/app", image, tag="v1")
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests",
           f"docker://{host(registry.url)}/peer/app:v1", f"docker://{host(distribution)}/peer/app:v1")
    theirs = httpx.get(f"{distribution}/v2/peer/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert theirs.headers["Docker-Content-Digest"] == image.digest
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests",
           f"docker://{host(distribution)}/peer/app:v1", f"docker://{host(registry.url)}/back/app:v2")
    ours = registry.client.get("/v2/back/app/manifests/v2", headers={"Accept": OCI_MANIFEST})
    assert ours.content == theirs.content == image.manifest


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_skopeo_with_auth(tmp_path: Path, kind: str) -> None:
    from registry_support import make_registry

    from workbench.engine.registry.auth import Htpasswd, HtpasswdAuth, TokenAuth, make_htpasswd_line
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(make_htpasswd_line("ci", "pw", rounds=4) + "\n")
    auth = HtpasswdAuth(htpasswd) if kind == "basic" else TokenAuth(b"s" * 32, users=Htpasswd(htpasswd))
    gen = make_registry(tmp_path, auth=auth)
    reg = next(gen)
    try:
        image = make_image(f"auth-{kind}", layers=1)
        write_layout(tmp_path / "src", {"v1": image})
        dest = f"docker://{host(reg.url)}/private/app:v1"
        proc = subprocess.run([SKOPEO or "skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                               "--dest-creds", "ci:wrong", f"oci:{tmp_path / 'src'}:v1", dest],
                              check=False, capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and "unauthorized" in proc.stderr.lower()
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "ci:pw", f"oci:{tmp_path / 'src'}:v1", dest)
        raw = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", "ci:pw", dest)
        assert raw.encode() == image.manifest
    finally:
        gen.close()
