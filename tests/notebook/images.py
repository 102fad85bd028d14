"""Hand-made multi-layer images as docker-save archives (OCI blobs + manifest.json), for `POST /images/load`.

A layer is a list of entries: `("path", b"content")` a file, `("path/", None)` a directory,
`("path", "->target")` a symlink, `(".wh.name", None)` a whiteout, `("dir/.wh..wh..opq", None)` opaque.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence

Entry = tuple[str, bytes | str | None]


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(entries: Sequence[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            ti = tarfile.TarInfo(name.rstrip("/"))
            ti.mtime = 1700000000
            if name.endswith("/"):
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(ti)
            elif isinstance(data, str) and data.startswith("->"):
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, data[2:], 0o777
                tar.addfile(ti)
            else:
                payload = data if isinstance(data, bytes) else b""
                ti.size, ti.mode = len(payload), 0o644
                tar.addfile(ti, io.BytesIO(payload))
    return buf.getvalue()


def image_archive(layers: Sequence[Sequence[Entry]], tag: str, *, created_by: Sequence[str] = (),
                  cmd: Sequence[str] = ("sh",)) -> bytes:
    """A docker-save archive of one image with `layers` (bottom first), tagged `tag`."""
    blobs: dict[str, bytes] = {}
    descs, diff_ids, history = [], [], []
    for i, entries in enumerate(layers):
        raw = layer_tar(entries)
        gz = gzip.compress(raw, mtime=0)
        diff_ids.append(_sha(raw))
        blobs[_sha(gz)] = gz
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _sha(gz),
                      "size": len(gz)})
        history.append({"created": f"2024-01-0{min(i + 1, 9)}T00:00:00Z",
                        "created_by": created_by[i] if i < len(created_by) else f"layer {i}"})
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": list(cmd)},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history,
              "created": "2024-01-09T00:00:00Z"}
    cfg = json.dumps(config, sort_keys=True).encode()
    blobs[_sha(cfg)] = cfg
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha(cfg),
                           "size": len(cfg)}, "layers": descs}
    man = json.dumps(manifest, sort_keys=True).encode()
    blobs[_sha(man)] = man
    repo, _, t = tag.rpartition(":")
    index = {"schemaVersion": 2, "manifests": [{"mediaType": manifest["mediaType"], "digest": _sha(man),
                                                "size": len(man), "annotations": {
                                                    "io.containerd.image.name": tag,
                                                    "org.opencontainers.image.ref.name": t}}]}
    docker_manifest = [{"Config": "blobs/sha256/" + _sha(cfg)[7:], "RepoTags": [tag],
                        "Layers": ["blobs/sha256/" + d["digest"][7:] for d in descs]}]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        for digest, data in blobs.items():
            add("blobs/sha256/" + digest[7:], data)
        add("index.json", json.dumps(index).encode())
        add("manifest.json", json.dumps(docker_manifest).encode())
    return out.getvalue()


# The layered image the view and widget tests use: 1 MB written then deleted, a file overwritten,
# a directory made opaque. Wasted: big.bin (1_000_000) + etc/app.conf first copy (5) + cache/a (3).
WASTEFUL = [
    [("bin/", None), ("bin/tool", b"#!/bin/sh\necho tool\n"), ("etc/", None), ("etc/app.conf", b"a=1\n\n"),
     ("cache/", None), ("cache/a", b"aaa"), ("data/", None), ("data/big.bin", b"x" * 1_000_000),
     ("bin/sh", "->tool")],
    [("data/", None), ("data/.wh.big.bin", None), ("etc/", None), ("etc/app.conf", b"a=2\nb=3\n")],
    [("cache/", None), ("cache/.wh..wh..opq", None), ("cache/b", b"bb"), ("new.txt", b"new file\n")],
]
