"""Committing build steps: an overlay upper dir → one layer, and each step's image recorded.

`commit_layer` walks the upper dir once (`store.layers.diff_to_tar`: whiteouts and opaque
directories become OCI whiteouts, entries sorted, uid/gid numeric, mtimes clamped to
SOURCE_DATE_EPOCH when given) to hash it (the diff_id) while another walk, concurrently, gzips
the same tar into the blob (fixed header; hashed by the content store as it is written). The upper
dir, already in a snapshot's on-disk form, then becomes the layer's snapshot: trimmed to what
extracting that tar would give (`_as_extracted`) and renamed into place (`commit_dir`), no copy;
only when it is on another filesystem is the tar streamed into the snapshot instead. An upper dir
with no changes makes no layer: the step's history entry is then `empty_layer`, as moby's
NewChildImage does.

`BuiltImage` is an image as the executor grows it; `child` makes the next step's config document
(config, rootfs, history) and `register` records it (blobs, then one metadata transaction).
"""

from __future__ import annotations

import copy
import hashlib
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.engine.services.image_io import ImageIO, LayerInfo
from workbench.engine.store.compression import GzipWriter
from workbench.engine.store.layers import OPAQUE_XATTR, diff_to_tar
from workbench.errors import NotFound
from workbench.oci import mediatypes as mt
from workbench.oci.image import chain_id, empty_config

__all__ = ["BuiltImage", "commit_layer", "created_time"]

JSON = dict[str, Any]
_CHUNK = 1 << 20


def created_time(epoch: int | None) -> str:
    """RFC3339 `created` for a new image: SOURCE_DATE_EPOCH when given, else now (nanoseconds)."""
    if epoch is not None:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


class _Hasher:
    """A write-only sink that hashes what it gets (the tar's diff_id) and counts it."""

    def __init__(self) -> None:
        self.h, self.size = hashlib.sha256(), 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.h.update(data)
        self.size += len(data)
        return len(data)


def _as_extracted(upper: Path, epoch: int | None) -> int:
    """Make `upper` what extracting its `diff_to_tar` would give; return its regular-file bytes.

    The tar has no root entry, no sockets, no `trusted.overlay.*` xattrs but `opaque=y` on
    directories, and mtimes in whole seconds (clamped to `epoch`), which extraction also sets as
    atimes. Whiteouts (char 0:0) stay as the kernel made them.
    """
    os.chown(upper, 0, 0)
    os.chmod(upper, 0o755)
    for name in os.listxattr(upper):
        os.removexattr(upper, name)
    size, inodes, dirs = 0, set(), []
    stack = [os.fspath(upper)]
    while stack:
        with os.scandir(stack.pop()) as it:
            entries = list(it)
        for e in entries:
            st = e.stat(follow_symlinks=False)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                continue
            if stat.S_ISSOCK(st.st_mode):
                os.unlink(e.path)
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            for name in os.listxattr(e.path, follow_symlinks=False):
                if name.startswith("trusted.overlay.") and not (
                        is_dir and name == OPAQUE_XATTR
                        and os.getxattr(e.path, name, follow_symlinks=False) == b"y"):
                    os.removexattr(e.path, name, follow_symlinks=False)
            secs = st.st_mtime_ns // 1_000_000_000
            ns = (secs if epoch is None else min(secs, epoch)) * 1_000_000_000
            if is_dir:
                stack.append(e.path)
                dirs.append((e.path, ns))  # after the walk: unlinking a socket would bump it
                continue
            if stat.S_ISREG(st.st_mode) and st.st_ino not in inodes:
                inodes.add(st.st_ino)
                size += st.st_size
            if (st.st_atime_ns, st.st_mtime_ns) != (ns, ns):
                os.utime(e.path, ns=(ns, ns), follow_symlinks=False)
    for path, ns in reversed(dirs):
        os.utime(path, ns=(ns, ns), follow_symlinks=False)
    return size


def _snapshot(images: Any, upper: Path, chain: str, parent: str | None, epoch: int | None) -> None:
    """The layer's snapshot: `upper` itself, moved into place, else extracted from its tar.

    Call only once the tar has been produced; `upper` is gone afterwards unless the snapshot
    already existed (or the snapshotter cannot take it, when the tar is extracted instead).
    """
    snapshots = images.snapshots
    if snapshots.exists(chain):
        return
    commit_dir = getattr(snapshots, "commit_dir", None)
    if commit_dir is not None:
        size = _as_extracted(upper, epoch)  # the same tar as before: only what it leaves out changes
        if commit_dir(chain, parent, upper, size=size) is not None:
            return
    _unpack(images, upper, chain, parent, epoch)


def _unpack(images: Any, upper: Path, chain: str, parent: str | None, epoch: int | None) -> None:
    """The layer's snapshot, extracted from another walk of `upper` streamed through a pipe."""
    if images.snapshots.exists(chain):
        return
    r, w = os.pipe()
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            with open(w, "wb", buffering=_CHUNK) as out:
                diff_to_tar(upper, out, epoch=epoch)
        except BrokenPipeError:
            pass  # the extraction stopped early and reports why
        except BaseException as err:
            failure.append(err)

    feeder = threading.Thread(target=feed, name="build-layer-tar")
    feeder.start()
    try:
        with open(r, "rb", buffering=_CHUNK) as src:
            images.snapshots.create_layer(chain, parent, src)
    finally:
        feeder.join()
    if failure:
        raise failure[0]


def commit_layer(image_io: ImageIO, upper: Path, parent_chain: str | None,
                 *, epoch: int | None) -> LayerInfo | None:
    """Store `upper` as a layer on `parent_chain` (blob, layers row, snapshot); None if empty.

    Two walks of the upper dir stream the same tar (a pure function of the unchanging,
    page-cached upper dir): one gzips it into the blob, in a thread of its own; one hashes it
    (the diff_id, hence the chain ID). Then, both done, the upper dir becomes the snapshot.
    `upper` may be gone when this returns.
    """
    images = image_io.images
    blob = images.content.writer()
    compressed: list[Any] = []

    def compress() -> None:
        try:
            gz = GzipWriter(blob)
            diff_to_tar(upper, gz, epoch=epoch)
            gz.close()
            compressed.append(blob.size)
        except BaseException as err:  # re-raised in the caller's thread
            compressed.append(err)

    worker = threading.Thread(target=compress, name="build-compress")
    worker.start()
    try:
        tar = _Hasher()
        entries = diff_to_tar(upper, tar, epoch=epoch)
        diff_id = "sha256:" + tar.h.hexdigest()
        chain = chain_id([parent_chain, diff_id]) if parent_chain else diff_id
    finally:
        worker.join()
    with blob:
        if isinstance(compressed[0], BaseException):
            raise compressed[0]
        if not entries:
            return None
        _snapshot(images, upper, chain, parent_chain, epoch)  # the tar is done with `upper`
        size, digest = compressed[0], blob.commit()
    layer = LayerInfo(diff_id, digest, mt.OCI_LAYER_GZIP, size, tar.size)
    with images.md.transaction() as tx:
        tx.execute("INSERT OR REPLACE INTO layers(diff_id, blob_digest, media_type, size, uncompressed_size) "
                   "VALUES (?,?,?,?,?)", (layer.diff_id, layer.blob_digest, layer.media_type, layer.size,
                                          layer.uncompressed_size))
    return layer


@dataclass
class BuiltImage:
    """An image as the build grows it: `id` ("" for scratch), its config document and layers."""

    id: str
    doc: JSON
    layers: list[LayerInfo]

    @classmethod
    def scratch(cls) -> BuiltImage:
        doc = empty_config("")
        del doc["created"]
        return cls("", doc, [])

    @classmethod
    def load(cls, image_io: ImageIO, ref: str) -> BuiltImage:
        """An image in the store, its layers unpacked.

        Raises:
            NotFound: no such image, or a layer whose blob is missing.
        """
        images = image_io.images
        rec = images.get(ref)
        doc = copy.deepcopy(images.config(rec))
        layers = []
        for diff_id in images.diff_ids(rec):
            info = image_io.layers.known(diff_id)
            if info is None:
                raise NotFound(f"layer {diff_id} of image {rec.id} is missing from the content store")
            layers.append(info)
        if layers:
            image_io.layers.unpack([li.diff_id for li in layers])
        return cls(rec.id, doc, layers)

    @property
    def config(self) -> JSON | None:
        return self.doc.get("config") if self.id or self.layers else None

    @property
    def chain(self) -> str | None:
        return chain_id([li.diff_id for li in self.layers]) or None

    def child(self, *, config: JSON, author: str, created: str, created_by: str,
              layer: LayerInfo | None, comment: str = "") -> JSON:
        """The config document of the image one step on."""
        doc = copy.deepcopy(self.doc)
        doc["config"] = copy.deepcopy(config)
        doc["created"] = created
        if author:
            doc["author"] = author
        history: JSON = {"created": created, "created_by": created_by}
        if comment:
            history["comment"] = comment
        if layer is None:
            history["empty_layer"] = True
        else:
            rootfs = doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), layer.diff_id]
        doc["history"] = [*(doc.get("history") or []), history]
        for key in ("container", "container_config", "docker_version"):
            doc.pop(key, None)
        return doc

    def register(self, image_io: ImageIO, doc: JSON, layer: LayerInfo | None) -> BuiltImage:
        layers = [*self.layers, layer] if layer is not None else list(self.layers)
        rec = image_io.register(doc, layers, parent=self.id)
        return BuiltImage(rec.id, doc, layers)
