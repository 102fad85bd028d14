"""`docker commit`: a container's changes (its overlay upper dir) become a new image layer."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from typing import Any

from workbench.engine.services.changes import apply_changes
from workbench.engine.services.images import rfc3339
from workbench.engine.store.layers import diff_to_tar
from workbench.errors import InvalidArgument
from workbench.oci import reference

_HIDDEN = ("etc/hosts", "etc/hostname", "etc/resolv.conf")


def commit(runner: Any, image_io: Any, ref: str, *, repo: str | None, tag: str | None, comment: str = "",
           author: str = "", changes: list[str] = (), config: dict[str, Any] | None = None,
           pause: bool = True) -> str:
    """Commit container `ref` and return the new image ID (blocking: call from a worker thread)."""
    with runner.svc.images.gc.busy():        # the new layer belongs to no image until the end
        return _commit(runner, image_io, ref, repo=repo, tag=tag, comment=comment, author=author,
                       changes=changes, config=config, pause=pause)


def _commit(runner: Any, image_io: Any, ref: str, *, repo: str | None, tag: str | None, comment: str,
            author: str, changes: list[str], config: dict[str, Any] | None, pause: bool) -> str:
    svc = runner.svc
    doc = svc.get(ref)
    images = svc.images
    base = images.get(doc["Image"])
    base_cfg = images.config(base)
    upper = svc.path(doc["Id"]) / "upper"
    paused = False
    if pause and doc["State"]["Status"] == "running":
        with contextlib.suppress(Exception):
            runner.runtime.pause(doc["Id"])
            paused = True
    try:
        fd, tmp = tempfile.mkstemp(dir=image_io.tmp_dir, prefix="commit-")
        try:
            with os.fdopen(fd, "wb") as out:
                if upper.exists():
                    diff_to_tar(upper, out)
            _drop_runtime_files(tmp)
            with open(tmp, "rb") as f:
                info = image_io.layers.ingest(f)
        finally:
            os.unlink(tmp)
    finally:
        if paused:
            with contextlib.suppress(Exception):
                runner.runtime.resume(doc["Id"])
    parent_chain = images.chain_id(base)
    diff_ids = images.diff_ids(base) + [info.diff_id]
    image_io.layers.unpack(diff_ids)
    run_cfg = dict(base_cfg.get("config") or {})
    c = doc["Config"]
    for key, ours in (("Cmd", "Cmd"), ("Entrypoint", "Entrypoint"), ("Env", "Env"), ("WorkingDir", "WorkingDir"),
                      ("User", "User"), ("Labels", "Labels"), ("ExposedPorts", "ExposedPorts"),
                      ("Volumes", "Volumes"), ("StopSignal", "StopSignal")):
        if c.get(ours) not in (None, "", [], {}):
            run_cfg[key] = c[ours]
    if config:
        if not isinstance(config, dict):
            raise InvalidArgument("invalid commit config: expected a JSON object")
        run_cfg.update({k: v for k, v in config.items() if v not in (None, "", [], {})})
    run_cfg = apply_changes(run_cfg, list(changes))
    now = rfc3339(time.time())
    history = list(base_cfg.get("history") or [])
    history.append({"created": now, "created_by": " ".join([doc["Path"], *doc.get("Args", [])]),
                    **({"comment": comment} if comment else {}), **({"author": author} if author else {})})
    new_cfg = {**base_cfg, "created": now, "config": run_cfg, "history": history,
               "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    if author:
        new_cfg["author"] = author
    del parent_chain
    tags = []
    if repo:
        r = reference.parse(repo)
        tags.append((r.with_tag(tag) if tag else r.with_default_tag()).familiar)
    layers = [image_io.layers.known(d) for d in diff_ids]
    rec = image_io.register(json.dumps(new_cfg, separators=(",", ":")).encode(), layers, tags=tags,
                            parent=base.id)
    return rec.id


def _drop_runtime_files(tar_path: str) -> None:
    """The engine's bind-mount targets (/etc/hosts ...) are not part of the container's changes.

    They only appear in the upper dir as empty mount-point files created by the runtime; a commit
    must not bake empty files over the image's own. Rewrites the tar without them when present."""
    import tarfile
    with tarfile.open(tar_path) as t:
        names = t.getnames()
    if not any(n in _HIDDEN for n in names):
        return
    fd, out = tempfile.mkstemp(dir=os.path.dirname(tar_path))
    with os.fdopen(fd, "wb") as f, tarfile.open(tar_path) as src, \
            tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for m in src.getmembers():
            if m.name in _HIDDEN and m.isreg() and m.size == 0:
                continue
            dst.addfile(m, src.extractfile(m) if m.isreg() else None)
    os.replace(out, tar_path)
