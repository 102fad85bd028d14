"""`Client`: one engine connection with one object per resource, by composition."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Self

from workbench.client._connection import Connection, Host, resolve_host

if TYPE_CHECKING:
    from workbench.client._config import CredentialStore
    from workbench.client._upload import Source
    from workbench.client.build import BuildStream
    from workbench.client.containers import ContainersAPI
    from workbench.client.exec import ExecAPI
    from workbench.client.images import ImagesAPI
    from workbench.client.networks import NetworksAPI
    from workbench.client.registry import RegistryAPI
    from workbench.client.system import SystemAPI
    from workbench.client.volumes import VolumesAPI

__all__ = ["Client"]


class Client:
    """A typed client of the Workbench engine (or any Docker Engine API v1.41 daemon).

        >>> from workbench.client import Client
        >>> with Client() as c:                      # WORKBENCH_HOST, else the default socket
        ...     c.containers.create("busybox", ["echo", "hi"], name="x").id

    Args:
        host: `unix:///PATH` or `tcp://HOST:PORT`; default `$WORKBENCH_HOST`, else
            `unix:///run/workbench/engine.sock`.
        version: an API version to use without negotiating (default: ask `/_ping` once).
        timeout: seconds for ordinary requests; streams and waits have no read timeout.
        config_dir: where config.json with registry credentials lives (default `$DOCKER_CONFIG`,
            else `~/.workbench`).

    Nothing is sent until the first call, and each resource module is imported on first use,
    so creating a client costs next to nothing.
    """

    def __init__(self, host: str | None = None, *, version: str | None = None,
                 timeout: float | None = 60.0, config_dir: str | os.PathLike[str] | None = None) -> None:
        self._conn = Connection(resolve_host(host), version=version, timeout=timeout)
        self._config_dir = config_dir

    # -- resources, by composition (each built on first use) -----------------------------------
    @cached_property
    def credentials(self) -> CredentialStore:
        """Registry credentials in config.json."""
        from workbench.client._config import CredentialStore

        return CredentialStore(self._config_dir)

    @cached_property
    def system(self) -> SystemAPI:
        """ping, version, info, df."""
        from workbench.client.system import SystemAPI

        return SystemAPI(self._conn)

    @cached_property
    def registry(self) -> RegistryAPI:
        """login/logout through the engine, stored credentials, registry catalog and tags."""
        from workbench.client.registry import RegistryAPI

        return RegistryAPI(self._conn, self.credentials)

    @cached_property
    def images(self) -> ImagesAPI:
        """list, inspect, history, tag, remove, prune, import_, load, save, pull, push."""
        from workbench.client.images import ImagesAPI

        return ImagesAPI(self._conn, self.registry)

    @cached_property
    def containers(self) -> ContainersAPI:
        """create, start, wait, logs, stream_logs, attach, stop, kill, remove, list, inspect, ..."""
        from workbench.client.containers import ContainersAPI

        return ContainersAPI(self._conn)

    @cached_property
    def exec(self) -> ExecAPI:
        """create, start, start_detached, inspect, run."""
        from workbench.client.exec import ExecAPI

        return ExecAPI(self._conn)

    @cached_property
    def networks(self) -> NetworksAPI:
        from workbench.client.networks import NetworksAPI

        return NetworksAPI(self._conn)

    @cached_property
    def volumes(self) -> VolumesAPI:
        from workbench.client.volumes import VolumesAPI

        return VolumesAPI(self._conn)

    @property
    def host(self) -> Host:
        return self._conn.host

    @property
    def api_version(self) -> str:
        """The negotiated API version (asks the engine on first use)."""
        return self._conn.api_version

    def build(self, context: Source | None = None, *, tags: str | Sequence[str] = (),
              dockerfile: str | None = None, dockerfile_text: str | bytes | None = None,
              buildargs: Mapping[str, str] | None = None, target: str | None = None,
              nocache: bool = False, labels: Mapping[str, str] | None = None, quiet: bool = False,
              pull: bool = False, rm: bool = True, forcerm: bool = False, cache_from: Sequence[str] = (),
              network_mode: str | None = None, extra_hosts: Mapping[str, str] | None = None,
              shm_size: int | None = None, memory: int | None = None,
              platform: str | None = None) -> BuildStream:
        """Build an image from a Dockerfile (`POST /build`, Docker's classic builder).

        Args:
            context: a directory (tarred here, `.dockerignore` applied), or an archive as bytes,
                a binary file, a path to a tar, or chunks. None with `dockerfile_text` sends a
                context holding only that Dockerfile.
            tags: `name:tag` for the result (one or several).
            dockerfile: the Dockerfile's path (relative to a directory context, or absolute; one
                outside the context is sent along).
            dockerfile_text: Dockerfile content given directly (a notebook cell).
            buildargs, target, nocache, labels, quiet, pull, rm, forcerm, cache_from, network_mode,
            extra_hosts, shm_size, memory, platform: as `docker build`.

        Returns:
            A `BuildStream` of `ProgressEvent`s; `.result()` drains it and returns the image ID.

        Raises:
            BuildError: a step failed (raised while iterating), with its message and the log.

            >>> with client.build("ctx/", tags="app:1") as progress:
            ...     for event in progress:
            ...         print(event.stream or "", end="")
            >>> progress.image_id
        """
        from workbench.client.build import build

        return build(self._conn, self.credentials, context, tags=tags, dockerfile=dockerfile,
                     dockerfile_text=dockerfile_text, buildargs=buildargs, target=target,
                     nocache=nocache, labels=labels, quiet=quiet, pull=pull, rm=rm, forcerm=forcerm,
                     cache_from=cache_from, network_mode=network_mode, extra_hosts=extra_hosts,
                     shm_size=shm_size, memory=memory, platform=platform)

    def close(self) -> None:
        """Close the connection pool. Streams still open are closed with it."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.host.url!r})"
