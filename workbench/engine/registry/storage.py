"""Filesystem storage of an OCI Distribution registry, and the spec's error vocabulary.

Layout under `root` (every path below it is owned by this module; gc.py only reads and deletes):

    blobs/<alg>/<hex>                            content, shared by all repositories, read-only
    repositories/<name>/_layers/<alg>/<hex>      empty file: the blob is linked into <name>
    repositories/<name>/_manifests/<alg>/<hex>   the manifest's media type; its bytes are a blob
    repositories/<name>/_tags/<tag>              the digest the tag points at
    repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>   descriptor JSON of a referrer of <alg>:<hex>
    uploads/<uuid>/data, uploads/<uuid>/info     an upload session: bytes so far, {"repo", "started"}
    .lock                                        shared by writers that link blobs, exclusive for gc's sweep

Contract: a blob becomes visible only after its digest was verified; it is written to a temp file
in the same directory as nothing else, fsynced, renamed into place, and the directory fsynced. A
failed or cancelled upload leaves nothing behind. Two uploads of the same blob never corrupt it:
each writes its own session file and the rename of identical content is atomic. Names beginning
with `_` cannot be repository path components, so the `_layers`... directories never clash.
All methods are synchronous and thread-safe; the server runs them off the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
import uuid as _uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.engine.registry import (MAX_MANIFEST, BlobUnknown, BlobUploadUnknown, DigestInvalid,
                                       ManifestBlobUnknown, ManifestUnknown, NameUnknown, ParsedManifest,
                                       RangeInvalid, RegistryError, SizeInvalid, TagInvalid, check_name,
                                       digest_of, is_tag, parse_digest, parse_manifest, referrer_descriptor)
from workbench.engine.store.durable import atomic_write, commit_file, fsync_dir
from workbench.errors import InvalidArgument
from workbench.oci.digest import Digest

_UUID_RE = re.compile(r"^[0-9a-f]{32}$")
_MARKERS = ("_layers", "_manifests", "_tags")


SESSION_LOCK_WAIT = 5.0     # seconds a request waits for another request on the same upload session


# ---- durable file primitives -----------------------------------------------------------------

def write_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` at `path` atomically and durably, making parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, mode=mode)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    with contextlib.suppress(OSError):
        fsync_dir(path.parent)
    return True


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: str
    size: int
    path: Path


@dataclass(frozen=True, slots=True)
class UploadInfo:
    uuid: str
    repo: str
    offset: int


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: str
    media_type: str
    data: bytes


def _check_reference(reference: str) -> None:
    if ":" not in reference and not is_tag(reference):
        raise TagInvalid(f"invalid tag: {reference[:200]!r}", detail={"tag": reference[:200]})


class RegistryStorage:
    """Blobs, manifests, tags, referrers and upload sessions of a registry under `root`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs"
        self.repos_dir = self.root / "repositories"
        self.uploads_dir = self.root / "uploads"
        for d in (self.blobs_dir, self.repos_dir, self.uploads_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._hashers: dict[str, tuple[int, Any]] = {}

    # -- paths and locks --
    def blob_path(self, d: Digest) -> Path:
        return self.blobs_dir / d.algorithm / d.encoded

    def repo_dir(self, name: str) -> Path:
        return self.repos_dir / check_name(name)

    @contextlib.contextmanager
    def lock(self, exclusive: bool = False) -> Iterator[None]:
        """Writers that make a blob reachable hold it shared; gc's sweep holds it exclusive."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def _link(self, name: str, d: Digest) -> None:
        link = self.repo_dir(name) / "_layers" / d.algorithm / d.encoded
        if not link.exists():
            write_file(link, b"")
        now = time.time()
        with contextlib.suppress(OSError):
            os.utime(self.blob_path(d), (now, now))   # fresh for gc's grace period

    # -- blobs --
    def blob_stat(self, name: str, digest: str) -> BlobInfo:
        d = parse_digest(digest)
        linked = (self.repo_dir(name) / "_layers" / d.algorithm / d.encoded).exists() or \
            (self.repo_dir(name) / "_manifests" / d.algorithm / d.encoded).exists()
        path = self.blob_path(d)
        try:
            size = path.stat().st_size if linked else -1
        except FileNotFoundError:
            size = -1
        if size < 0:
            raise BlobUnknown(f"blob unknown to registry: {d}", detail={"digest": str(d)})
        return BlobInfo(str(d), size, path)

    def blob_claim(self, name: str, digest: str) -> BlobInfo:
        """`blob_stat` for a HEAD, which a pusher sends to skip blobs the registry has: the blob is
        made fresh as `_link` makes it (under the lock gc's sweep takes), so it outlives gc's grace
        period until the manifest that needs it is pushed; after a sweep took it, the HEAD is a 404."""
        with self.lock():
            info = self.blob_stat(name, digest)
            now = time.time()
            with contextlib.suppress(OSError):
                os.utime(info.path, (now, now))
        return info

    def blob_delete(self, name: str, digest: str) -> None:
        d = parse_digest(digest)
        if not _unlink(self.repo_dir(name) / "_layers" / d.algorithm / d.encoded):
            raise BlobUnknown(f"blob unknown to registry: {d}", detail={"digest": str(d)})

    def blob_mount(self, name: str, digest: str, source: str | None) -> BlobInfo | None:
        """Link a blob another repository has (any, when `source` is None); None if not possible."""
        d = parse_digest(digest)
        check_name(name)
        with self.lock():
            if source is not None:
                try:
                    self.blob_stat(source, str(d))
                except RegistryError:
                    return None
            elif not self.blob_path(d).exists():
                return None
            self._link(name, d)
        return self.blob_stat(name, str(d))

    # -- uploads --
    def upload_start(self, name: str) -> UploadInfo:
        check_name(name)
        if len(self._hashers) > 64:    # sessions gc removed (it runs in another process)
            for gone in [u for u in list(self._hashers) if not (self.uploads_dir / u).exists()]:
                self._hashers.pop(gone, None)
        uid = _uuid.uuid4().hex
        path = self.uploads_dir / uid
        path.mkdir()
        (path / "data").touch()
        (path / "info").write_text(json.dumps({"repo": name, "started": time.time()}))
        return UploadInfo(uid, name, 0)

    def _upload_dir(self, name: str, uid: str) -> Path:
        check_name(name)
        path = self.uploads_dir / uid
        try:
            if not _UUID_RE.match(uid) or json.loads((path / "info").read_text())["repo"] != name:
                raise FileNotFoundError(uid)
        except (OSError, ValueError, KeyError) as err:
            raise BlobUploadUnknown(f"blob upload unknown to registry: {uid[:64]}") from err
        return path

    def upload_status(self, name: str, uid: str) -> UploadInfo:
        path = self._upload_dir(name, uid)
        return UploadInfo(uid, name, (path / "data").stat().st_size)

    def _open_session(self, name: str, uid: str) -> tuple[Path, Any]:
        """The session's data file, open and locked (exclusively: one request at a time).

        A request that waits for the lock may find the session gone once it has it (committed,
        its file now the blob, or cancelled): then it is BLOB_UPLOAD_UNKNOWN, and it never writes
        to a file that is no longer the session's. A session busy for longer than
        SESSION_LOCK_WAIT answers 416 with its current offset, so no request waits forever.
        """
        path = self._upload_dir(name, uid)
        try:
            f = open(path / "data", "r+b")
        except FileNotFoundError as err:
            raise BlobUploadUnknown(f"blob upload unknown to registry: {uid}") from err
        try:
            deadline = time.monotonic() + SESSION_LOCK_WAIT
            while True:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RangeInvalid("another request is writing to this upload",
                                           detail={"offset": os.fstat(f.fileno()).st_size}) from None
                    time.sleep(0.01)
            try:
                same = os.stat(path / "data").st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                raise BlobUploadUnknown(f"blob upload unknown to registry: {uid}")
        except BaseException:
            f.close()
            raise
        return path, f

    def upload_writer(self, name: str, uid: str, start: int | None) -> UploadWriter:
        """Open the session for appending; `start` (Content-Range) must equal the current size."""
        _, f = self._open_session(name, uid)
        writer = UploadWriter(self, uid, name, f)
        if start is not None and start != writer.offset:
            writer.abort()
            raise RangeInvalid(f"range start {start} does not match upload offset {writer.offset}",
                               detail={"offset": writer.offset})
        return writer

    def upload_commit(self, name: str, uid: str, digest: str) -> BlobInfo:
        """Verify the session's bytes against `digest` and make the blob visible in `name`.

        Holds the session's lock from hashing to rename, so no request can add bytes in between."""
        try:
            d = parse_digest(digest)
        except DigestInvalid:
            self.upload_cancel(name, uid)
            raise
        path, f = self._open_session(name, uid)
        with f:
            size = os.fstat(f.fileno()).st_size
            cached = self._hashers.pop(uid, None)
            if d.algorithm == "sha256" and cached and cached[0] == size:
                got = cached[1].hexdigest()
            else:
                h = hashlib.new(d.algorithm)
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                got = h.hexdigest()
            if got != d.encoded:
                self._remove_upload(uid)
                raise DigestInvalid(f"digest mismatch: expected {d}, got {d.algorithm}:{got}",
                                    detail={"digest": str(d)})
            final = self.blob_path(d)
            with self.lock():
                if not final.exists():
                    final.parent.mkdir(parents=True, exist_ok=True)
                    commit_file(path / "data", final)
                self._link(name, d)
            self._remove_upload(uid)
        return BlobInfo(str(d), size, final)

    def upload_cancel(self, name: str, uid: str) -> None:
        """Drop a session (waiting, like any request, for one that is writing to it)."""
        try:
            _, f = self._open_session(name, uid)
        except RangeInvalid:       # still busy: remove it anyway; that writer's bytes go nowhere
            self._remove_upload(uid)
            return
        with f:
            self._remove_upload(uid)

    def _remove_upload(self, uid: str) -> None:
        self._hashers.pop(uid, None)
        path = self.uploads_dir / uid
        for child in ("data", "info"):
            with contextlib.suppress(FileNotFoundError):
                (path / child).unlink()
        with contextlib.suppress(OSError):
            path.rmdir()

    def uploads(self) -> Iterator[tuple[str, float]]:
        """(uuid, last activity time) of every session, for gc."""
        for entry in os.scandir(self.uploads_dir):
            with contextlib.suppress(OSError):
                yield entry.name, max(os.stat(os.path.join(entry.path, n)).st_mtime
                                      for n in ("data", "info"))

    def remove_upload(self, uid: str) -> None:
        self._remove_upload(uid)

    # -- manifests and tags --
    def resolve(self, name: str, reference: str) -> Digest:
        """Tag or digest → digest of a manifest in `name`. Raise ManifestUnknown, also for a
        reference that is no tag (no manifest can have it: the conformance suite reads
        `.INVALID_MANIFEST_NAME` as "nonexistent", 404), and DigestInvalid for a malformed digest."""
        repo = self.repo_dir(name)
        if ":" not in reference and not is_tag(reference):
            raise ManifestUnknown(f"manifest unknown: {name}:{reference[:200]}", detail={"tag": reference[:200]})
        if is_tag(reference):
            try:
                d = Digest.parse((repo / "_tags" / reference).read_text().strip())
            except (OSError, InvalidArgument) as err:
                raise ManifestUnknown(f"manifest unknown: {name}:{reference}",
                                      detail={"tag": reference}) from err
        else:
            d = parse_digest(reference)
        if not (repo / "_manifests" / d.algorithm / d.encoded).exists():
            raise ManifestUnknown(f"manifest unknown: {name}@{d}", detail={"digest": str(d)})
        return d

    def manifest_get(self, name: str, reference: str) -> StoredManifest:
        d = self.resolve(name, reference)
        link = self.repo_dir(name) / "_manifests" / d.algorithm / d.encoded
        try:
            media_type = link.read_text().strip()
            data = self.blob_path(d).read_bytes()
        except FileNotFoundError as err:
            raise ManifestUnknown(f"manifest unknown: {name}@{d}") from err
        return StoredManifest(str(d), media_type, data)

    def manifest_put(self, name: str, reference: str, data: bytes, content_type: str, *,
                     tags: tuple[str, ...] = (), strict: bool = False) -> tuple[str, ParsedManifest]:
        """Store a manifest byte for byte, link it, record its subject, point tags at it."""
        repo = self.repo_dir(name)
        _check_reference(reference)
        if is_tag(reference):
            d = Digest.of(data)
            tags = (reference, *tags)
        else:
            want = parse_digest(reference)
            d = digest_of(want, data)
            if d != want:
                raise DigestInvalid(f"manifest digest mismatch: reference {want}, content {d}",
                                    detail={"digest": str(want)})
        for tag in tags:
            if not is_tag(tag):
                raise TagInvalid(f"invalid tag: {tag[:200]!r}", detail={"tag": tag[:200]})
        if len(data) > MAX_MANIFEST:
            raise SizeInvalid(f"manifest larger than {MAX_MANIFEST} bytes", status=413)
        pm = parse_manifest(data, content_type)
        if strict:
            self._check_references(name, pm)
        with self.lock():
            path = self.blob_path(d)
            if not path.exists():
                write_file(path, data, mode=0o444)
            write_file(repo / "_manifests" / d.algorithm / d.encoded, pm.media_type.encode())
            if pm.subject:
                s = Digest.parse(pm.subject)
                entry = repo / "_referrers" / s.algorithm / s.encoded / f"{d.algorithm}-{d.encoded}"
                desc = referrer_descriptor(pm, str(d), len(data))
                write_file(entry, json.dumps(desc, sort_keys=True).encode())
            for tag in tags:
                write_file(repo / "_tags" / tag, str(d).encode())
        return str(d), pm

    def _check_references(self, name: str, pm: ParsedManifest) -> None:
        repo = self.repo_dir(name)
        for ref in pm.blobs:
            d = Digest.parse(ref)
            if not (repo / "_layers" / d.algorithm / d.encoded).exists():
                raise ManifestBlobUnknown(f"manifest references unknown blob {ref}",
                                          detail={"digest": ref})
        for ref in pm.children:
            d = Digest.parse(ref)
            if not (repo / "_manifests" / d.algorithm / d.encoded).exists():
                raise ManifestBlobUnknown(f"index references unknown manifest {ref}",
                                          detail={"digest": ref})

    def manifest_delete(self, name: str, reference: str) -> None:
        """Delete a tag, or a manifest with every tag pointing at it and its referrer entry."""
        repo = self.repo_dir(name)
        if is_tag(reference):
            if not _unlink(repo / "_tags" / reference):
                raise ManifestUnknown(f"manifest unknown: {name}:{reference}",
                                      detail={"tag": reference})
            return
        m = self.manifest_get(name, reference)
        d = Digest.parse(m.digest)
        for tag, target in self.tag_targets(name):
            if target == m.digest:
                _unlink(repo / "_tags" / tag)
        with contextlib.suppress(RegistryError):
            subject = parse_manifest(m.data, m.media_type).subject
            if subject:
                s = Digest.parse(subject)
                _unlink(repo / "_referrers" / s.algorithm / s.encoded / f"{d.algorithm}-{d.encoded}")
        _unlink(repo / "_manifests" / d.algorithm / d.encoded)

    def tag_targets(self, name: str) -> list[tuple[str, str]]:
        out = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.repo_dir(name) / "_tags"):
                if not entry.name.startswith(".tmp-"):
                    with contextlib.suppress(OSError):
                        out.append((entry.name, Path(entry.path).read_text().strip()))
        return out

    def tags(self, name: str) -> list[str]:
        if not self.repo_dir(name).is_dir():
            raise NameUnknown(f"repository name not known to registry: {name}", detail={"name": name})
        return sorted(t for t, _ in self.tag_targets(name))

    def referrers(self, name: str, digest: str) -> list[dict[str, Any]]:
        """Descriptors of the manifests in `name` whose subject is `digest` (never NotFound)."""
        s = parse_digest(digest)
        check_name(name)
        base = self.repos_dir / name / "_referrers" / s.algorithm / s.encoded
        out = []
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.listdir(base)):
                alg, _, hexd = entry.partition("-")
                if not (self.repos_dir / name / "_manifests" / alg / hexd).exists():
                    continue
                with contextlib.suppress(OSError, ValueError):
                    out.append(json.loads((base / entry).read_bytes()))
        return out

    # -- listing --
    def repositories(self) -> list[str]:
        out = []
        for dirpath, dirnames, _ in os.walk(self.repos_dir):
            if any(m in dirnames for m in _MARKERS):
                out.append(os.path.relpath(dirpath, self.repos_dir))
            dirnames[:] = [n for n in dirnames if not n.startswith("_")]
        return sorted(out)

    def manifest_links(self, name: str) -> Iterator[Digest]:
        base = self.repos_dir / name / "_manifests"
        with contextlib.suppress(FileNotFoundError):
            for alg in os.listdir(base):
                for hexd in os.listdir(base / alg):
                    if not hexd.startswith(".tmp-"):
                        yield Digest(alg, hexd)


class UploadWriter:
    """Appends one request's bytes to a session; on failure the session is cut back to its start.

    `f` is the session's data file, open and locked (`RegistryStorage._open_session`); the lock is
    held across the request and released by close() or abort()."""

    def __init__(self, storage: RegistryStorage, uid: str, repo: str, f: Any) -> None:
        self._storage, self.uid, self.repo = storage, uid, repo
        self._f = f
        self._f.seek(0, os.SEEK_END)
        self.start = self.offset = self._f.tell()
        cached = storage._hashers.pop(uid, None)
        self._h = cached[1] if cached and cached[0] == self.start else None
        if self._h is None and self.start == 0:
            self._h = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self._f.write(chunk)
        if self._h is not None:
            self._h.update(chunk)
        self.offset += len(chunk)

    def close(self) -> UploadInfo:
        self._f.flush()
        if self._h is not None:
            self._storage._hashers[self.uid] = (self.offset, self._h)
        self._f.close()
        return UploadInfo(self.uid, self.repo, self.offset)

    def abort(self) -> None:
        """Drop this request's bytes: the session is as it was before."""
        with contextlib.suppress(OSError, ValueError):
            self._f.truncate(self.start)
            if self._h is not None and self.start == self.offset:
                self._storage._hashers[self.uid] = (self.start, self._h)
        with contextlib.suppress(OSError):
            self._f.close()
