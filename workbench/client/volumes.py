"""`client.volumes`: create, list, inspect, remove, prune."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workbench.client import _wire
from workbench.client._records import PruneReport, parse_time
from workbench.client._specs import label_map

if TYPE_CHECKING:
    from workbench.client._connection import Connection

__all__ = ["Volume", "VolumesAPI"]


@dataclass(frozen=True, slots=True)
class Volume:
    name: str
    driver: str
    mountpoint: str
    created: datetime
    labels: dict[str, str]
    scope: str
    options: dict[str, str]
    attrs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Volume:
        return cls(d.get("Name", ""), d.get("Driver", ""), d.get("Mountpoint", ""),
                   parse_time(d.get("CreatedAt")), dict(d.get("Labels") or {}), d.get("Scope", ""),
                   dict(d.get("Options") or {}), d)


class VolumesAPI:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, name: str | None = None, *, driver: str = "local",
               labels: Mapping[str, str] | Sequence[str] | None = None,
               options: Mapping[str, str] | None = None) -> Volume:
        """`POST /volumes/create`; a name is generated when none is given."""
        doc = {"Name": name or "", "Driver": driver, "DriverOpts": dict(options or {}),
               "Labels": label_map(labels) or {}}
        return Volume.from_wire(self._conn.json("POST", "/volumes/create", json=doc))

    def list(self, *, filters: _wire.Filters | None = None) -> list[Volume]:
        """`GET /volumes` (filters: `name`, `label`, `dangling`, `driver`)."""
        doc = self._conn.json("GET", "/volumes", params=_wire.query(filters=_wire.encode_filters(filters)))
        return [Volume.from_wire(d) for d in (doc or {}).get("Volumes") or ()]

    def inspect(self, name: str) -> Volume:
        return Volume.from_wire(self._conn.json("GET", _wire.path("/volumes/{}", name)))

    def remove(self, name: str, *, force: bool = False) -> None:
        """`DELETE /volumes/{name}`. Raises Conflict while a container uses it."""
        self._conn.request("DELETE", _wire.path("/volumes/{}", name), params=_wire.query(force=force or None))

    def prune(self, *, filters: _wire.Filters | None = None) -> PruneReport:
        doc = self._conn.json("POST", "/volumes/prune", timeout=None,
                              params=_wire.query(filters=_wire.encode_filters(filters)))
        return PruneReport.from_wire(doc or {}, "VolumesDeleted")
