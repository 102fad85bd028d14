"""Provenance: what images a notebook built, pulled and used, kept in `workbench.lock` beside it.

Each entry, keyed by the reference the notebook used (`app:1`, `busybox:latest`):

    {"reference": "app:1", "kind": "build" | "pull" | "use", "image_id": "sha256:...",
     "repo_digest": "127.0.0.1:5000/app@sha256:..." (after a pull or push, else ""),
     "base_images": {"busybox:latest": "sha256:..."}, "build_args": {"A": "1"},
     "context_hash": "sha256:...", "dockerfile_hash": "sha256:...", "recorded": "2025-...Z"}

The same entry goes into the cell output's metadata (`metadata.workbench.provenance`).
`%docker pin` makes later commands use the recorded digests instead of the names (and `%docker pin
FILE` rewrites a Dockerfile's FROM lines); `%docker verify` checks that every recorded reference (and
every base image of a recorded build) still resolves to the recorded image, and fails otherwise.
The file is JSON with sorted keys, written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from workbench.client import Client
    from workbench.kernel_ext.session import NotebookSession

__all__ = ["base_images", "context_hash", "load_lock", "pin", "pinned_reference", "record", "rewrite_from",
           "save_lock", "verify"]

LOCK_VERSION = 1
_FROM = re.compile(r"^(\s*FROM\s+)((?:--\S+\s+)*)(\S+)(.*)$", re.IGNORECASE | re.MULTILINE)
_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?", re.IGNORECASE | re.MULTILINE)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


# -- the lock file ----------------------------------------------------------------------------------
def load_lock(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {"version": LOCK_VERSION, "images": {}}
    except (OSError, ValueError) as err:
        raise InvalidArgument(f"cannot read {path}: {err}") from err
    doc.setdefault("images", {})
    return doc


def save_lock(path: Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".workbench.lock.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def record(session: NotebookSession, entry: dict[str, Any]) -> dict[str, Any]:
    """Add or replace the entry for `entry["reference"]`; keep what an earlier push learned."""
    doc = load_lock(session.lock_path)
    old = doc["images"].get(entry["reference"]) or {}
    if old.get("image_id") == entry.get("image_id") and old.get("repo_digest") and not entry.get("repo_digest"):
        entry["repo_digest"] = old["repo_digest"]
    if entry.get("kind") == "use" and old and old.get("image_id") == entry.get("image_id"):
        return old  # a use of something already recorded adds nothing
    entry.setdefault("recorded", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    doc["version"] = LOCK_VERSION
    doc["images"][entry["reference"]] = entry
    save_lock(session.lock_path, doc)
    return entry


def _entry(reference: str, kind: str, image_id: str, repo_digest: str = "", **extra: Any) -> dict[str, Any]:
    return {"reference": reference, "kind": kind, "image_id": image_id, "repo_digest": repo_digest,
            "base_images": {}, "build_args": {}, "context_hash": "", "dockerfile_hash": "", **extra}


def _repo_digest(details: Any, reference: str) -> str:
    name = reference.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    repo = name[:colon] if colon > slash else name
    return next((d for d in details.repo_digests if d.split("@", 1)[0] == repo), "")


def record_pull(client: Client, session: NotebookSession, reference: str) -> dict[str, Any]:
    details = client.images.inspect(reference)
    return record(session, _entry(reference, "pull", details.id, _repo_digest(details, reference)))


def record_use(client: Client, session: NotebookSession, reference: str) -> dict[str, Any] | None:
    try:
        details = client.images.inspect(reference)
    except NotFound:
        return None
    return record(session, _entry(reference, "use", details.id, _repo_digest(details, reference)))


def record_push(session: NotebookSession, client: Client, reference: str, digest: str) -> dict[str, Any]:
    name = reference.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    repo = name[:colon] if colon > slash else name
    doc = load_lock(session.lock_path)
    entry = doc["images"].get(reference) or _entry(reference, "push", client.images.inspect(reference).id)
    entry["repo_digest"] = f"{repo}@{digest}" if digest else entry.get("repo_digest", "")
    doc["images"][reference] = entry
    save_lock(session.lock_path, doc)
    return entry


def record_build(client: Client, session: NotebookSession, tags: list[str], image_id: str, dockerfile: str,
                 context: str | None, build_args: Mapping[str, str]) -> list[dict[str, Any]]:
    bases = {}
    for ref in base_images(dockerfile, build_args):
        with contextlib.suppress(NotFound):
            bases[ref] = client.images.inspect(ref).id
    common = {"base_images": bases, "build_args": dict(build_args),
              "context_hash": context_hash(context), "dockerfile_hash": _sha(dockerfile.encode())}
    return [record(session, _entry(tag, "build", image_id, **common)) for tag in tags or [image_id]]


# -- hashing and Dockerfile reading ---------------------------------------------------------------------
def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def context_hash(context: str | None) -> str:
    """A digest of a build context directory as the build sees it (`.dockerignore` applied)."""
    if not context or context == "-" or not os.path.isdir(context):
        return _sha(b"")
    from workbench.client._context import DockerIgnore

    root = Path(context)
    ignore_file = root / ".dockerignore"
    ignore = DockerIgnore.parse(ignore_file.read_text()) if ignore_file.is_file() else DockerIgnore([])
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if ignore.excluded(rel):
            continue
        st = path.lstat()
        h.update(f"{rel}\0{st.st_mode:o}\0".encode())
        if path.is_file() and not path.is_symlink():
            h.update(hashlib.sha256(path.read_bytes()).digest())
        elif path.is_symlink():
            h.update(os.readlink(path).encode())
    return "sha256:" + h.hexdigest()


def base_images(dockerfile: str, build_args: Mapping[str, str] | None = None) -> list[str]:
    """The images a Dockerfile starts from (`scratch` and earlier stages left out), ARGs applied."""
    args = {m.group(1): m.group(2) or "" for m in _ARG.finditer(dockerfile)}
    args.update(build_args or {})
    stages: set[str] = set()
    out: list[str] = []
    for m in _FROM.finditer(dockerfile):
        image = _VAR.sub(lambda v: args.get(v.group(1) or v.group(2), ""), m.group(3))
        alias = re.match(r"\s+AS\s+(\S+)", m.group(4), re.IGNORECASE)
        if image.lower() != "scratch" and image.lower() not in stages and image not in out:
            out.append(image)
        if alias:
            stages.add(alias.group(1).lower())
    return out


# -- pin and verify -----------------------------------------------------------------------------------
def _pin_form(entry: Mapping[str, Any]) -> str:
    return entry.get("repo_digest") or entry["image_id"]


def pinned_reference(session: NotebookSession, reference: str) -> str:
    """`reference` as pinned by the lock (when pinning is on and the lock knows it), else unchanged."""
    if not session.pinned or "@" in reference or reference.startswith("sha256:"):
        return reference
    images = load_lock(session.lock_path)["images"]
    candidates = [reference] if ":" in reference.rsplit("/", 1)[-1] else [reference, f"{reference}:latest"]
    for ref in candidates:
        if ref in images:
            return _pin_form(images[ref])
    return reference


def rewrite_from(session: NotebookSession, dockerfile: str) -> str:
    """FROM lines with their images replaced by pinned forms."""
    def repl(m: re.Match[str]) -> str:
        return f"{m.group(1)}{m.group(2)}{pinned_reference(session, m.group(3))}{m.group(4)}"

    return _FROM.sub(repl, dockerfile)


def pin(session: NotebookSession, argv: list[str]) -> Any:
    """`%docker pin [off | DOCKERFILE...]`: pin this kernel's references (or files) to the lock."""
    import pandas as pd

    if argv[:1] == ["off"]:
        session.pinned = False
        print("pinning off: references are used as written")
        return None
    images = load_lock(session.lock_path)["images"]
    if not images:
        raise NotFound(f"nothing to pin: {session.lock_path} has no images yet (build or pull first)")
    session.pinned = True
    for name in argv:
        path = Path(name)
        if not path.is_file():
            raise InvalidArgument(f"pin: no such Dockerfile: {name}")
        text = path.read_text()
        new = rewrite_from(session, text)
        if new != text:
            path.write_text(new)
            print(f"pinned FROM lines in {name}")
    rows = [{"reference": ref, "pinned": _pin_form(e), "kind": e.get("kind", "")} for ref, e in sorted(images.items())]
    df = pd.DataFrame(rows, columns=["reference", "pinned", "kind"])
    df.attrs["workbench"] = {"kind": "pin", "bytes": []}
    return df


def verify(session: NotebookSession, client: Client, argv: list[str]) -> Any:
    """`%docker verify [REFERENCE...]`: check recorded images; raise VerifyFailed on any drift."""
    import pandas as pd

    from workbench.kernel_ext.failures import VerifyFailed

    images = load_lock(session.lock_path)["images"]
    wanted = argv or sorted(images)
    rows = []
    for ref in wanted:
        entry = images.get(ref)
        if entry is None:
            rows.append({"reference": ref, "expected": "", "actual": "", "status": "not in lock"})
            continue
        checks = [(ref, entry["image_id"])] + sorted((entry.get("base_images") or {}).items())
        for name, expected in checks:
            try:
                actual = client.images.inspect(name).id
            except NotFound:
                actual = ""
            status = "ok" if actual == expected else ("missing" if not actual else "changed")
            label = ref if name == ref else f"{ref} (base {name})"
            rows.append({"reference": label, "expected": expected, "actual": actual, "status": status})
    df = pd.DataFrame(rows, columns=["reference", "expected", "actual", "status"])
    df.attrs["workbench"] = {"kind": "verify", "bytes": []}
    bad = df[df["status"] != "ok"]
    if len(bad):
        what = "; ".join(f"{r.reference}: {r.status}" for r in bad.itertuples())
        raise VerifyFailed(f"{len(bad)} of {len(df)} images do not match {session.lock_path.name}: {what}")
    print(f"{len(df)} images match {session.lock_path}")
    return df
