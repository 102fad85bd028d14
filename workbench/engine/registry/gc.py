"""Garbage collection of a registry's storage: mark and sweep, safe while uploads run.

Mark: every manifest linked in any repository is live, and so is everything it references:
an index's manifests (recursively), an image manifest's config and layers, and any manifest's
subject. Sweep: blobs that are not live are deleted, with the links that still name them, unless
they are younger than `grace_period` (a blob just uploaded, or just linked again by a mount or a
deduplicated upload, whose manifest has not been pushed yet). Upload sessions idle longer than
`upload_max_age` are deleted too.

The sweep holds the storage lock exclusively, so no upload can commit, mount or link a blob while
candidates are re-checked and removed; the mark runs without it, and anything made reachable
meanwhile is younger than the grace period. Uploads in progress live under `uploads/`, which the
blob sweep never touches. `dry_run` reports what would go and removes nothing.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.engine.registry import MAX_MANIFEST, RegistryError, parse_manifest
from workbench.engine.registry.storage import RegistryStorage
from workbench.oci.digest import Digest


@dataclass(frozen=True, slots=True)
class GCResult:
    """What a collection removed (or, with dry_run, would remove)."""

    removed_blobs: tuple[str, ...]
    freed_bytes: int
    kept_blobs: int
    removed_links: tuple[str, ...]       # "<repo>@<digest>" layer links to swept blobs
    removed_uploads: tuple[str, ...]
    dry_run: bool


def mark(storage: RegistryStorage) -> set[str]:
    """Digests of every blob some manifest in some repository reaches."""
    live: set[str] = set()
    todo: list[str] = []
    for repo in storage.repositories():
        todo.extend(str(d) for d in storage.manifest_links(repo))
    while todo:
        digest = todo.pop()
        if digest in live:
            continue
        live.add(digest)
        try:
            d = Digest.parse(digest)
            data = storage.blob_path(d).read_bytes() if _small(storage, d) else b""
            pm = parse_manifest(data) if data else None
        except (OSError, RegistryError, ValueError):
            pm = None
        if pm is None:
            continue                    # a plain blob, or a manifest whose bytes are gone
        live.update(pm.blobs)
        todo.extend(pm.children)
        if pm.subject:
            todo.append(pm.subject)
    return live


def _small(storage: RegistryStorage, d: Digest) -> bool:
    """Only blobs that could be manifests are parsed (manifests are capped by the server)."""
    try:
        return storage.blob_path(d).stat().st_size <= MAX_MANIFEST
    except FileNotFoundError:
        return False


def _blobs(storage: RegistryStorage) -> list[tuple[str, Path]]:
    out = []
    with contextlib.suppress(FileNotFoundError):
        for alg in sorted(os.listdir(storage.blobs_dir)):
            for entry in os.scandir(storage.blobs_dir / alg):
                if not entry.name.startswith(".tmp-"):
                    out.append((f"{alg}:{entry.name}", Path(entry.path)))
    return out


def _layer_links(storage: RegistryStorage) -> dict[str, list[tuple[str, Path]]]:
    links: dict[str, list[tuple[str, Path]]] = {}
    for repo in storage.repositories():
        base = storage.repos_dir / repo / "_layers"
        with contextlib.suppress(FileNotFoundError):
            for alg in os.listdir(base):
                for hexd in os.listdir(base / alg):
                    links.setdefault(f"{alg}:{hexd}", []).append((repo, base / alg / hexd))
    return links


def collect(storage: RegistryStorage, *, dry_run: bool = False, grace_period: float = 3600.0,
            upload_max_age: float = 86400.0) -> GCResult:
    """Mark and sweep `storage`; see the module docstring for the rules."""
    now = time.time()
    removed_uploads = []
    for uid, last_active in list(storage.uploads()):
        if now - last_active > upload_max_age:
            removed_uploads.append(uid)
            if not dry_run:
                storage.remove_upload(uid)
    live = mark(storage)
    removed: list[str] = []
    removed_links: list[str] = []
    freed = kept = 0
    with storage.lock(exclusive=True):
        links = _layer_links(storage)
        live |= mark_new(storage, live)
        for digest, path in _blobs(storage):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            young = now - st.st_mtime < grace_period or any(
                now - _mtime(link) < grace_period for _, link in links.get(digest, ()))
            if digest in live or young:
                kept += 1
                continue
            removed.append(digest)
            freed += st.st_size
            for repo, link in links.get(digest, ()):
                removed_links.append(f"{repo}@{digest}")
                if not dry_run:
                    with contextlib.suppress(FileNotFoundError):
                        link.unlink()
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    return GCResult(tuple(removed), freed, kept, tuple(removed_links), tuple(removed_uploads), dry_run)


def mark_new(storage: RegistryStorage, live: set[str]) -> set[str]:
    """Re-mark under the lock: manifests linked since the first mark (pushed during it)."""
    fresh = {str(d) for repo in storage.repositories() for d in storage.manifest_links(repo)}
    return mark(storage) if fresh - live else set()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def gc(root: str | os.PathLike[str], *, dry_run: bool = False, grace_period: float = 3600.0,
       upload_max_age: float = 86400.0) -> GCResult:
    """Collect garbage in the registry stored under `root` (`workbench registry gc`).

    Args:
        root: the registry's storage root.
        dry_run: report what would be removed, remove nothing.
        grace_period: seconds a blob (or its newest link) is kept even when unreferenced.
        upload_max_age: seconds an upload session may sit idle before it is removed.
    """
    return collect(RegistryStorage(root), dry_run=dry_run, grace_period=grace_period,
                   upload_max_age=upload_max_age)
