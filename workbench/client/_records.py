"""Typed records the client returns, each built from Docker's JSON by `from_wire`.

Each record keeps the fields people use as typed attributes and the whole reply in `attrs`
(excluded from comparison and repr), so nothing Docker sends is lost.
Times are timezone-aware `datetime`s, whether Docker sent Unix seconds or RFC 3339.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Change", "ChangeKind", "ContainerDetails", "ContainerState", "ContainerSummary", "CreatedContainer", "DeleteItem",
    "DiskUsage", "ExecDetails", "HistoryEntry", "ImageDetails", "ImageSummary", "PathStat", "Ping",
    "Port", "ProcessList", "PruneReport", "Version", "WaitResult", "parse_time",
]

JSON = dict[str, Any]
_ZERO = datetime(1, 1, 1, tzinfo=UTC)


def parse_time(value: Any) -> datetime:
    """Docker time → aware datetime: Unix seconds (int), or RFC 3339 with up to nanoseconds."""
    if value is None or value == "":
        return _ZERO
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    text = str(value).strip()
    if text.startswith("0001-01-01"):
        return _ZERO
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:  # trim nanoseconds to microseconds, keep the offset
        head, _, rest = text.partition(".")
        n = len(rest) - len(rest.lstrip("0123456789"))
        digits, offset = rest[:n], rest[n:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{offset}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return _ZERO
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_ATTRS: Any = field(default_factory=dict, repr=False, compare=False)


def _tuple(value: Any) -> tuple[str, ...]:
    return tuple(value or ())


@dataclass(frozen=True, slots=True)
class Ping:
    api_version: str
    os_type: str
    experimental: bool
    builder_version: str | None


@dataclass(frozen=True, slots=True)
class Version:
    version: str
    api_version: str
    min_api_version: str
    os: str
    arch: str
    kernel_version: str
    git_commit: str
    attrs: JSON = _ATTRS

    @classmethod
    def from_wire(cls, d: JSON) -> Version:
        return cls(d.get("Version", ""), d.get("ApiVersion", ""), d.get("MinAPIVersion", ""),
                   d.get("Os", ""), d.get("Arch", ""), d.get("KernelVersion", ""),
                   d.get("GitCommit", ""), d)


@dataclass(frozen=True, slots=True)
class ImageSummary:
    """One entry of `GET /images/json`."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    created: datetime
    size: int
    labels: dict[str, str]
    parent_id: str = ""
    containers: int = -1
    attrs: JSON = _ATTRS

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def tags(self) -> tuple[str, ...]:
        """Repo tags without Docker's `<none>:<none>` placeholder."""
        return tuple(t for t in self.repo_tags if t != "<none>:<none>")

    @classmethod
    def from_wire(cls, d: JSON) -> ImageSummary:
        return cls(d.get("Id", ""), _tuple(d.get("RepoTags")), _tuple(d.get("RepoDigests")),
                   parse_time(d.get("Created")), int(d.get("Size") or 0), dict(d.get("Labels") or {}),
                   d.get("ParentId") or "", int(d.get("Containers", -1)), d)


@dataclass(frozen=True, slots=True)
class ImageDetails:
    """`GET /images/{name}/json`: the image record with its config."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    created: datetime
    size: int
    architecture: str
    os: str
    config: JSON
    layers: tuple[str, ...]
    attrs: JSON = _ATTRS

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    @classmethod
    def from_wire(cls, d: JSON) -> ImageDetails:
        return cls(d.get("Id", ""), _tuple(d.get("RepoTags")), _tuple(d.get("RepoDigests")),
                   parse_time(d.get("Created")), int(d.get("Size") or 0), d.get("Architecture", ""),
                   d.get("Os", ""), dict(d.get("Config") or {}),
                   _tuple((d.get("RootFS") or {}).get("Layers")), d)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: str
    created: datetime
    created_by: str
    tags: tuple[str, ...]
    size: int
    comment: str

    @classmethod
    def from_wire(cls, d: JSON) -> HistoryEntry:
        return cls(d.get("Id", ""), parse_time(d.get("Created")), d.get("CreatedBy", ""),
                   _tuple(d.get("Tags")), int(d.get("Size") or 0), d.get("Comment", ""))


@dataclass(frozen=True, slots=True)
class DeleteItem:
    """One line of `DELETE /images/{name}`: either an untag or a delete."""

    untagged: str | None = None
    deleted: str | None = None

    @classmethod
    def from_wire(cls, d: JSON) -> DeleteItem:
        return cls(d.get("Untagged"), d.get("Deleted"))


@dataclass(frozen=True, slots=True)
class PruneReport:
    """A prune reply: what went, and the bytes it freed."""

    deleted: tuple[str, ...]
    space_reclaimed: int
    untagged: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, d: JSON, key: str) -> PruneReport:
        items = d.get(key) or []
        if key == "ImagesDeleted":
            deleted = tuple(i["Deleted"] for i in items if i.get("Deleted"))
            untagged = tuple(i["Untagged"] for i in items if i.get("Untagged"))
            return cls(deleted, int(d.get("SpaceReclaimed") or 0), untagged)
        return cls(tuple(items), int(d.get("SpaceReclaimed") or 0))


@dataclass(frozen=True, slots=True)
class Port:
    """A container port and, when published, where the host listens."""

    private_port: int
    type: str = "tcp"
    public_port: int | None = None
    ip: str | None = None

    @classmethod
    def from_wire(cls, d: JSON) -> Port:
        return cls(int(d.get("PrivatePort") or 0), d.get("Type", "tcp"),
                   d.get("PublicPort"), d.get("IP"))

    def __str__(self) -> str:
        if self.public_port:
            ip = self.ip or "0.0.0.0"
            host = f"[{ip}]" if ":" in ip else ip
            return f"{host}:{self.public_port}->{self.private_port}/{self.type}"
        return f"{self.private_port}/{self.type}"


@dataclass(frozen=True, slots=True)
class ContainerSummary:
    """One entry of `GET /containers/json`."""

    id: str
    names: tuple[str, ...]
    image: str
    image_id: str
    command: str
    created: datetime
    state: str
    status: str
    ports: tuple[Port, ...]
    labels: dict[str, str]
    size_rw: int | None = None
    size_root_fs: int | None = None
    attrs: JSON = _ATTRS

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return self.names[0].lstrip("/") if self.names else ""

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(((self.attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())

    @classmethod
    def from_wire(cls, d: JSON) -> ContainerSummary:
        return cls(d.get("Id", ""), _tuple(d.get("Names")), d.get("Image", ""), d.get("ImageID", ""),
                   d.get("Command", ""), parse_time(d.get("Created")), d.get("State", ""),
                   d.get("Status", ""), tuple(Port.from_wire(p) for p in d.get("Ports") or ()),
                   dict(d.get("Labels") or {}), d.get("SizeRw"), d.get("SizeRootFs"), d)


@dataclass(frozen=True, slots=True)
class ContainerState:
    status: str
    running: bool
    paused: bool
    restarting: bool
    oom_killed: bool
    dead: bool
    pid: int
    exit_code: int
    error: str
    started_at: datetime
    finished_at: datetime

    @classmethod
    def from_wire(cls, d: JSON) -> ContainerState:
        return cls(d.get("Status", ""), bool(d.get("Running")), bool(d.get("Paused")),
                   bool(d.get("Restarting")), bool(d.get("OOMKilled")), bool(d.get("Dead")),
                   int(d.get("Pid") or 0), int(d.get("ExitCode") or 0), d.get("Error") or "",
                   parse_time(d.get("StartedAt")), parse_time(d.get("FinishedAt")))


@dataclass(frozen=True, slots=True)
class CreatedContainer:
    id: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WaitResult:
    """The body of a finished wait: exit status, or the daemon's error while waiting."""

    status_code: int
    error: str | None = None

    @classmethod
    def from_wire(cls, d: JSON) -> WaitResult:
        err = d.get("Error")
        message = err.get("Message") if isinstance(err, dict) else err
        return cls(int(d.get("StatusCode", -1)), message or None)


@dataclass(frozen=True, slots=True)
class ProcessList:
    """`GET /containers/{id}/top`: ps columns and rows."""

    titles: tuple[str, ...]
    processes: tuple[tuple[str, ...], ...]

    @classmethod
    def from_wire(cls, d: JSON) -> ProcessList:
        return cls(_tuple(d.get("Titles")), tuple(tuple(p) for p in d.get("Processes") or ()))


class ChangeKind(enum.IntEnum):
    MODIFIED = 0
    ADDED = 1
    DELETED = 2

    @property
    def letter(self) -> str:
        return "CAD"[self.value]


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    kind: ChangeKind

    @classmethod
    def from_wire(cls, d: JSON) -> Change:
        return cls(d.get("Path", ""), ChangeKind(int(d.get("Kind", 0))))


@dataclass(frozen=True, slots=True)
class PathStat:
    """`X-Docker-Container-Path-Stat`: what a path inside a container is."""

    name: str
    size: int
    mode: int
    mtime: datetime
    link_target: str

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & (1 << 31))  # Go's os.ModeDir

    @classmethod
    def from_wire(cls, d: JSON) -> PathStat:
        return cls(d.get("name", ""), int(d.get("size") or 0), int(d.get("mode") or 0),
                   parse_time(d.get("mtime")), d.get("linkTarget", ""))


@dataclass(frozen=True, slots=True)
class ExecDetails:
    id: str
    container_id: str
    running: bool
    exit_code: int | None
    pid: int
    attrs: JSON = _ATTRS

    @classmethod
    def from_wire(cls, d: JSON) -> ExecDetails:
        code = d.get("ExitCode")
        return cls(d.get("ID", ""), d.get("ContainerID", ""), bool(d.get("Running")),
                   None if code is None else int(code), int(d.get("Pid") or 0), d)


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """`GET /system/df`: per-kind totals (the CLI's `system df`) with the full lists in `attrs`."""

    layers_size: int
    images: tuple[ImageSummary, ...]
    containers: tuple[ContainerSummary, ...]
    volumes: tuple[JSON, ...]
    build_cache: tuple[JSON, ...]
    attrs: JSON = _ATTRS

    @classmethod
    def from_wire(cls, d: JSON) -> DiskUsage:
        return cls(int(d.get("LayersSize") or 0),
                   tuple(ImageSummary.from_wire(i) for i in d.get("Images") or ()),
                   tuple(ContainerSummary.from_wire(c) for c in d.get("Containers") or ()),
                   tuple(d.get("Volumes") or ()), tuple(d.get("BuildCache") or ()), d)


@dataclass(frozen=True, slots=True)
class ContainerDetails:
    """`GET /containers/{id}/json`: the container's record, with Config and HostConfig as sent."""

    id: str
    name: str
    image: str
    created: datetime
    state: ContainerState
    config: JSON
    host_config: JSON
    network_settings: JSON
    mounts: tuple[JSON, ...]
    restart_count: int = 0
    attrs: JSON = _ATTRS

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    @property
    def ports(self) -> dict[str, list[JSON] | None]:
        """`NetworkSettings.Ports`: `{"80/tcp": [{"HostIp": ..., "HostPort": ...}] or None}`."""
        return dict(self.network_settings.get("Ports") or {})

    @classmethod
    def from_wire(cls, d: JSON) -> ContainerDetails:
        return cls(d.get("Id", ""), (d.get("Name") or "").lstrip("/"), d.get("Image", ""),
                   parse_time(d.get("Created")), ContainerState.from_wire(d.get("State") or {}),
                   dict(d.get("Config") or {}), dict(d.get("HostConfig") or {}),
                   dict(d.get("NetworkSettings") or {}), tuple(d.get("Mounts") or ()),
                   int(d.get("RestartCount") or 0), d)
