"""`client.images`: list, inspect, history, tag, remove, prune, import, load, save, pull, push."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from workbench.client import _wire
from workbench.client._config import AuthConfig
from workbench.client._records import DeleteItem, HistoryEntry, ImageDetails, ImageSummary, PruneReport
from workbench.client._streams import ByteStream, ProgressStream
from workbench.client._upload import Source, body
from workbench.errors import APIError

if TYPE_CHECKING:
    from workbench.client._connection import Connection
    from workbench.client.registry import RegistryAPI

__all__ = ["ImagesAPI", "split_reference"]

_TAR = {"Content-Type": "application/x-tar"}


def split_reference(reference: str) -> tuple[str, str | None]:
    """`name:tag` → (name, tag); `name@sha256:..` → (name, digest); `name` → (name, None)."""
    if "@" in reference:
        name, digest = reference.split("@", 1)
        return name, digest
    slash, colon = reference.rfind("/"), reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1:]
    return reference, None


class ImagesAPI:
    def __init__(self, conn: Connection, registry: RegistryAPI) -> None:
        self._conn = conn
        self._registry = registry

    # -- reading ------------------------------------------------------------------------------
    def list(self, *, all: bool = False, filters: _wire.Filters | None = None,
             name: str | None = None, digests: bool = False) -> list[ImageSummary]:
        """`GET /images/json`.

        Args:
            all: include intermediate images.
            filters: `reference`, `label`, `dangling`, `before`, `since` (docker-py's dict shape).
            name: shorthand for a `reference` filter (`busybox`, `app:*`).
        """
        merged = dict(filters or {})
        if name:
            merged["reference"] = [name]
        params = _wire.query(all=all or None, filters=_wire.encode_filters(merged),
                             digests=digests or None)
        return [ImageSummary.from_wire(d) for d in self._conn.json("GET", "/images/json", params=params)]

    def inspect(self, image: str) -> ImageDetails:
        """`GET /images/{name}/json`. Raises NotFound ("No such image: x")."""
        return ImageDetails.from_wire(self._conn.json("GET", _wire.path("/images/{}/json", image)))

    def history(self, image: str) -> list[HistoryEntry]:
        """`GET /images/{name}/history`, newest first."""
        docs = self._conn.json("GET", _wire.path("/images/{}/history", image))
        return [HistoryEntry.from_wire(d) for d in docs or ()]

    # -- naming and removal -------------------------------------------------------------------
    def tag(self, image: str, repository: str, tag: str | None = None, *, force: bool = False) -> None:
        """`POST /images/{name}/tag`: give `image` the name `repository[:tag]`."""
        if tag is None:
            repository, tag = split_reference(repository)
        params = _wire.query(repo=repository, tag=tag, force=force or None)
        self._conn.request("POST", _wire.path("/images/{}/tag", image), params=params)

    def remove(self, image: str, *, force: bool = False, noprune: bool = False) -> list[DeleteItem]:
        """`DELETE /images/{name}`: untag, and delete when no tag is left.

        Raises:
            Conflict: a container uses the image (and `force` is not set).
        """
        params = _wire.query(force=force or None, noprune=noprune or None)
        docs = self._conn.json("DELETE", _wire.path("/images/{}", image), params=params)
        return [DeleteItem.from_wire(d) for d in docs or ()]

    def prune(self, *, filters: _wire.Filters | None = None) -> PruneReport:
        """`POST /images/prune`: remove dangling images (`{"dangling": False}` for all unused)."""
        params = _wire.query(filters=_wire.encode_filters(filters))
        doc = self._conn.json("POST", "/images/prune", params=params, timeout=None) or {}
        return PruneReport.from_wire(doc, "ImagesDeleted")

    # -- archives -----------------------------------------------------------------------------
    def import_(self, source: Source, *, repository: str | None = None, tag: str | None = None,
                changes: Sequence[str] = (), message: str | None = None,
                platform: str | None = None) -> str:
        """Import a rootfs tarball as a one-layer image (`POST /images/create?fromSrc=-`).

        Args:
            source: the tar (plain or compressed) as bytes, a binary file, a path or chunks.
            repository: name for the image; may carry the tag (`app:1`).
            changes: Dockerfile instructions to apply (`CMD ["sh"]`, `ENV A=1`).

        Returns:
            The new image ID (`sha256:...`).
        """
        params = _wire.query(fromSrc="-", repo=repository, tag=tag, changes=list(changes) or None,
                             message=message, platform=platform)
        stream = ProgressStream(self._conn.stream("POST", "/images/create", params=params,
                                                  content=body(source), headers=_TAR))
        with stream:
            events = stream.drain()
        image_id = next((e.status for e in reversed(events) if e.status), None)
        if not image_id:
            raise APIError("the engine did not report the imported image's ID")
        return image_id.strip()

    def load(self, source: Source) -> list[str]:
        """Load a `docker save` or OCI layout archive (`POST /images/load`).

        Returns:
            What was loaded, as the engine names it: `name:tag`, or `sha256:...` for untagged images.
        """
        stream = ProgressStream(self._conn.stream("POST", "/images/load", params=_wire.query(quiet=True),
                                                  content=body(source), headers=_TAR))
        with stream:
            events = stream.drain()
        loaded: list[str] = []
        for event in events:
            for line in (event.stream or "").splitlines():
                for prefix in ("Loaded image: ", "Loaded image ID: "):
                    if line.startswith(prefix):
                        loaded.append(line[len(prefix):].strip())
        return loaded

    def save(self, names: str | Sequence[str]) -> ByteStream:
        """`GET /images/get?names=...`: a tar of the images (docker save format), streamed."""
        names = [names] if isinstance(names, str) else list(names)
        return ByteStream(self._conn.stream("GET", "/images/get", params=_wire.query(names=names)))

    # -- registries ---------------------------------------------------------------------------
    def pull(self, reference: str, *, platform: str | None = None,
             auth: AuthConfig | None = None, all_tags: bool = False) -> ProgressStream:
        """`POST /images/create?fromImage=`: pull `name[:tag|@digest]` (`:latest` when bare).

        Returns:
            A stream of Docker's pull progress; in-stream failures raise `APIError`.

        Raises:
            NotFound: the registry has no such manifest (reported before the stream).
        """
        name, tag = split_reference(reference)
        if tag is None and not all_tags:
            tag = "latest"
        params = _wire.query(fromImage=name, tag=tag, platform=platform)
        headers = {"X-Registry-Auth": self._registry.auth_header(reference, auth)}
        return ProgressStream(self._conn.stream("POST", "/images/create", params=params, headers=headers))

    def push(self, reference: str, *, auth: AuthConfig | None = None) -> ProgressStream:
        """`POST /images/{name}/push?tag=`: push `name[:tag]` (every tag of `name` when bare)."""
        name, tag = split_reference(reference)
        headers = {"X-Registry-Auth": self._registry.auth_header(reference, auth)}
        return ProgressStream(self._conn.stream("POST", _wire.path("/images/{}/push", name),
                                                params=_wire.query(tag=tag), headers=headers))
