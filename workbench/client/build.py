"""`client.build(...)`: send a build context, stream the classic builder's progress."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench.client import _wire
from workbench.client._context import BuildContext, directory_context
from workbench.client._streams import ProgressStream
from workbench.client._upload import Source, body
from workbench.errors import APIError, BuildError

if TYPE_CHECKING:
    from workbench.client._config import CredentialStore
    from workbench.client._connection import Connection
    from workbench.oci.streams import ProgressEvent

__all__ = ["BuildStream", "build"]


class BuildStream(ProgressStream):
    """Build progress; `image_id` is known once the stream has ended (`result()` drains it).

    A failing step raises `BuildError` carrying the daemon's message, its code, the last
    `Step N/M` line and the whole log so far.
    """

    def __init__(self, *args: Any, quiet: bool = False, context: BuildContext | None = None,
                 **kwargs: Any) -> None:
        self.image_id: str | None = None
        self._quiet = quiet
        self._context = context
        try:
            super().__init__(*args, on_error=_build_error, **kwargs)
        except BaseException:
            if context is not None:
                context.close()
            raise

    def _seen(self, event: ProgressEvent) -> None:
        if event.aux and isinstance(event.aux.get("ID"), str):
            self.image_id = event.aux["ID"]
        elif self._quiet and event.stream and event.stream.strip().startswith("sha256:"):
            self.image_id = event.stream.strip()

    def close(self) -> None:
        super().close()
        if self._context is not None:
            self._context.close()
            self._context = None

    def result(self) -> str:
        """Drain the stream and return the built image's ID (`sha256:...`)."""
        self.drain()
        if not self.image_id:
            raise APIError("the build finished without reporting an image ID")
        return self.image_id

    @property
    def log(self) -> str:
        return "".join(e.stream or "" for e in self.events)


def _build_error(event: ProgressEvent, seen: list[ProgressEvent]) -> BuildError:
    detail = (event.raw.get("errorDetail") or {}) if event.raw else {}
    steps = [e.stream.strip() for e in seen if e.stream and e.stream.startswith("Step ")]
    log = "".join(e.stream or "" for e in seen)
    return BuildError(event.error or "build failed", step=steps[-1] if steps else "",
                      code=int(detail.get("code") or 1), log=log)


def _registry_config(credentials: CredentialStore | None) -> str:
    """`X-Registry-Config`: every stored credential, keyed by registry (base64 JSON, `e30=` if none)."""
    auths: dict[str, Any] = {}
    if credentials is not None:
        for registry in credentials.registries():
            auth = credentials.get(registry)
            if auth:
                auths[registry] = auth.to_wire()
    return base64.urlsafe_b64encode(json.dumps(auths).encode()).decode()


def build(conn: Connection, credentials: CredentialStore | None, context: Source | None = None, *,
          tags: str | Sequence[str] = (), dockerfile: str | None = None,
          dockerfile_text: str | bytes | None = None, buildargs: Mapping[str, str] | None = None,
          target: str | None = None, nocache: bool = False, labels: Mapping[str, str] | None = None,
          quiet: bool = False, pull: bool = False, rm: bool = True, forcerm: bool = False,
          cache_from: Sequence[str] = (), network_mode: str | None = None,
          extra_hosts: Mapping[str, str] | None = None, shm_size: int | None = None,
          memory: int | None = None, platform: str | None = None) -> BuildStream:
    """Build an image with the classic builder (`POST /build`); see `Client.build`."""
    prepared: BuildContext | None = None
    if context is None or (isinstance(context, str | os.PathLike) and os.path.isdir(context)):
        if context is None and dockerfile_text is None:
            raise APIError("build needs a context or a Dockerfile")
        if context is None:
            from workbench.client._context import dockerfile_context

            prepared = dockerfile_context(dockerfile_text or b"")
        else:
            prepared = directory_context(context, dockerfile=dockerfile, dockerfile_text=dockerfile_text)
        content = body(prepared.fileobj)
        dockerfile = prepared.dockerfile
    else:
        content = body(context)  # already an archive: a tar, or a compressed tar
    params = _wire.query(
        t=[tags] if isinstance(tags, str) else list(tags), dockerfile=dockerfile,
        buildargs=dict(buildargs) if buildargs else None, labels=dict(labels) if labels else None,
        target=target, nocache=nocache or None, q=quiet or None, pull=pull or None, rm=rm,
        forcerm=forcerm or None, cachefrom=json.dumps(list(cache_from)) if cache_from else None,
        networkmode=network_mode, shmsize=shm_size, memory=memory, platform=platform,
        extrahosts=",".join(f"{h}:{ip}" for h, ip in extra_hosts.items()) if extra_hosts else None,
        version="1")
    headers = {"Content-Type": "application/x-tar", "X-Registry-Config": _registry_config(credentials)}
    return BuildStream(conn.stream("POST", "/build", params=params, content=content, headers=headers),
                       quiet=quiet, context=prepared)
