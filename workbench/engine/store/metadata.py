"""Metadata in SQLite (WAL): one transaction per state change.

Schema (version = len(MIGRATIONS)):

  images(id PK 'sha256:<config digest>', manifest_digest, manifest_media_type, config_digest,
         created INT unix, size INT (uncompressed), parent, added REAL)
  tags(name PK 'repo:tag' in familiar form, repo, tag, image_id → images)
  repo_digests(name PK 'repo@sha256:..', repo, image_id → images)
  layers(diff_id PK, blob_digest, media_type, size INT (compressed), uncompressed_size INT)
  containers(id PK, name UNIQUE, image_id, doc TEXT JSON (Config, HostConfig, State, ...), created REAL)
  networks(id PK, name UNIQUE, doc TEXT JSON)
  endpoints(network_id, container_id, doc TEXT JSON, PK(network_id, container_id))
  volumes(name PK, doc TEXT JSON)
  build_cache(key PK, image_id, created REAL)
  kv(key PK, value TEXT)       small engine facts (engine id, ...)

`transaction()` is the only way to write: `with md.transaction() as tx: tx.execute(...)`.
Rows are read with `md.query(sql, args)` / `md.one(...)` returning sqlite3.Row.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MIGRATIONS: list[str] = [
    """
    CREATE TABLE images (id TEXT PRIMARY KEY, manifest_digest TEXT, manifest_media_type TEXT,
        config_digest TEXT NOT NULL, created INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0,
        parent TEXT NOT NULL DEFAULT '', added REAL NOT NULL);
    CREATE TABLE tags (name TEXT PRIMARY KEY, repo TEXT NOT NULL, tag TEXT NOT NULL,
        image_id TEXT NOT NULL REFERENCES images(id));
    CREATE INDEX tags_image ON tags(image_id);
    CREATE TABLE repo_digests (name TEXT PRIMARY KEY, repo TEXT NOT NULL,
        image_id TEXT NOT NULL REFERENCES images(id));
    CREATE INDEX repo_digests_image ON repo_digests(image_id);
    CREATE TABLE layers (diff_id TEXT PRIMARY KEY, blob_digest TEXT NOT NULL, media_type TEXT NOT NULL,
        size INTEGER NOT NULL, uncompressed_size INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE containers (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, image_id TEXT NOT NULL,
        doc TEXT NOT NULL, created REAL NOT NULL);
    CREATE INDEX containers_image ON containers(image_id);
    CREATE TABLE networks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
    CREATE TABLE endpoints (network_id TEXT NOT NULL, container_id TEXT NOT NULL, doc TEXT NOT NULL,
        PRIMARY KEY (network_id, container_id));
    CREATE TABLE volumes (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
    CREATE TABLE build_cache (key TEXT PRIMARY KEY, image_id TEXT NOT NULL, created REAL NOT NULL);
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]


class Metadata:
    """A single SQLite connection shared by the daemon's services (calls are short; a lock serialises)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                     timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction() as tx:
                for stmt in filter(str.strip, script.split(";")):
                    tx.execute(stmt)
                tx.execute(f"PRAGMA user_version={i}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    def get_kv(self, key: str) -> str | None:
        row = self.one("SELECT value FROM kv WHERE key=?", (key,))
        return row["value"] if row else None

    def set_kv(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
