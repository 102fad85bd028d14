"""Network state records and their rows in the engine's SQLite metadata.

  networks(id, name, doc)                  Network.to_doc(): Docker's fields + private `_` keys
  endpoints(network_id, container_id, doc) Endpoint.to_doc(): one per running container per network
  kv("netsandbox:<cid>", json)             Sandbox.to_doc(): the container's namespace and ports

An endpoint row exists exactly while its container's interface exists (Docker's semantics: a
stopped container has no endpoint and holds no address), so endpoints double as IPAM state.
Writers pass the open transaction (`tx`) of `Metadata.transaction()`; readers use `md`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from workbench.engine.network.firewall import PortMap
from workbench.engine.network.ipam import IPv4Address, Subnet

SANDBOX_KEY = "netsandbox:"
PREDEFINED = ("bridge", "host", "none")
DRIVER_OF = {"bridge": "bridge", "host": "host", "none": "null"}


@dataclass(frozen=True, slots=True)
class Network:
    id: str
    name: str
    driver: str
    created: str
    bridge: str = ""
    subnet: Subnet | None = None
    user_subnet: bool = False
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ipam_options: dict[str, str] = field(default_factory=dict)
    last_ip: str = ""

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def mtu(self) -> int:
        try:
            return int(self.options.get("com.docker.network.driver.mtu") or 1500)
        except ValueError:
            return 1500

    @property
    def masquerade(self) -> bool:
        return self.options.get("com.docker.network.bridge.enable_ip_masquerade", "true") != "false"

    def with_last_ip(self, ip: IPv4Address) -> Network:
        return replace(self, last_ip=str(ip))

    def to_doc(self) -> dict[str, Any]:
        return {
            "Name": self.name, "Id": self.id, "Created": self.created, "Scope": "local",
            "Driver": self.driver, "EnableIPv6": self.enable_ipv6,
            "IPAM": {"Driver": "default", "Options": self.ipam_options or None,
                     "Config": [self.subnet.to_doc()] if self.subnet else []},
            "Internal": self.internal, "Attachable": self.attachable, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Options": self.options,
            "Labels": self.labels,
            "_Bridge": self.bridge, "_UserSubnet": self.user_subnet, "_LastIP": self.last_ip,
        }

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Network:
        cfg = (d.get("IPAM") or {}).get("Config") or []
        return cls(
            id=d["Id"], name=d["Name"], driver=d["Driver"], created=d["Created"],
            bridge=d.get("_Bridge", ""), subnet=Subnet.from_doc(cfg[0]) if cfg else None,
            user_subnet=bool(d.get("_UserSubnet")), internal=bool(d.get("Internal")),
            attachable=bool(d.get("Attachable")), enable_ipv6=bool(d.get("EnableIPv6")),
            options=dict(d.get("Options") or {}), labels=dict(d.get("Labels") or {}),
            ipam_options=dict((d.get("IPAM") or {}).get("Options") or {}), last_ip=d.get("_LastIP", ""),
        )


@dataclass(frozen=True, slots=True)
class Endpoint:
    network_id: str
    container_id: str
    endpoint_id: str
    name: str                       # container name, no slash
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    ifname: str
    host_veth: str
    aliases: tuple[str, ...] = ()
    ipam_config: dict[str, str] | None = None

    def to_doc(self) -> dict[str, Any]:
        return {"EndpointID": self.endpoint_id, "Name": self.name, "IPv4Address": self.ip,
                "PrefixLen": self.prefixlen, "Gateway": self.gateway, "MacAddress": self.mac,
                "IfName": self.ifname, "HostVeth": self.host_veth, "Aliases": list(self.aliases),
                "IPAMConfig": self.ipam_config}

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Endpoint:
        d = json.loads(row["doc"])
        return cls(row["network_id"], row["container_id"], d["EndpointID"], d["Name"], d["IPv4Address"],
                   int(d["PrefixLen"]), d["Gateway"], d["MacAddress"], d["IfName"], d["HostVeth"],
                   tuple(d.get("Aliases") or ()), d.get("IPAMConfig"))


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A container's network namespace and what hangs on it besides endpoints."""

    cid: str
    name: str
    hostname: str
    mode: str                       # "bridge" (any bridge network), "host", "none", "container:<cid>"
    netns: str = ""                 # path of the namespace file this engine created, "" otherwise
    hosts_path: str = ""
    domainname: str = ""
    extra_hosts: tuple[str, ...] = ()
    exposed: tuple[str, ...] = ()
    ports: tuple[PortMap, ...] = ()
    ports_view: dict[str, Any] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        return {"Id": self.cid, "Name": self.name, "Hostname": self.hostname, "Mode": self.mode,
                "NetNS": self.netns, "HostsPath": self.hosts_path, "Domainname": self.domainname,
                "ExtraHosts": list(self.extra_hosts), "Exposed": list(self.exposed),
                "Ports": [p.to_doc() for p in self.ports], "PortsView": self.ports_view}

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Sandbox:
        return cls(d["Id"], d["Name"], d["Hostname"], d["Mode"], d.get("NetNS", ""), d.get("HostsPath", ""),
                   d.get("Domainname", ""), tuple(d.get("ExtraHosts") or ()), tuple(d.get("Exposed") or ()),
                   tuple(PortMap.from_doc(p) for p in d.get("Ports") or ()), dict(d.get("PortsView") or {}))


# Reads ------------------------------------------------------------------------------------------
def networks(md: Any) -> list[Network]:
    return [Network.from_doc(json.loads(r["doc"])) for r in md.query("SELECT doc FROM networks ORDER BY name")]


def network_by(md: Any, *, id: str | None = None, name: str | None = None) -> Network | None:
    if id is not None:
        row = md.one("SELECT doc FROM networks WHERE id=?", (id,))
    else:
        row = md.one("SELECT doc FROM networks WHERE name=?", (name,))
    return Network.from_doc(json.loads(row["doc"])) if row else None


def network_id_prefix(md: Any, prefix: str) -> list[Network]:
    rows = md.query("SELECT doc FROM networks WHERE id LIKE ?", (prefix + "%",))
    return [Network.from_doc(json.loads(r["doc"])) for r in rows]


def endpoints(md: Any, *, network_id: str | None = None, container_id: str | None = None) -> list[Endpoint]:
    sql, args = "SELECT network_id, container_id, doc FROM endpoints", []
    where = []
    if network_id is not None:
        where.append("network_id=?")
        args.append(network_id)
    if container_id is not None:
        where.append("container_id=?")
        args.append(container_id)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [Endpoint.from_row(r) for r in md.query(sql, args)]


def sandbox(md: Any, cid: str) -> Sandbox | None:
    raw = md.get_kv(SANDBOX_KEY + cid)
    return Sandbox.from_doc(json.loads(raw)) if raw else None


def sandboxes(md: Any) -> list[Sandbox]:
    rows = md.query("SELECT value FROM kv WHERE key LIKE ?", (SANDBOX_KEY + "%",))
    return [Sandbox.from_doc(json.loads(r["value"])) for r in rows]


# Writes (inside md.transaction()) -----------------------------------------------------------------
def put_network(tx: sqlite3.Connection, n: Network, *, insert: bool = False) -> None:
    doc = json.dumps(n.to_doc())
    if insert:
        tx.execute("INSERT INTO networks(id, name, doc) VALUES (?,?,?)", (n.id, n.name, doc))
    else:
        tx.execute("UPDATE networks SET doc=?, name=? WHERE id=?", (doc, n.name, n.id))


def delete_network(tx: sqlite3.Connection, nid: str) -> None:
    tx.execute("DELETE FROM networks WHERE id=?", (nid,))


def taken_ips(tx: sqlite3.Connection, nid: str) -> list[IPv4Address]:
    rows = tx.execute("SELECT doc FROM endpoints WHERE network_id=?", (nid,)).fetchall()
    return [IPv4Address(json.loads(r["doc"])["IPv4Address"]) for r in rows]


def put_endpoint(tx: sqlite3.Connection, ep: Endpoint) -> None:
    tx.execute("INSERT OR REPLACE INTO endpoints(network_id, container_id, doc) VALUES (?,?,?)",
               (ep.network_id, ep.container_id, json.dumps(ep.to_doc())))


def delete_endpoints(tx: sqlite3.Connection, cid: str, network_ids: Sequence[str] | None = None) -> None:
    if network_ids is None:
        tx.execute("DELETE FROM endpoints WHERE container_id=?", (cid,))
    else:
        for nid in network_ids:
            tx.execute("DELETE FROM endpoints WHERE container_id=? AND network_id=?", (cid, nid))


def put_sandbox(tx: sqlite3.Connection, sb: Sandbox) -> None:
    tx.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)",
               (SANDBOX_KEY + sb.cid, json.dumps(sb.to_doc())))


def delete_sandbox(tx: sqlite3.Connection, cid: str) -> None:
    tx.execute("DELETE FROM kv WHERE key=?", (SANDBOX_KEY + cid,))


def resolve(md: Any, ref: str) -> Network:
    """Full ID, exact name, or unique ID prefix → Network; Docker's 404 otherwise."""
    from workbench.errors import InvalidArgument, NotFound

    if ref == "default":
        ref = "bridge"
    n = network_by(md, id=ref) or network_by(md, name=ref)
    if n is not None:
        return n
    if ref and all(c in "0123456789abcdef" for c in ref):
        found = network_id_prefix(md, ref)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
    raise NotFound(f"network {ref} not found")
