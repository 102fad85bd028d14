"""The Workbench client: a typed client of the Docker Engine API v1.41 over httpx.

    from workbench.client import Client
    client = Client()                         # WORKBENCH_HOST, else unix:///run/workbench/engine.sock
    client.images.list()                      # [ImageSummary(...)]
    cid = client.containers.create("busybox", ["echo", "hi"]).id
    with client.containers.stream_logs(cid) as logs:
        for frame in logs: ...                # LogFrame(stream, data)

Errors are `workbench.errors` classes (NotFound, Conflict, InvalidArgument, APIError, ...) carrying the
daemon's message. Importing this package does not import httpx; the first request does.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from workbench.client._client import Client
from workbench.client._connection import API_VERSION, DEFAULT_HOST, HOST_ENV, Host, resolve_host
from workbench.errors import APIError, BuildError, Conflict, InvalidArgument, NotFound, WorkbenchError

if TYPE_CHECKING:
    from workbench.client._config import AuthConfig, CredentialStore
    from workbench.client._context import DockerIgnore
    from workbench.client._create import ContainerSpec
    from workbench.client._records import (
        Change,
        ChangeKind,
        ContainerDetails,
        ContainerState,
        ContainerSummary,
        CreatedContainer,
        DeleteItem,
        DiskUsage,
        ExecDetails,
        HistoryEntry,
        ImageDetails,
        ImageSummary,
        PathStat,
        Ping,
        Port,
        ProcessList,
        PruneReport,
        Version,
        WaitResult,
    )
    from workbench.client._specs import Mount, RestartPolicy, parse_publish
    from workbench.client._streams import (
        ArchiveStream,
        AttachStream,
        ByteStream,
        LogStream,
        ProgressStream,
        Waiter,
    )
    from workbench.client.build import BuildStream
    from workbench.client.exec import ExecResult
    from workbench.client.networks import IPAMPool, Network, NetworkEndpoint
    from workbench.client.registry import AuthResult
    from workbench.client.volumes import Volume
    from workbench.oci.streams import LogFrame, ProgressEvent

# Everything but Client is loaded on first access (PEP 562), so importing the package stays cheap.
_LAZY = {
    "workbench.client._config": ("AuthConfig", "CredentialStore"),
    "workbench.client._context": ("DockerIgnore",),
    "workbench.client._create": ("ContainerSpec",),
    "workbench.client._records": (
        "Change", "ChangeKind", "ContainerDetails", "ContainerState", "ContainerSummary",
        "CreatedContainer", "DeleteItem", "DiskUsage", "ExecDetails", "HistoryEntry", "ImageDetails",
        "ImageSummary", "PathStat", "Ping", "Port", "ProcessList", "PruneReport", "Version", "WaitResult"),
    "workbench.client._specs": ("Mount", "RestartPolicy", "parse_publish"),
    "workbench.client._streams": ("ArchiveStream", "AttachStream", "ByteStream", "LogStream",
                                  "ProgressStream", "Waiter"),
    "workbench.client.build": ("BuildStream",),
    "workbench.client.exec": ("ExecResult",),
    "workbench.client.networks": ("IPAMPool", "Network", "NetworkEndpoint"),
    "workbench.client.registry": ("AuthResult",),
    "workbench.client.volumes": ("Volume",),
    "workbench.oci.streams": ("LogFrame", "ProgressEvent"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench.client' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "API_VERSION",
    "DEFAULT_HOST",
    "HOST_ENV",
    "APIError",
    "ArchiveStream",
    "AttachStream",
    "AuthConfig",
    "AuthResult",
    "BuildError",
    "BuildStream",
    "ByteStream",
    "Change",
    "ChangeKind",
    "Client",
    "Conflict",
    "ContainerDetails",
    "ContainerSpec",
    "ContainerState",
    "ContainerSummary",
    "CreatedContainer",
    "CredentialStore",
    "DeleteItem",
    "DiskUsage",
    "DockerIgnore",
    "ExecDetails",
    "ExecResult",
    "HistoryEntry",
    "Host",
    "IPAMPool",
    "ImageDetails",
    "ImageSummary",
    "InvalidArgument",
    "LogFrame",
    "LogStream",
    "Mount",
    "Network",
    "NetworkEndpoint",
    "NotFound",
    "PathStat",
    "Ping",
    "Port",
    "ProcessList",
    "ProgressEvent",
    "ProgressStream",
    "PruneReport",
    "RestartPolicy",
    "Version",
    "Volume",
    "WaitResult",
    "Waiter",
    "WorkbenchError",
    "parse_publish",
    "resolve_host",
]
