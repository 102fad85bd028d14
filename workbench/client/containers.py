"""`client.containers`: create, lifecycle, wait, logs, attach, listing, archives, commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench.client import _wire
from workbench.client._create import ContainerSpec
from workbench.client._records import (
    Change,
    ContainerDetails,
    ContainerSummary,
    CreatedContainer,
    PathStat,
    ProcessList,
    PruneReport,
    WaitResult,
)
from workbench.client._streams import ArchiveStream, AttachStream, ByteStream, LogStream, Waiter
from workbench.client._upload import Source, body
from workbench.oci.streams import LogFrame

if TYPE_CHECKING:
    from datetime import datetime

    from workbench.client._connection import Connection

__all__ = ["ContainersAPI"]

_UPGRADE = {"Connection": "Upgrade", "Upgrade": "tcp"}


def _when(value: datetime | float | str | None) -> str | None:
    """`since`/`until` as Docker takes them: Unix seconds (fractions allowed), or as given."""
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return f"{value.timestamp():.9f}"  # type: ignore[union-attr]
    return str(value)


class ContainersAPI:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # -- create and lifecycle -----------------------------------------------------------------
    def create(self, image: str | ContainerSpec, command: str | Sequence[str] | None = None, *,
               name: str | None = None, platform: str | None = None, **options: Any) -> CreatedContainer:
        """`POST /containers/create`.

        Args:
            image: an image reference, or a complete `ContainerSpec`.
            command: the command (a list, or a string split like a shell would).
            name: the container's name (unique; a clash raises Conflict).
            **options: any `ContainerSpec` field: `env`, `working_dir`, `user`, `entrypoint`, `labels`,
                `ports`, `volumes`, `mounts`, `memory`, `cpus`, `pids_limit`, `auto_remove`,
                `restart_policy`, `network`, `network_aliases`, `tty`, `stdin_open`, ...

        Raises:
            NotFound: "No such image: x".
            Conflict: the name is in use.
        """
        spec = image if isinstance(image, ContainerSpec) else \
            ContainerSpec(image=image, command=command, **options)
        params = _wire.query(name=name, platform=platform)
        doc = self._conn.json("POST", "/containers/create", params=params, json=spec.to_wire())
        return CreatedContainer(doc["Id"], tuple(doc.get("Warnings") or ()))

    def start(self, container: str) -> None:
        """`POST /containers/{id}/start`; starting a running container is a no-op."""
        self._conn.request("POST", _wire.path("/containers/{}/start", container), timeout=None)

    def stop(self, container: str, *, timeout: int | None = None) -> None:
        """`POST /containers/{id}/stop?t=`: StopSignal, then SIGKILL after `timeout` seconds."""
        self._conn.request("POST", _wire.path("/containers/{}/stop", container),
                           params=_wire.query(t=timeout), timeout=None)

    def restart(self, container: str, *, timeout: int | None = None) -> None:
        self._conn.request("POST", _wire.path("/containers/{}/restart", container),
                           params=_wire.query(t=timeout), timeout=None)

    def kill(self, container: str, signal: str | int | None = None) -> None:
        """`POST /containers/{id}/kill` (SIGKILL unless `signal` says otherwise)."""
        self._conn.request("POST", _wire.path("/containers/{}/kill", container),
                           params=_wire.query(signal=signal))

    def pause(self, container: str) -> None:
        self._conn.request("POST", _wire.path("/containers/{}/pause", container))

    def unpause(self, container: str) -> None:
        self._conn.request("POST", _wire.path("/containers/{}/unpause", container))

    def remove(self, container: str, *, force: bool = False, volumes: bool = False,
               link: bool = False) -> None:
        """`DELETE /containers/{id}`. Raises Conflict for a running container unless `force`."""
        params = _wire.query(force=force or None, v=volumes or None, link=link or None)
        self._conn.request("DELETE", _wire.path("/containers/{}", container), params=params, timeout=None)

    def rename(self, container: str, name: str) -> None:
        self._conn.request("POST", _wire.path("/containers/{}/rename", container),
                           params=_wire.query(name=name))

    def wait(self, container: str, condition: str | None = None) -> WaitResult:
        """Block until the container reaches `condition` (`not-running`, `next-exit`, `removed`)."""
        with self.waiting(container, condition) as waiter:
            return waiter.result()

    def waiting(self, container: str, condition: str | None = None) -> Waiter:
        """Start a wait now and collect it later: the engine answers headers at once.

        `docker run` opens a `next-exit` (or `removed`) wait *before* `start`, so that a container
        that exits at once is still seen.
        """
        return Waiter(self._conn.stream("POST", _wire.path("/containers/{}/wait", container),
                                        params=_wire.query(condition=condition)))

    # -- reading ------------------------------------------------------------------------------
    def list(self, *, all: bool = False, limit: int | None = None, latest: bool = False,
             size: bool = False, filters: _wire.Filters | None = None) -> list[ContainerSummary]:
        """`GET /containers/json`: running containers, or all with `all`.

        Args:
            filters: `status`, `label`, `name`, `ancestor`, `id`, `exited`, `network`, `volume`, ...
        """
        params = _wire.query(all=all or None, limit=1 if latest else limit, size=size or None,
                             filters=_wire.encode_filters(filters))
        return [ContainerSummary.from_wire(d) for d in self._conn.json("GET", "/containers/json",
                                                                        params=params)]

    def inspect(self, container: str, *, size: bool = False) -> ContainerDetails:
        """`GET /containers/{id}/json`. Raises NotFound ("No such container: x")."""
        doc = self._conn.json("GET", _wire.path("/containers/{}/json", container),
                              params=_wire.query(size=size or None))
        return ContainerDetails.from_wire(doc)

    def top(self, container: str, ps_args: str | None = None) -> ProcessList:
        doc = self._conn.json("GET", _wire.path("/containers/{}/top", container),
                              params=_wire.query(ps_args=ps_args))
        return ProcessList.from_wire(doc)

    def changes(self, container: str) -> list[Change]:
        """`GET /containers/{id}/changes`: files added, changed and deleted against the image."""
        docs = self._conn.json("GET", _wire.path("/containers/{}/changes", container))
        return [Change.from_wire(d) for d in docs or ()]

    def prune(self, *, filters: _wire.Filters | None = None) -> PruneReport:
        doc = self._conn.json("POST", "/containers/prune", timeout=None,
                              params=_wire.query(filters=_wire.encode_filters(filters)))
        return PruneReport.from_wire(doc or {}, "ContainersDeleted")

    # -- output -------------------------------------------------------------------------------
    def logs(self, container: str, *, stdout: bool = True, stderr: bool = True, timestamps: bool = False,
             tail: int | str | None = None, since: Any = None, until: Any = None,
             tty: bool | None = None) -> list[LogFrame]:
        """The container's output so far, as frames (one stdout frame per chunk for a TTY)."""
        with self.stream_logs(container, follow=False, stdout=stdout, stderr=stderr,
                              timestamps=timestamps, tail=tail, since=since, until=until, tty=tty) as s:
            return list(s)

    def stream_logs(self, container: str, *, follow: bool = True, stdout: bool = True,
                    stderr: bool = True, timestamps: bool = False, tail: int | str | None = None,
                    since: Any = None, until: Any = None, tty: bool | None = None) -> LogStream:
        """`GET /containers/{id}/logs` as a stream of `LogFrame`s; with `follow`, until it stops.

        Args:
            tty: whether the container has a TTY (raw output); None asks the engine first,
                as the docker CLI does.
        """
        if tty is None:
            tty = self.inspect(container).tty
        params = _wire.query(stdout=stdout, stderr=stderr, follow=follow or None,
                             timestamps=timestamps or None, tail=tail if tail is not None else "all",
                             since=_when(since), until=_when(until))
        return LogStream(self._conn.stream("GET", _wire.path("/containers/{}/logs", container),
                                           params=params), raw=tty)

    def attach(self, container: str, *, stdin: bool = False, stdout: bool = True, stderr: bool = True,
               logs: bool = False, tty: bool | None = None) -> AttachStream:
        """`POST /containers/{id}/attach` on a hijacked connection: output frames, stdin bytes.

        Attach before `start` to see everything a short-lived container prints.
        """
        if tty is None:
            tty = self.inspect(container).tty
        params = _wire.query(stream=True, stdin=stdin or None, stdout=stdout or None,
                             stderr=stderr or None, logs=logs or None)
        return AttachStream(self._conn.stream("POST", _wire.path("/containers/{}/attach", container),
                                              params=params, headers=_UPGRADE), raw=tty)

    # -- files --------------------------------------------------------------------------------
    def export(self, container: str) -> ByteStream:
        """`GET /containers/{id}/export`: the container's filesystem as a tar stream."""
        return ByteStream(self._conn.stream("GET", _wire.path("/containers/{}/export", container)))

    def get_archive(self, container: str, path: str) -> ArchiveStream:
        """`GET /containers/{id}/archive?path=`: a tar of `path`, with its `stat`."""
        return ArchiveStream(self._conn.stream("GET", _wire.path("/containers/{}/archive", container),
                                               params=_wire.query(path=path)))

    def stat_path(self, container: str, path: str) -> PathStat:
        """`HEAD /containers/{id}/archive?path=`: what `path` is. Raises NotFound."""
        response = self._conn.request("HEAD", _wire.path("/containers/{}/archive", container),
                                      params=_wire.query(path=path))
        return PathStat.from_wire(_wire.decode_path_stat(
            response.headers.get("X-Docker-Container-Path-Stat")))

    def put_archive(self, container: str, path: str, data: Source, *,
                    no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False) -> None:
        """`PUT /containers/{id}/archive?path=`: extract a tar into the directory `path`."""
        params = _wire.query(path=path, noOverwriteDirNonDir=no_overwrite_dir_non_dir or None,
                             copyUIDGID=copy_uid_gid or None)
        self._conn.request("PUT", _wire.path("/containers/{}/archive", container), params=params,
                           content=body(data), headers={"Content-Type": "application/x-tar"}, timeout=None)

    def commit(self, container: str, repository: str | None = None, tag: str | None = None, *,
               message: str | None = None, author: str | None = None, changes: Sequence[str] = (),
               pause: bool = True, config: dict[str, Any] | None = None) -> str:
        """`POST /commit`: a new image from the container's changes; returns its ID."""
        if repository and tag is None:
            from workbench.client.images import split_reference

            repository, tag = split_reference(repository)
        params = _wire.query(container=container, repo=repository, tag=tag, comment=message,
                             author=author, changes=list(changes) or None, pause=pause)
        doc = self._conn.json("POST", "/commit", params=params, json=config, timeout=None)
        return str(doc["Id"])
