"""`client.networks`: create, list, inspect, connect, disconnect, remove, prune."""

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

__all__ = ["IPAMPool", "Network", "NetworkEndpoint", "NetworksAPI"]


@dataclass(frozen=True, slots=True)
class IPAMPool:
    """One `IPAM.Config` entry."""

    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None

    def to_wire(self) -> dict[str, str]:
        out = {"Subnet": self.subnet, "Gateway": self.gateway, "IPRange": self.ip_range}
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> IPAMPool:
        return cls(d.get("Subnet") or None, d.get("Gateway") or None, d.get("IPRange") or None)


@dataclass(frozen=True, slots=True)
class NetworkEndpoint:
    """A container on a network, as `GET /networks/{id}` lists it."""

    container_id: str
    name: str
    ipv4_address: str
    mac_address: str

    @classmethod
    def from_wire(cls, cid: str, d: dict[str, Any]) -> NetworkEndpoint:
        return cls(cid, d.get("Name", ""), d.get("IPv4Address", ""), d.get("MacAddress", ""))


@dataclass(frozen=True, slots=True)
class Network:
    id: str
    name: str
    driver: str
    scope: str
    created: datetime
    internal: bool
    attachable: bool
    ipam: tuple[IPAMPool, ...]
    containers: tuple[NetworkEndpoint, ...]
    labels: dict[str, str]
    options: dict[str, str]
    attrs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Network:
        ipam = tuple(IPAMPool.from_wire(c) for c in ((d.get("IPAM") or {}).get("Config") or ()))
        containers = tuple(NetworkEndpoint.from_wire(k, v) for k, v in (d.get("Containers") or {}).items())
        return cls(d.get("Id", ""), d.get("Name", ""), d.get("Driver", ""), d.get("Scope", ""),
                   parse_time(d.get("Created")), bool(d.get("Internal")), bool(d.get("Attachable")),
                   ipam, containers, dict(d.get("Labels") or {}), dict(d.get("Options") or {}), d)


class NetworksAPI:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, name: str, *, driver: str = "bridge", subnet: str | None = None,
               gateway: str | None = None, ip_range: str | None = None,
               ipam: Sequence[IPAMPool] = (), internal: bool = False, attachable: bool = False,
               enable_ipv6: bool = False, labels: Mapping[str, str] | Sequence[str] | None = None,
               options: Mapping[str, str] | None = None, check_duplicate: bool = True) -> str:
        """`POST /networks/create`; returns the network ID. Raises Conflict for a taken name."""
        pools = list(ipam)
        if subnet or gateway or ip_range:
            pools.append(IPAMPool(subnet, gateway, ip_range))
        doc = {"Name": name, "Driver": driver, "CheckDuplicate": check_duplicate,
               "Internal": internal, "Attachable": attachable, "EnableIPv6": enable_ipv6,
               "IPAM": {"Driver": "default", "Config": [p.to_wire() for p in pools], "Options": {}},
               "Labels": label_map(labels) or {}, "Options": dict(options or {})}
        return str(self._conn.json("POST", "/networks/create", json=doc)["Id"])

    def list(self, *, filters: _wire.Filters | None = None) -> list[Network]:
        """`GET /networks` (filters: `name`, `id`, `driver`, `label`, `type`, `dangling`)."""
        docs = self._conn.json("GET", "/networks", params=_wire.query(filters=_wire.encode_filters(filters)))
        return [Network.from_wire(d) for d in docs or ()]

    def inspect(self, network: str, *, verbose: bool = False) -> Network:
        doc = self._conn.json("GET", _wire.path("/networks/{}", network),
                              params=_wire.query(verbose=verbose or None))
        return Network.from_wire(doc)

    def remove(self, network: str) -> None:
        self._conn.request("DELETE", _wire.path("/networks/{}", network))

    def connect(self, network: str, container: str, *, aliases: Sequence[str] = (),
                ipv4_address: str | None = None) -> None:
        """`POST /networks/{id}/connect`: join a container, with DNS aliases or a fixed address."""
        endpoint: dict[str, Any] = {}
        if aliases:
            endpoint["Aliases"] = list(aliases)
        if ipv4_address:
            endpoint["IPAMConfig"] = {"IPv4Address": ipv4_address}
        self._conn.request("POST", _wire.path("/networks/{}/connect", network),
                           json={"Container": container, "EndpointConfig": endpoint})

    def disconnect(self, network: str, container: str, *, force: bool = False) -> None:
        self._conn.request("POST", _wire.path("/networks/{}/disconnect", network),
                           json={"Container": container, "Force": force})

    def prune(self, *, filters: _wire.Filters | None = None) -> PruneReport:
        doc = self._conn.json("POST", "/networks/prune",
                              params=_wire.query(filters=_wire.encode_filters(filters)))
        return PruneReport.from_wire(doc or {}, "NetworksDeleted")
