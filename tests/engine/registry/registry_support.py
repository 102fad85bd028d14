"""Support for the registry tests: a real registry on a loopback TCP socket, and test data.

The server runs `make_registry_app` in its own thread and event loop; tests talk to it over
real HTTP with httpx, as any client would.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import socket
import ssl
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from workbench.engine.registry.server import make_registry_app
from workbench.engine.registry.storage import RegistryStorage

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest_of(data: bytes, algo: str = "sha256") -> str:
    return f"{algo}:{hashlib.new(algo, data).hexdigest()}"


class Served:
    """An aiohttp app served on 127.0.0.1 (or `host`):<ephemeral> from a background thread, over
    TLS with the `tls` server context."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.SockSite(self.runner, self.sock, ssl_context=tls).start())
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _cancel_the_rest() -> None:
    """Handlers of connections still open (a test's stalled clients) end with the server."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Registry:
    served: Served
    storage: RegistryStorage
    client: httpx.Client

    @property
    def url(self) -> str:
        return self.served.url

    # -- helpers used by many tests --
    def push_blob(self, repo: str, data: bytes, algo: str = "sha256") -> str:
        d = digest_of(data, algo)
        r = self.client.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, r.text
        r = self.client.put(_with_query(r.headers["Location"], digest=d), content=data,
                            headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
        return d

    def push_manifest(self, repo: str, ref: str, body: bytes, media_type: str = OCI_MANIFEST,
                      **params: Any) -> httpx.Response:
        r = self.client.put(f"/v2/{repo}/manifests/{ref}", content=body,
                            headers={"Content-Type": media_type}, params=params)
        assert r.status_code == 201, r.text
        return r

    def push_image(self, repo: str, image: Image, tag: str | None = None) -> str:
        for blob in image.blobs.values():
            self.push_blob(repo, blob)
        self.push_manifest(repo, tag or image.digest, image.manifest, image.media_type)
        return image.digest


def _with_query(location: str, **params: str) -> str:
    sep = "&" if "?" in location else "?"
    return location + sep + "&".join(f"{k}={v}" for k, v in params.items())


def make_registry(tmp_path: Path, **kwargs: Any) -> Iterator[Registry]:
    storage = RegistryStorage(tmp_path / "registry")
    served = Served(make_registry_app(storage, **kwargs))
    client = httpx.Client(base_url=served.url, timeout=30)
    try:
        yield Registry(served, storage, client)
    finally:
        client.close()
        served.close()


# ---- test data: images written by hand --------------------------------------------------------

def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


@dataclass
class Image:
    manifest: bytes
    media_type: str
    blobs: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    @property
    def doc(self) -> dict[str, Any]:
        return json.loads(self.manifest)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest), **extra}


def make_image(seed: str = "", *, docker: bool = False, layers: int = 2, compress: bool = True,
               algo: str = "sha256", extra: dict[str, Any] | None = None, arch: str = "amd64") -> Image:
    """A small image: `layers` gzip (or plain) tar layers, a config, a manifest."""
    blobs: dict[str, bytes] = {}
    layer_descs, diff_ids = [], []
    for i in range(layers):
        tar = layer_tar({f"file{i}.txt": f"{seed} layer {i} {os.urandom(8).hex()}\n".encode()})
        data = gzip.compress(tar, mtime=0) if compress else tar
        d = digest_of(data, algo)
        blobs[d] = data
        diff_ids.append(digest_of(tar, algo))
        mtype = DOCKER_LAYER if docker else (OCI_LAYER_GZ if compress else OCI_LAYER)
        layer_descs.append({"mediaType": mtype, "digest": d, "size": len(data)})
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cd = digest_of(config, algo)
    blobs[cd] = config
    mt = DOCKER_MANIFEST if docker else OCI_MANIFEST
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt,
                           "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                                      "digest": cd, "size": len(config)},
                           "layers": layer_descs}
    doc.update(extra or {})
    return Image(json.dumps(doc, indent=3).encode(), mt, blobs)


def make_index(images: list[Image], *, docker: bool = False, extra: dict[str, Any] | None = None) -> Image:
    mt = DOCKER_LIST if docker else OCI_INDEX
    archs = ["amd64", "arm64", "ppc64le", "s390x"] * 8
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt, "manifests": [
        im.descriptor(platform={"os": "linux", "architecture": arch}) for im, arch in zip(images, archs)]}
    doc.update(extra or {})
    return Image(json.dumps(doc).encode(), mt, {})


def make_artifact(subject: Image | None, artifact_type: str | None = "application/vnd.example.sig",
                  *, config_type: str = OCI_EMPTY, annotations: dict[str, str] | None = None) -> Image:
    empty = b"{}"
    payload = os.urandom(64)
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": config_type, "digest": digest_of(empty), "size": 2},
                           "layers": [{"mediaType": "application/vnd.example.data",
                                       "digest": digest_of(payload), "size": len(payload)}]}
    if artifact_type:
        doc["artifactType"] = artifact_type
    if subject is not None:
        doc["subject"] = subject.descriptor()
    doc["annotations"] = annotations or {"org.example.id": os.urandom(4).hex()}
    return Image(json.dumps(doc).encode(), OCI_MANIFEST, {digest_of(empty): empty,
                                                          digest_of(payload): payload})
