"""IPv4 address management: subnet pools for new networks and addresses inside a network.

Pure functions over `ipaddress` values, plus `host_routes()` which reads the host's IPv4 routes with
pyroute2. The caller (NetworkService) holds the state in SQLite and calls these inside the write
transaction that records the result, so two allocations can never pick the same address.

Pools follow Docker's defaults: 172.17.0.0/16 first (the default bridge), then 172.18.0.0/16 ..
172.31.0.0/16, then 192.168.0.0/16 cut into /20s. A candidate is skipped when it overlaps a subnet
already used by this engine or any route on the host (a real docker0, another engine's bridges,
the VM's own uplink), so the engine never shadows a route it does not own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from workbench.errors import Forbidden, InvalidArgument, Unavailable

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """A base network cut into subnets of `size` prefix length."""

    base: str
    size: int

    def candidates(self) -> Iterable[IPv4Network]:
        return ipaddress.IPv4Network(self.base).subnets(new_prefix=self.size)


DEFAULT_POOLS: tuple[PoolSpec, ...] = (
    PoolSpec("172.17.0.0/16", 16),
    PoolSpec("172.18.0.0/15", 16),
    PoolSpec("172.20.0.0/14", 16),
    PoolSpec("172.24.0.0/13", 16),
    PoolSpec("192.168.0.0/16", 20),
)


@dataclass(frozen=True, slots=True)
class Subnet:
    """One network's address plan: subnet, gateway and the range dynamic addresses come from."""

    network: IPv4Network
    gateway: IPv4Address
    ip_range: IPv4Network | None = None

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    def to_doc(self) -> dict[str, str]:
        out = {"Subnet": str(self.network), "Gateway": str(self.gateway)}
        if self.ip_range is not None:
            out["IPRange"] = str(self.ip_range)
        return out

    @classmethod
    def from_doc(cls, doc: dict[str, str]) -> Subnet:
        rng = doc.get("IPRange")
        return cls(ipaddress.IPv4Network(doc["Subnet"]), ipaddress.IPv4Address(doc["Gateway"]),
                   ipaddress.IPv4Network(rng) if rng else None)


def host_routes() -> list[IPv4Network]:
    """Every IPv4 destination routed on the host (main table and connected), default route excluded."""
    from pyroute2 import IPRoute

    out: list[IPv4Network] = []
    with IPRoute() as ipr:
        for r in ipr.get_routes(family=2, table=254):
            dst, plen = r.get_attr("RTA_DST"), r["dst_len"]
            if dst and plen:
                out.append(ipaddress.IPv4Network(f"{dst}/{plen}", strict=False))
        for a in ipr.get_addr(family=2):
            addr = a.get_attr("IFA_ADDRESS")
            if addr and not addr.startswith("127."):
                out.append(ipaddress.IPv4Network(f"{addr}/{a['prefixlen']}", strict=False))
    return out


def pick_subnet(used: Iterable[IPv4Network], routes: Iterable[IPv4Network],
                pools: Iterable[PoolSpec] = DEFAULT_POOLS) -> IPv4Network:
    """The first pool subnet overlapping neither `used` (this engine) nor `routes` (the host)."""
    taken = [*used, *routes]
    for pool in pools:
        for cand in pool.candidates():
            if not any(cand.overlaps(t) for t in taken):
                return cand
    raise Unavailable("could not find an available, non-overlapping IPv4 address pool among the "
                      "defaults to assign to the network")


def plan(subnet: str | None, gateway: str | None, ip_range: str | None,
         used: Iterable[IPv4Network], routes: Iterable[IPv4Network],
         pools: Iterable[PoolSpec] = DEFAULT_POOLS) -> Subnet:
    """Validate a user's IPAM config (or pick one from the pools) → Subnet."""
    used = list(used)
    if subnet:
        try:
            net = ipaddress.IPv4Network(subnet, strict=False)
        except ValueError as err:
            raise InvalidArgument(f"invalid subnet {subnet}: {err}") from None
        if net.prefixlen > 30:
            raise InvalidArgument(f"invalid subnet {subnet}: too small for a bridge network")
        if any(net.overlaps(u) for u in used):
            raise Forbidden("Pool overlaps with other one on this address space")
    else:
        if gateway or ip_range:
            raise InvalidArgument("ip-range or gateway specified without a subnet")
        net = pick_subnet(used, routes, pools)
    rng = None
    if ip_range:
        try:
            rng = ipaddress.IPv4Network(ip_range, strict=False)
        except ValueError as err:
            raise InvalidArgument(f"invalid ip-range {ip_range}: {err}") from None
        if not rng.subnet_of(net):
            raise InvalidArgument(f"invalid ip-range {ip_range}: it must be within subnet {net}")
    if gateway:
        try:
            gw = ipaddress.IPv4Address(gateway.split("/")[0])
        except ValueError as err:
            raise InvalidArgument(f"invalid gateway {gateway}: {err}") from None
        if gw not in net or gw in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"invalid gateway {gateway}: not a host address of subnet {net}")
    else:
        gw = net.network_address + 1
    return Subnet(net, gw, rng)


def allocate(sub: Subnet, taken: Iterable[IPv4Address], *, after: IPv4Address | None = None,
             fixed: IPv4Address | str | None = None) -> IPv4Address:
    """One free address: `fixed` if given (checked), else the next free one after `after`.

    Sequential with wrap-around, as Docker's allocator: a released address is not handed out again
    until the range has been walked once, which keeps stale ARP entries out of the way.
    """
    busy = set(taken) | {sub.gateway, sub.network.network_address, sub.network.broadcast_address}
    if fixed is not None:
        try:
            ip = ipaddress.IPv4Address(str(fixed).split("/")[0])
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {fixed}") from None
        if ip not in sub.network:
            raise InvalidArgument(f"no configured subnet or ip-range contain the IP address {ip}")
        if ip in busy:
            raise Forbidden("Address already in use")
        return ip
    rng = sub.ip_range or sub.network
    first, last = int(rng.network_address), int(rng.broadcast_address)
    size = last - first + 1
    start = int(after) + 1 if after is not None and first <= int(after) <= last else first
    for i in range(size):
        cand = ipaddress.IPv4Address(first + (start - first + i) % size)
        if cand not in busy:
            return cand
    raise Unavailable(f"no available IPv4 addresses on this network's address pools: {sub.network}")


def mac_for(ip: IPv4Address) -> str:
    """Docker's MAC address for an IPv4 endpoint: 02:42 followed by the address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)
