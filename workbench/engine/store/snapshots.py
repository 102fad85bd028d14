"""Snapshots: image layers unpacked once, stacked as overlayfs lowerdirs.

Vocabulary (after containerd's snapshotter.go):

- A **layer snapshot** is the unpacked content of one image layer, keyed by the layer's
  **chain ID** (`sha256:...`, OCI image spec: the chain of diff_ids up to and including it). It
  holds only that layer's own changes, with whiteouts in overlayfs form (char device 0:0,
  `trusted.overlay.opaque=y`). Its **parent** is the snapshot of the layer below, or none.
- **Lowerdirs** of a chain ID are the `fs/` directories of it and all its ancestors, top first:
  exactly overlayfs's `lowerdir=` order.
- A **mount** stacks the lowerdirs of an image under a writable `upper` (the container's
  changes) with its overlay `work` dir. An image of no layers (`FROM scratch`) mounts one empty
  lowerdir.

Lifecycle of a layer: `create_layer(chain_id, parent, tar)` extracts into a private temporary
directory under the same root and renames it into place only when the whole tar applied; until
then `exists()` is False and nothing is visible, and a bad tar leaves nothing behind.
`create_layer` is idempotent: if the snapshot exists, it returns its size without reading the
tar. `commit_dir` does the same for a finished, unmounted overlay upper dir (already in this
on-disk form) by renaming it into place when it is on the snapshots' filesystem: no copy. Two
concurrent creates of one chain ID are serialised (a file lock per chain ID): the second waits,
then finds the snapshot done. Snapshots are immutable once created; `remove` refuses while another
snapshot names it as parent (remove children first) and is idempotent on a missing one.

Mount lifetime is the caller's: `unmount` what you `mount`, and do not `remove` a snapshot that
is still a lowerdir of a live mount (the snapshotter does not track mounts).

On disk (`<root>` is the snapshotter's own directory):

    <root>/snapshots/<hex>/fs/       the layer's files
    <root>/snapshots/<hex>/parent    parent chain ID, or empty
    <root>/snapshots/<hex>/link      short name of fs/ in <root>/l/
    <root>/snapshots/<hex>/size      bytes of regular files in the layer
    <root>/l/<short>  -> ../snapshots/<hex>/fs   short names, to keep mount data under 4096 bytes
    <root>/empty/                    the lowerdir of scratch mounts
    <root>/locks/<hex>               per-chain-ID lock files
    <root>/snapshots/.tmp-*          extractions and commits in progress (removed by `recover()`)

A layer can also be unpacked before its parent exists (`unpack`, into `.tmp-unpack-*`, staged with
its records and short link, all flushed with the data) and be renamed into place by
`commit_unpacked` once the parent is there: pulls unpack every layer while it downloads and commit
them in chain order, and that ordered step is one rename and one directory flush per layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from workbench.engine.store import overlay
from workbench.engine.store.compression import open_decompressed
from workbench.engine.store.durable import fsync_dir, syncfs, write_synced
from workbench.engine.store.layers import apply_layer
from workbench.errors import Conflict, Internal, InvalidArgument, NotFound
from workbench.oci.digest import Digest
from workbench.oci.image import chain_id as oci_chain_id

__all__ = ["MAX_LAYERS", "OverlaySnapshotter", "SnapshotInfo", "Snapshotter", "UnpackedLayer"]

MAX_LAYERS = 500  # overlayfs's own limit on lower layers (OVL_MAX_STACK)


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    chain_id: str
    parent: str | None
    size: int
    path: Path


@dataclass(frozen=True, slots=True)
class UnpackedLayer:
    """A layer tar extracted into a private directory of the store, not yet a snapshot.

    `Snapshotter.unpack(tar, chain_id=, parent=)` makes one, staged as that snapshot: its
    directory already holds what a snapshot's does, and its short link exists (dangling).
    `commit_unpacked` renames it into place; `discard()` removes whatever is left (always call
    it: after a commit there is nothing left, and the link stays).
    """

    fs: Path
    size: int
    chain_id: str
    parent: str | None
    link: Path | None       # its short name in l/ (None when the store made none yet)

    def discard(self) -> None:
        staged = self.fs.parent
        if staged.exists():               # never committed: the link points nowhere it ever will
            if self.link is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.link.unlink()
            shutil.rmtree(staged, ignore_errors=True)


class Snapshotter(Protocol):
    """Layer snapshots keyed by chain ID, and overlay mounts of them. See the module docstring.

    Every method is safe to call from several threads at once. Errors: `NotFound` for an
    unknown chain ID or parent, `InvalidArgument` for a malformed chain ID or a bad tar,
    `Conflict` for removing a parent, `Internal` for host failures (mount, disk).
    """

    def exists(self, chain_id: str) -> bool:
        """Whether the snapshot is complete and visible."""
        ...

    def create_layer(self, chain_id: str, parent_chain_id: str | None, tar_stream: BinaryIO,
                     *, diff_id: str | None = None) -> int:
        """Unpack a layer tar (plain or compressed) as `chain_id` on top of its parent; return its size.

        Idempotent; atomic (all or nothing); with `diff_id`, the uncompressed tar is verified
        against it and the chain ID against parent + diff_id.
        """
        ...

    async def create_layer_async(self, chain_id: str, parent_chain_id: str | None,
                                 tar_stream: BinaryIO, *, diff_id: str | None = None) -> int:
        """`create_layer` off the event loop."""
        ...

    def unpack(self, tar_stream: BinaryIO, *, chain_id: str, parent: str | None,
               diff_id: str | None = None) -> UnpackedLayer:
        """Extract a layer tar, staged as snapshot `chain_id` on `parent`, before that parent need
        exist (so the layers of a pull unpack in parallel); data and records are on disk when it
        returns if the store is durable. With `diff_id`, the uncompressed tar is verified against it.
        """
        ...

    def commit_unpacked(self, layer: UnpackedLayer) -> int:
        """Rename a staged layer into place (its parent must exist now); return the snapshot's
        size. An existing snapshot of the same chain ID is kept (call `layer.discard()` always)."""
        ...

    def commit_dir(self, chain_id: str, parent_chain_id: str | None, upper: Path,
                   *, size: int | None = None) -> int | None:
        """Rename an unmounted overlay upper dir into place as `chain_id`; return its size.

        Like `create_layer` (an existing snapshot is kept, `upper` left alone), but None, `upper`
        untouched, when it is on another filesystem. Once moved, `upper` is gone even on failure.
        `size`: the regular-file bytes in `upper`, when the caller has counted them already.
        """
        ...

    def lowerdirs(self, chain_id: str) -> list[Path]:
        """The `fs/` dirs of the snapshot and its ancestors, top first."""
        ...

    def mount(self, target: Path, upper: Path | None, work: Path | None, chain_id: str | None) -> None:
        """Mount overlayfs at `target`: lowerdirs of `chain_id` (or an empty dir) under `upper`.

        With `upper`/`work` None the mount is read-only (a view of the image).
        """
        ...

    def unmount(self, target: Path) -> None:
        """Detach the mount at `target` (lazily); no error if nothing is mounted there."""
        ...

    def remove(self, chain_id: str, *, trash: list[Path] | None = None) -> None:
        """Delete a snapshot; `Conflict` while another snapshot has it as parent. With `trash`, it
        is only renamed aside and the path appended there, for the caller to delete."""
        ...

    def usage(self, chain_id: str) -> tuple[int, int]:
        """(bytes on disk, inodes) of the snapshot's own files."""
        ...

    def list(self) -> list[SnapshotInfo]:
        """Every complete snapshot, in no particular order."""
        ...


def _hex(chain_id: str) -> str:
    d = Digest.parse(chain_id)
    if d.algorithm != "sha256":
        raise InvalidArgument(f"unsupported chain ID algorithm: {chain_id}")
    return d.encoded


class OverlaySnapshotter:
    """The overlayfs `Snapshotter`. `root` must be on a filesystem overlayfs accepts as upper/lower.

    With `durable` (the default) a new snapshot is flushed with syncfs(2) before it is renamed
    into place, so a crash never leaves a visible snapshot with missing file data.
    """

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.durable = durable
        self._snaps = self.root / "snapshots"
        self._links = self.root / "l"
        self._locks = self.root / "locks"
        self._empty = self.root / "empty"
        self._ready = False

    # -- layout ----------------------------------------------------------------------------
    def _setup(self) -> None:
        if not self._ready:
            for d in (self._snaps, self._links, self._locks, self._empty):
                d.mkdir(parents=True, exist_ok=True)
            self._ready = True

    def recover(self) -> None:
        """Remove extractions a crash left behind. Call once at daemon start, before any create."""
        self._setup()
        for p in self._snaps.glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
        # a short link no snapshot names: dangling (a staged layer's, or a removal cut short), or
        # a second name for a snapshot that two pulls staged at once, left when the loser crashed
        named = set()
        for snap in self._snaps.iterdir():
            with contextlib.suppress(OSError):
                named.add((snap / "link").read_text().strip())
        for link in self._links.iterdir():
            if link.is_symlink() and link.name not in named:
                link.unlink()

    def _dir(self, chain_id: str) -> Path:
        return self._snaps / _hex(chain_id)

    @contextlib.contextmanager
    def _lock(self, chain_id: str, *, shared: bool = False) -> Iterator[None]:
        self._setup()
        fd = os.open(self._locks / _hex(chain_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _parent_of(self, snap: Path) -> str | None:
        try:
            text = (snap / "parent").read_text().strip()
        except FileNotFoundError:
            raise NotFound(f"snapshot {snap.name} is incomplete (no parent record)") from None
        return text or None

    # -- queries ---------------------------------------------------------------------------
    def exists(self, chain_id: str) -> bool:
        return (self._dir(chain_id) / "fs").is_dir()

    def _info(self, chain_id: str) -> SnapshotInfo:
        snap = self._dir(chain_id)
        if not (snap / "fs").is_dir():
            raise NotFound(f"snapshot {chain_id} not found")
        size = int((snap / "size").read_text() or 0)
        return SnapshotInfo(chain_id, self._parent_of(snap), size, snap / "fs")

    def lowerdirs(self, chain_id: str) -> list[Path]:
        out: list[Path] = []
        cur: str | None = chain_id
        while cur is not None:
            info = self._info(cur)
            out.append(info.path)
            if len(out) > MAX_LAYERS:
                raise InvalidArgument(f"{chain_id}: more than {MAX_LAYERS} layers (or a parent cycle)")
            cur = info.parent
        return out

    def list(self) -> list[SnapshotInfo]:
        self._setup()
        out = []
        for p in self._snaps.iterdir():
            if not p.name.startswith(".") and (p / "fs").is_dir():
                with contextlib.suppress(NotFound, FileNotFoundError):
                    out.append(self._info("sha256:" + p.name))
        return out

    def usage(self, chain_id: str) -> tuple[int, int]:
        root = self._info(chain_id).path
        top = root.lstat()
        seen: set[int] = {top.st_ino}  # like du: the fs/ directory itself counts
        size = top.st_blocks * 512
        stack = [str(root)]
        while stack:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    st = e.stat(follow_symlinks=False)
                    if st.st_ino in seen:
                        continue
                    seen.add(st.st_ino)
                    size += st.st_blocks * 512
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(e.path)
        return size, len(seen)

    # -- create / remove -------------------------------------------------------------------
    def create_layer(self, chain_id: str, parent_chain_id: str | None, tar_stream: BinaryIO,
                     *, diff_id: str | None = None) -> int:
        if diff_id is not None:
            _check_chain(chain_id, parent_chain_id, diff_id)
        with self._lock(chain_id):
            if self.exists(chain_id):
                return self._info(chain_id).size
            layer = self.unpack(tar_stream, chain_id=chain_id, parent=parent_chain_id, diff_id=diff_id)
            try:
                return self._commit_staged(layer)
            finally:
                layer.discard()

    def unpack(self, tar_stream: BinaryIO, *, chain_id: str, parent: str | None,
               diff_id: str | None = None) -> UnpackedLayer:
        self._setup()
        tmp = self._snaps / f".tmp-unpack-{secrets.token_hex(6)}"
        link = None
        try:
            (tmp / "fs").mkdir(parents=True)
            (tmp / "fs").chmod(0o755)
            # hash only when asked to check: callers that verify the diff ID themselves
            # (image_io's one-pass ingest) should not pay for a second sha256 of every byte
            source = open_decompressed(tar_stream)
            reader = _HashingReader(source) if diff_id is not None else None
            stats = apply_layer(reader if reader is not None else source, tmp / "fs", mode="overlay")
            if reader is not None and reader.digest != diff_id:
                raise InvalidArgument(f"layer content does not match its diff_id: expected {diff_id}, "
                                      f"got {reader.digest}")
            link = self._write_records(tmp, chain_id, parent, stats.bytes)
            if self.durable:
                syncfs(tmp)   # one flush for the files, the records and the link
            return UnpackedLayer(tmp / "fs", stats.bytes, chain_id, parent, link)
        except BaseException:
            UnpackedLayer(tmp / "fs", 0, chain_id, parent, link).discard()
            raise

    def commit_unpacked(self, layer: UnpackedLayer) -> int:
        with self._lock(layer.chain_id):
            if self.exists(layer.chain_id):
                return self._info(layer.chain_id).size
            return self._commit_staged(layer)

    def _commit_staged(self, layer: UnpackedLayer) -> int:
        with self._parent_held(layer.parent):
            os.rename(layer.fs.parent, self._dir(layer.chain_id))
            fsync_dir(self._snaps)
        return layer.size

    def commit_dir(self, chain_id: str, parent_chain_id: str | None, upper: Path,
                   *, size: int | None = None) -> int | None:
        with self._lock(chain_id):
            if self.exists(chain_id):
                return self._info(chain_id).size
            with self._parent_held(parent_chain_id):
                return self._commit_locked(chain_id, parent_chain_id, upper, size)

    @contextlib.contextmanager
    def _parent_held(self, parent: str | None) -> Iterator[None]:
        """Hold `parent` (shared: others may stack on it too, nobody removes it) once it exists."""
        if parent is None:
            yield
            return
        with self._lock(parent, shared=True):
            if not self.exists(parent):
                raise NotFound(f"parent snapshot {parent} not found")
            yield

    def _write_records(self, snap: Path, chain_id: str, parent: str | None, size: int) -> Path:
        """A snapshot dir's records (parent, link, size) and its short link; unflushed. Returns the link."""
        short = self._make_link(chain_id)
        try:
            for name, text in (("parent", parent or ""), ("link", short), ("size", str(size))):
                write_synced(snap / name, text, sync=False)
        except BaseException:
            (self._links / short).unlink(missing_ok=True)
            raise
        return self._links / short

    def _commit_locked(self, chain_id: str, parent: str | None, upper: Path, size: int | None) -> int | None:
        tmp = self._snaps / f".tmp-{_hex(chain_id)[:12]}-{secrets.token_hex(4)}"
        link = None
        tmp.mkdir()  # rename(2) into it: atomic, and EXDEV if `upper` is elsewhere
        try:
            try:
                os.rename(upper, tmp / "fs")
            except OSError as err:
                if err.errno == errno.EXDEV:  # another filesystem (or mount): extract the tar instead
                    return None
                if err.errno == errno.ENOENT:
                    raise NotFound(f"upper dir {upper} not found") from err
                raise Internal(f"moving {upper} into the snapshot store: {err.strerror}") from err
            if size is None:
                size = _file_bytes(tmp / "fs")
            link = self._write_records(tmp, chain_id, parent, size)
            if self.durable:
                syncfs(tmp)
            os.rename(tmp, self._dir(chain_id))
            fsync_dir(self._snaps)
            return size
        except BaseException:
            if link is not None:
                with contextlib.suppress(OSError):
                    link.unlink()
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone after the rename when all went well

    def _make_link(self, chain_id: str) -> str:
        target = f"../snapshots/{_hex(chain_id)}/fs"
        for _ in range(100):
            short = secrets.token_hex(3)
            try:
                os.symlink(target, self._links / short)
                return short
            except FileExistsError:
                continue
        raise Internal("could not allocate a short snapshot link name")

    async def create_layer_async(self, chain_id: str, parent_chain_id: str | None,
                                 tar_stream: BinaryIO, *, diff_id: str | None = None) -> int:
        return await asyncio.to_thread(self.create_layer, chain_id, parent_chain_id, tar_stream,
                                       diff_id=diff_id)

    def remove(self, chain_id: str, *, trash: list[Path] | None = None) -> None:
        """See `Snapshotter.remove`; with `trash`, the snapshot is renamed aside and its path
        appended there for the caller to delete (a collector does that after its critical section)."""
        snap = self._dir(chain_id)
        with self._lock(chain_id):
            if not snap.exists():
                return
            for other in self.list():
                if other.parent == chain_id:
                    raise Conflict(f"snapshot {chain_id} is the parent of {other.chain_id}")
            with contextlib.suppress(FileNotFoundError):
                (self._links / (snap / "link").read_text().strip()).unlink()
            aside = self._snaps / f".tmp-rm-{snap.name[:12]}-{secrets.token_hex(4)}"
            os.rename(snap, aside)
            if trash is not None:
                trash.append(aside)
            else:
                shutil.rmtree(aside, ignore_errors=True)

    # -- mounts ----------------------------------------------------------------------------
    def mount(self, target: Path, upper: Path | None, work: Path | None, chain_id: str | None) -> None:
        self._setup()
        lowers = self.lowerdirs(chain_id) if chain_id else []
        if upper is None and len(lowers) < 2:
            lowers.append(self._empty)  # overlayfs wants two lowers when there is no upper
        elif not lowers:
            lowers = [self._empty]
        if len(lowers) > MAX_LAYERS:
            raise InvalidArgument(f"cannot mount more than {MAX_LAYERS} layers")
        overlay.mount(target, lowers, upper, work, short_names=(self._links, self._short_name))

    def _short_name(self, fs: Path) -> str:
        if fs == self._empty:
            return "../empty"
        return (fs.parent / "link").read_text().strip()

    def unmount(self, target: Path) -> None:
        overlay.unmount(target)


class _HashingReader:
    """Reads through, hashing what passes, so the tar's diff_id is known after one pass."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw, self._h = raw, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._h.update(data)
        return data

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()


def _check_chain(chain_id: str, parent: str | None, diff_id: str) -> None:
    # ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n)): the spec's formula with the parent's
    # chain ID standing in for the first n-1 diff_ids.
    want = oci_chain_id([parent, diff_id]) if parent else diff_id
    if chain_id != want:
        raise InvalidArgument(f"chain ID {chain_id} does not follow from parent {parent} and diff_id {diff_id}")


def _file_bytes(root: Path) -> int:
    """Bytes of the regular files under `root`, hard links counted once (as an extraction does)."""
    seen: dict[int, int] = {}
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(e.path)
                elif stat.S_ISREG(st.st_mode):
                    seen[st.st_ino] = st.st_size
    return sum(seen.values())
