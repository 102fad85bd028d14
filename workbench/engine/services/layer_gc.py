"""Layers no image uses any more: their snapshots, `layers` rows and blobs go when the images do.

dockerd frees an image's layers with its last image (`docker rmi` lists them as `Deleted:
sha256:<chain ID>`), and so does the engine. Mark: every image's chains (each prefix of its diff
IDs), its config and manifest blobs, and the blobs of its layers. Sweep: snapshots (children
first), `layers` rows and content blobs outside the mark.

Work that makes layers before an image refers to them (a pull, a load or import, a build step's
commit, a container commit) runs inside `busy()`. A collection asked for meanwhile is put off
until the last such work ends (its layers are referenced by then, or abandoned and swept with the
rest), and no such work starts while a sweep runs. A sweep that cannot read an image's config
removes nothing: it cannot tell what that image needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from workbench.errors import WorkbenchError
from workbench.oci.image import chain_ids

__all__ = ["LayerCollector", "Swept"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Swept:
    """What a collection removed; `deferred` when it waits for busy work to end."""

    chains: tuple[str, ...] = ()
    blobs: tuple[str, ...] = ()
    freed: int = 0           # bytes: the snapshots' files and the blobs
    deferred: bool = False


class LayerCollector:
    """Collects unused layers of one `ImageService` (see the module docstring)."""

    def __init__(self, images: Any) -> None:
        self.images = images
        self._cond = threading.Condition()
        self._busy = 0
        self._sweeping = False
        self._pending = False

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Hold off collections while layers are made that no image refers to yet."""
        self._enter()
        try:
            yield
        finally:
            self._leave()

    @contextlib.asynccontextmanager
    async def busy_async(self) -> AsyncIterator[None]:
        """`busy()` for coroutines: waiting out a running sweep happens off the event loop. A
        caller cancelled while it waits still leaves, once the wait it started has entered."""
        entering = asyncio.get_running_loop().run_in_executor(None, self._enter)
        try:
            await asyncio.shield(entering)
        except asyncio.CancelledError:
            entering.add_done_callback(lambda f: None if f.cancelled() or f.exception() else self._leave())
            raise
        try:
            yield
        finally:
            self._leave()

    def _enter(self) -> None:
        with self._cond:
            while self._sweeping:
                self._cond.wait()
            self._busy += 1

    def _leave(self) -> None:
        with self._cond:
            self._busy -= 1
            due = self._busy == 0 and self._pending
        if due:   # off this thread: it may be the event loop's
            threading.Thread(target=self.collect, name="layer-gc", daemon=True).start()

    def collect(self) -> Swept:
        """Sweep now, or (when work is busy) as soon as the last of it ends."""
        with self._cond:
            while self._sweeping:           # one sweep at a time (two rmis at once)
                self._cond.wait()
            if self._busy:
                self._pending = True
                return Swept(deferred=True)
            self._sweeping, self._pending = True, False
        trash: list[Path] = []
        try:
            return self._sweep(trash)
        except (OSError, WorkbenchError) as err:     # what is left is swept by the next collection
            log.warning("layer collection stopped: %s", err)
            return Swept()
        finally:
            with self._cond:
                self._sweeping = False
                self._cond.notify_all()
            for path in trash:            # renamed aside under the gate; deleting them can take a while
                shutil.rmtree(path, ignore_errors=True)

    # -- mark and sweep --------------------------------------------------------------------------
    def _mark(self) -> tuple[set[str], set[str], set[str]] | None:
        """(live chain IDs, live diff IDs, live blobs), or None when an image cannot be read."""
        images = self.images
        chains: set[str] = set()
        diffs: set[str] = set()
        blobs: set[str] = set()
        for rec in images.all():
            try:
                diff_ids = images.diff_ids(rec)
            except (OSError, ValueError, WorkbenchError) as err:
                log.warning("layer collection skipped: image %s unreadable: %s", rec.id, err)
                return None
            chains.update(chain_ids(diff_ids))
            diffs.update(diff_ids)
            blobs.add(rec.config_digest)
            if rec.manifest_digest:
                blobs.add(rec.manifest_digest)
                blobs.update(self._manifest_layers(rec.manifest_digest))
        return chains, diffs, blobs

    def _manifest_layers(self, digest: str) -> list[str]:
        """The layer blobs an image's stored manifest names. They are what save and push send, and
        need not be the blob the `layers` table holds now for the same diff ID: the same layer may
        have come in again compressed another way."""
        try:
            doc = json.loads(self.images.content.read(digest))
        except (OSError, ValueError, WorkbenchError):
            return []
        layers = doc.get("layers") if isinstance(doc, dict) else None
        return [str(d["digest"]) for d in layers or [] if isinstance(d, dict) and d.get("digest")]

    def _sweep(self, trash: list[Path]) -> Swept:
        marked = self._mark()
        if marked is None:
            return Swept()
        chains, diffs, blobs = marked
        images = self.images
        rows = images.md.query("SELECT diff_id, blob_digest, uncompressed_size FROM layers")
        blobs |= {r["blob_digest"] for r in rows if r["diff_id"] in diffs}
        dead_rows = [r["diff_id"] for r in rows if r["diff_id"] not in diffs]
        removed_chains, freed = self._remove_snapshots(chains, trash)
        if dead_rows:
            with images.md.transaction() as tx:
                tx.executemany("DELETE FROM layers WHERE diff_id=?", [(d,) for d in dead_rows])
        removed_blobs = []
        for digest in list(images.content.list()):
            if digest in blobs:
                continue
            with contextlib.suppress(OSError, WorkbenchError):
                size = images.content.size(digest)
                if images.content.delete(digest):
                    removed_blobs.append(digest)
                    freed += size
        return Swept(tuple(removed_chains), tuple(removed_blobs), freed)

    def _remove_snapshots(self, live: set[str], trash: list[Path]) -> tuple[list[str], int]:
        """Remove every snapshot outside `live`, children before their parents; (chains, bytes)."""
        snapshots = self.images.snapshots
        infos = {s.chain_id: s for s in snapshots.list()}

        def depth(chain: str) -> int:
            n = 0
            while chain in infos and infos[chain].parent:
                chain, n = infos[chain].parent, n + 1
            return n

        removed, freed = [], 0
        for chain in sorted((c for c in infos if c not in live), key=depth, reverse=True):
            try:
                snapshots.remove(chain, trash=trash)
            except WorkbenchError as err:   # cannot be a live one's parent: live chains are prefix-closed
                log.warning("snapshot %s kept: %s", chain, err)
                continue
            removed.append(chain)
            freed += infos[chain].size
        return removed, freed
