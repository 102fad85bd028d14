"""Content store: OCI blobs in an OCI image layout, content-addressed and immutable.

Layout under `<root>/content`: `oci-layout`, `blobs/sha256/<hex>` (read-only files) and
`ingest/` for writes in progress. Contract:

- `writer()` hands out an `Ingest`; bytes are hashed as they are written; `commit(expected)`
  verifies digest (and size when given), fsyncs and renames into place. A failed or abandoned
  ingest leaves nothing at a final path (`abort()` / context exit removes the temp file).
- Committing a blob that already exists is not an error: the new copy is dropped (idempotent).
- `open(digest)` returns a reader that verifies the digest again at EOF.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from workbench.engine.store.durable import Writeback, atomic_write, commit_file, fsync_dir
from workbench.errors import InvalidArgument, NotFound
from workbench.oci.digest import Digest, DigestMismatch, VerifyingReader


_BUFFER = 64 << 10
"""Small writes are gathered up to this; bigger ones (a pull's reads) go to the file as they are."""


class Ingest:
    """One blob being written. Use as a context manager; call commit() to keep it."""

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        fd, tmp = tempfile.mkstemp(dir=store.ingest_dir, prefix="blob-")
        self.path = Path(tmp)
        self._f = os.fdopen(fd, "wb", buffering=_BUFFER)
        self._h = hashlib.sha256()
        self._writeback = Writeback(fd)
        self.size = 0
        self._done = False

    def write(self, data: bytes) -> int:
        self._f.write(data)
        self._h.update(data)
        self.size += len(data)
        self._writeback.wrote(len(data))
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()

    def commit(self, expected: str | None = None, size: int | None = None) -> str:
        digest = self.digest
        if expected is not None and Digest.parse(expected) != Digest.parse(digest):
            self.abort()
            raise DigestMismatch(f"digest mismatch: expected {expected}, got {digest}")
        if size is not None and size != self.size:
            self.abort()
            raise DigestMismatch(f"size mismatch for {digest}: expected {size}, got {self.size}")
        self._f.close()
        final = self._store.path(digest)
        if final.exists():
            self.path.unlink(missing_ok=True)
        else:
            commit_file(self.path, final)
        self._done = True
        return digest

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._f.close()
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            atomic_write(layout, b'{"imageLayoutVersion":"1.0.0"}')
        for stale in self.ingest_dir.iterdir():  # abandoned ingests from a crash
            stale.unlink(missing_ok=True)

    def path(self, digest: str) -> Path:
        d = Digest.parse(digest)
        if d.algorithm != "sha256":
            raise InvalidArgument(f"unsupported digest algorithm: {d.algorithm}")
        return self.blobs / d.encoded

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def writer(self) -> Ingest:
        return Ingest(self)

    def put(self, data: bytes, expected: str | None = None) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected is not None and Digest.parse(expected) != Digest.parse(digest):
            raise DigestMismatch(f"digest mismatch: expected {expected}, got {digest}")
        final = self.path(digest)
        if not final.exists():
            atomic_write(final, data, mode=0o444)
        return digest

    def open(self, digest: str, *, verify: bool = True) -> BinaryIO:
        try:
            f = open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None
        if not verify:
            return f
        return _VerifiedFile(f, digest)

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            data = f.read()
        return data

    def delete(self, digest: str) -> bool:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        fsync_dir(self.blobs)
        return True

    def list(self) -> Iterator[str]:
        for p in self.blobs.iterdir():
            if not p.name.startswith("."):
                yield "sha256:" + p.name

    def usage(self) -> int:
        return sum(p.stat().st_size for p in self.blobs.iterdir())


class _VerifiedFile(VerifyingReader):
    def __init__(self, f: BinaryIO, digest: str) -> None:
        super().__init__(f, digest)
        self._file = f

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _VerifiedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
