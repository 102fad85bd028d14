"""Helpers for the builder's live tests: contexts as tars, builds over the socket, image contents.

Everything goes through the session daemon's real API: `POST /build` for builds, `GET
/images/{id}/get` to read back the layers an image really has, containers (create, start, wait,
logs) to run what was built.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUSYBOX_DF = "FROM busybox\n"


@dataclass(frozen=True)
class Entry:
    """A context entry other than a plain file: a directory, a symlink, or a file with a mode."""

    data: bytes = b""
    mode: int = 0o644
    kind: str = "file"           # file | dir | symlink
    target: str = ""
    mtime: int = 1_700_000_000
    uid: int = 0
    gid: int = 0


def context_tar(files: dict[str, bytes | str | Entry]) -> bytes:
    """A build context tar (sorted, like the docker CLI sends it)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            value = files[name]
            e = value if isinstance(value, Entry) else Entry(value.encode() if isinstance(value, str) else value)
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.mode, ti.uid, ti.gid = e.mtime, e.mode, e.uid, e.gid
            if e.kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = e.mode if e.mode != 0o644 else 0o755
                tar.addfile(ti)
            elif e.kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, e.target
                tar.addfile(ti)
            else:
                ti.size = len(e.data)
                tar.addfile(ti, io.BytesIO(e.data))
    return buf.getvalue()


@dataclass
class Build:
    """What one `POST /build` returned."""

    status: int
    events: list[dict[str, Any]] = field(default_factory=list)
    body: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None and self.image_id is not None

    @property
    def text(self) -> str:
        return "".join(e.get("stream", "") for e in self.events)

    @property
    def image_id(self) -> str | None:
        for e in self.events:
            if isinstance(e.get("aux"), dict) and "ID" in e["aux"]:
                return e["aux"]["ID"]
            if e.get("stream", "").startswith("sha256:"):
                return e["stream"].strip()
        return None

    @property
    def error(self) -> str | None:
        if self.status != 200:
            return json.loads(self.body).get("message", self.body)
        for e in self.events:
            if "error" in e:
                return e["error"]
        return None

    @property
    def code(self) -> int | None:
        for e in self.events:
            if "errorDetail" in e:
                return e["errorDetail"].get("code")
        return None

    def check(self) -> str:
        assert self.ok, f"build failed ({self.status}): {self.error}\n{self.text}"
        assert self.image_id is not None
        return self.image_id


def build(engine: Any, files: dict[str, bytes | str | Entry] | None = None, *, dockerfile: str | None = None,
          body: bytes | None = None, headers: dict[str, str] | None = None, query: dict[str, Any] | None = None,
          **params: Any) -> Build:
    """POST /build with a context made of `files` (plus `dockerfile` as `Dockerfile`); `params` (and
    `query`, for names that clash) are the query parameters, dicts sent as JSON."""
    if body is None:
        ctx = dict(files or {})
        if dockerfile is not None:
            ctx["Dockerfile"] = dockerfile
        body = context_tar(ctx)
    query = dict(query or {})
    for k, v in params.items():
        if isinstance(v, dict):
            query[k] = json.dumps(v)
        elif isinstance(v, bool):
            query[k] = "1" if v else "0"
        else:
            query[k] = v
    with engine.api.stream("POST", "/build", params=query, content=body,
                           headers={"Content-Type": "application/x-tar", **(headers or {})}) as r:
        if r.status_code != 200:
            return Build(r.status_code, body=r.read().decode())
        events = [json.loads(line) for line in r.iter_lines() if line.strip()]
    return Build(200, events)


def unique(prefix: str = "bt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- reading images back ------------------------------------------------------------------------
@dataclass
class Layer:
    members: dict[str, tarfile.TarInfo]
    data: dict[str, bytes]

    @property
    def names(self) -> list[str]:
        return list(self.members)


def saved(engine: Any, ref: str) -> tuple[dict[str, Any], list[Layer], bytes]:
    """(config, layers in order, the raw save tar) of an image, via `GET /images/{ref}/get`."""
    r = engine.api.get(f"/images/{ref}/get")
    assert r.status_code == 200, r.text
    raw = r.content
    outer = tarfile.open(fileobj=io.BytesIO(raw))
    manifest = json.load(outer.extractfile("manifest.json"))[0]
    config = json.load(outer.extractfile(manifest["Config"]))
    layers = []
    for path in manifest["Layers"]:
        blob = outer.extractfile(path).read()
        members, data = {}, {}
        with tarfile.open(fileobj=io.BytesIO(blob)) as inner:
            for m in inner.getmembers():
                members[m.name.rstrip("/")] = m
                if m.isfile():
                    data[m.name] = inner.extractfile(m).read()
        layers.append(Layer(members, data))
    return config, layers, raw


def filesystem(layers: list[Layer]) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """Flatten layers (OCI whiteouts applied) into {path: (member, data)}."""
    fs: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    for layer in layers:
        for name in layer.members:
            parent, _, base = name.rpartition("/")
            if base == ".wh..wh..opq":
                prefix = parent + "/"
                for k in [k for k in fs if k.startswith(prefix)]:
                    del fs[k]
                continue
            if base.startswith(".wh."):
                gone = (parent + "/" if parent else "") + base[4:]
                for k in [k for k in fs if k == gone or k.startswith(gone + "/")]:
                    del fs[k]
                continue
        for name, m in layer.members.items():
            base = name.rpartition("/")[2]
            if not base.startswith(".wh."):
                fs[name] = (m, layer.data.get(name, b""))
    return fs


def image_config(engine: Any, ref: str) -> dict[str, Any]:
    r = engine.api.get(f"/images/{ref}/json")
    assert r.status_code == 200, r.text
    return r.json()


def run_logs(engine: Any, image: str, cmd: list[str] | None = None, **extra: Any) -> tuple[int, str]:
    """Run `image` (create, start, wait, logs, remove); return (exit code, stdout+stderr)."""
    body: dict[str, Any] = {"Image": image, **extra}
    if cmd is not None:
        body["Cmd"] = cmd
    r = engine.api.post("/containers/create", json=body)
    assert r.status_code == 201, r.text
    cid = r.json()["Id"]
    try:
        assert engine.api.post(f"/containers/{cid}/start").status_code == 204
        code = engine.api.post(f"/containers/{cid}/wait").json()["StatusCode"]
        raw = engine.api.get(f"/containers/{cid}/logs", params={"stdout": 1, "stderr": 1}).content
        out = b""
        while raw:
            _, size = struct.unpack(">BxxxL", raw[:8])
            out += raw[8:8 + size]
            raw = raw[8 + size:]
        return code, out.decode()
    finally:
        engine.api.delete(f"/containers/{cid}", params={"force": 1})


def remove_image(engine: Any, ref: str) -> None:
    engine.api.delete(f"/images/{ref}", params={"force": 1})


def make(engine: Any, images: list[str], dockerfile: str, files: dict[str, bytes | str | Entry] | None = None,
         **params: Any) -> str:
    """Build, check, and note the image in `images` (the `images` fixture removes them after the test)."""
    image = build(engine, files, dockerfile=dockerfile, **params).check()
    images.append(image)
    return image


def leftovers(engine: Any) -> list[str]:
    """Build directories and mounts a finished build should not leave behind."""
    tmp = Path(engine.root) / "tmp"
    dirs = [str(p) for p in tmp.glob("build-*")]
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if "/tmp/build-" in line.split()[4]
                  and line.split()[4].startswith(str(engine.root))]
    return dirs + mounts


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def env_without_docker() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
