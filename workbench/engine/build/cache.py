"""The build cache: step cache key → the image that step produced, in the `build_cache` table.

A key (`plan.cache_key`) covers the parent image ID, the instruction after substitution, the build
args it uses and, for COPY/ADD, the content hash of its sources; a hit is only a hit while the image
it names still exists (removing an image and its untagged parents drops its cache entries lazily).
Rows live in SQLite with the rest of the metadata, so the cache survives daemon restarts.
"""

from __future__ import annotations

import time

from workbench.engine.services.images import ImageService
from workbench.engine.store.metadata import Metadata

__all__ = ["BuildCache"]


class BuildCache:
    def __init__(self, md: Metadata, images: ImageService) -> None:
        self.md = md
        self.images = images

    def lookup(self, key: str) -> str | None:
        """The image ID cached for `key`, if that image still exists."""
        row = self.md.one("SELECT image_id FROM build_cache WHERE key=?", (key,))
        if row is None:
            return None
        image_id = row["image_id"]
        rec = self.images.find(image_id)
        if rec is None or not self.images.content.exists(rec.config_digest):
            with self.md.transaction() as tx:
                tx.execute("DELETE FROM build_cache WHERE key=?", (key,))
            return None
        return str(rec.id)

    def store(self, key: str, image_id: str) -> None:
        with self.md.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO build_cache(key, image_id, created) VALUES (?,?,?)",
                       (key, image_id, time.time()))

    def prune(self) -> list[str]:
        """Forget every entry; return the keys removed (the images stay until removed)."""
        keys = [r["key"] for r in self.md.query("SELECT key FROM build_cache")]
        with self.md.transaction() as tx:
            tx.execute("DELETE FROM build_cache")
        return keys

    def count(self) -> int:
        row = self.md.one("SELECT count(*) AS n FROM build_cache")
        return int(row["n"]) if row else 0
