"""A container's side of networking: its namespace, interfaces, addresses, ports and hosts file.

`Sandboxes` runs on the network thread (see kernel.py) and is driven by NetworkService:

  setup(cid, ...)      allocate addresses (one SQLite transaction) → namespace → one veth per network
                       (eth0, eth1, ...) → published ports → /etc/hosts for it and its peers
  teardown(cid)        the reverse; idempotent, never leaves a namespace, address, port or rule
  attach / detach      hot-plug one network into / out of a running container
  reconcile(live)      after a daemon restart: drop everything of containers no longer running

Any failure inside setup undoes what was done (teardown) before the error goes up.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workbench.engine.network import bridge as br
from workbench.engine.network import dns, ipam, netns, ports
from workbench.engine.network import records as rec
from workbench.engine.network.firewall import BridgeRules, Firewall, PortMap
from workbench.engine.network.kernel import Kernel
from workbench.errors import Forbidden, InvalidArgument, NotFound

log = logging.getLogger("workbench.network")


@dataclass(frozen=True, slots=True)
class NetSetup:
    """What the container service needs to start a container.

    netns_path: a namespace path for the runtime to join, "host", or None (the runtime makes a
    fresh namespace with only `lo`: `--network none`). `networks` is NetworkSettings.Networks,
    `ports` NetworkSettings.Ports; `hosts`, `resolv_conf` and `hostname` are file contents/values.
    """

    netns_path: str | None
    networks: dict[str, dict[str, Any]]
    ports: dict[str, Any]
    hosts: str
    resolv_conf: str
    hostname: str


@dataclass(frozen=True, slots=True)
class EndpointRequest:
    aliases: tuple[str, ...] = ()
    ipv4: str | None = None


@dataclass
class Context:
    md: Any
    tag: str
    netns_dir: Path
    kernel: Kernel
    firewall: Firewall
    resolv_source: Path = Path("/etc/resolv.conf")
    reservations: dict[str, ports.Reservation] = field(default_factory=dict)
    bridges_ok: set[str] = field(default_factory=set)

    def ensure_bridge(self, n: rec.Network) -> None:
        if n.bridge in self.bridges_ok or n.subnet is None:
            return
        br.ensure_bridge(self.kernel.ipr, n.bridge, n.subnet.gateway, n.subnet.prefixlen, n.mtu,
                         owner=str(self.netns_dir.parent))
        self.bridges_ok.add(n.bridge)

    def sync_firewall(self) -> None:
        if not self.firewall.available:
            log.warning("nft not found: networks are not isolated and ports cannot be published")
            return
        rules = [BridgeRules(n.bridge, str(n.subnet.network), n.internal, n.masquerade)
                 for n in rec.networks(self.md) if n.driver == "bridge" and n.subnet is not None]
        maps = [m for sb in rec.sandboxes(self.md) for m in sb.ports]
        self.firewall.sync(rules, maps)


def endpoint_id(cid: str, network_id: str) -> str:
    return hashlib.sha256(f"endpoint:{cid}:{network_id}".encode()).hexdigest()


def endpoint_settings(n: rec.Network, ep: rec.Endpoint | None, cid: str,
                      req: EndpointRequest | None = None) -> dict[str, Any]:
    """Docker's EndpointSettings (NetworkSettings.Networks[name])."""
    aliases: list[str] | None = None
    if ep is not None and n.name != "bridge":
        aliases = [*ep.aliases, cid[:12]]
    elif req is not None and req.aliases:
        aliases = list(req.aliases)
    ipam_cfg = (ep.ipam_config if ep is not None else
                ({"IPv4Address": req.ipv4} if req is not None and req.ipv4 else None))
    return {"IPAMConfig": ipam_cfg, "Links": None, "Aliases": aliases, "NetworkID": n.id,
            "EndpointID": ep.endpoint_id if ep else (endpoint_id(cid, n.id) if n.driver != "bridge" else ""),
            "Gateway": ep.gateway if ep else "", "IPAddress": ep.ip if ep else "",
            "IPPrefixLen": ep.prefixlen if ep else 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "MacAddress": ep.mac if ep else "", "DriverOpts": None}


class Sandboxes:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.md = ctx.md

    # Setup --------------------------------------------------------------------------------------
    def setup(self, cid: str, name: str, hostname: str, mode: str,
              endpoints: Mapping[str, EndpointRequest], port_bindings: ports.PortBindings | None,
              exposed: Sequence[str], publish_all: bool, *, hosts_path: str = "",
              extra_hosts: Sequence[str] = (), domainname: str = "", dns_servers: Sequence[str] = (),
              dns_search: Sequence[str] = (), dns_options: Sequence[str] = ()) -> NetSetup:
        name = name.lstrip("/")
        resolv = dns.resolv_conf(self.ctx.resolv_source, dns_servers, dns_search, dns_options)
        mode = "bridge" if mode in ("", "default") else mode
        if rec.sandbox(self.md, cid) is not None:
            self.teardown(cid)
        if mode.startswith("container:"):
            return self._join(cid, name, hostname, mode.split(":", 1)[1], hosts_path, resolv)
        primary = rec.resolve(self.md, mode)
        if primary.driver in ("host", "null"):
            return self._simple(cid, name, hostname, primary, hosts_path, resolv, extra_hosts, domainname)
        wanted = self._wanted(primary, endpoints)
        sb = rec.Sandbox(cid, name, hostname, "bridge", str(self.ctx.netns_dir / cid), hosts_path, domainname,
                         tuple(extra_hosts), tuple(exposed))
        try:
            eps = self._allocate(sb, wanted)
            self._plumb(sb, eps)
            sb = self._publish(sb, eps[0], wanted[0][0], port_bindings, exposed, publish_all)
            hosts = self.hosts_for(sb)
            if hosts_path:
                dns.write_in_place(Path(hosts_path), hosts)
            self.refresh_hosts({e.network_id for e in eps}, skip=cid)
        except BaseException:
            self.teardown(cid)
            raise
        nets = {n.name: endpoint_settings(n, ep, cid) for (n, _), ep in zip(wanted, eps)}
        return NetSetup(sb.netns, nets, sb.ports_view, hosts, resolv, hostname)

    def _wanted(self, primary: rec.Network, endpoints: Mapping[str, EndpointRequest]
                ) -> list[tuple[rec.Network, EndpointRequest]]:
        wanted: list[tuple[rec.Network, EndpointRequest]] = []
        reqs = {rec.resolve(self.md, k).id: v for k, v in endpoints.items()}
        for n in [primary] + [rec.resolve(self.md, k) for k in endpoints]:
            if any(w.id == n.id for w, _ in wanted):
                continue
            if n.driver != "bridge":
                raise InvalidArgument(f"container cannot be connected to network {n.name}: it is a "
                                      f"{n.driver} network; use it as the only network")
            wanted.append((n, reqs.get(n.id, EndpointRequest())))
        return wanted

    def _simple(self, cid: str, name: str, hostname: str, n: rec.Network, hosts_path: str, resolv: str,
                extra_hosts: Sequence[str], domainname: str) -> NetSetup:
        mode = "host" if n.driver == "host" else "none"
        sb = rec.Sandbox(cid, name, hostname, mode, "", hosts_path, domainname, tuple(extra_hosts))
        with self.md.transaction() as tx:
            rec.put_sandbox(tx, sb)
        if mode == "host":
            try:
                hosts = Path("/etc/hosts").read_text()
            except OSError:
                hosts = dns.BASE_HOSTS
        else:
            hosts = dns.hosts_file([], extra_hosts=extra_hosts)
        return NetSetup("host" if mode == "host" else None, {n.name: endpoint_settings(n, None, cid)}, {},
                        hosts, resolv, hostname)

    def _join(self, cid: str, name: str, hostname: str, ref: str, hosts_path: str, resolv: str) -> NetSetup:
        other = self.find(ref)
        if other is None or (other.mode == "bridge" and not netns.is_netns(Path(other.netns))):
            raise InvalidArgument(f"cannot join network of a non running container: {ref}")
        if other.mode == "none":
            raise InvalidArgument(f"cannot join network of container {ref}: it has no network namespace "
                                  f"of this engine (--network none)")
        sb = rec.Sandbox(cid, name, other.hostname, f"container:{other.cid}", "", hosts_path)
        with self.md.transaction() as tx:
            rec.put_sandbox(tx, sb)
        path = "host" if other.mode == "host" else other.netns
        hosts = self.hosts_for(other)
        if hosts_path:
            dns.write_in_place(Path(hosts_path), hosts)
        return NetSetup(path, {}, {}, hosts, resolv, other.hostname)

    def find(self, ref: str) -> rec.Sandbox | None:
        """A running container's sandbox by full ID, name or unique ID prefix."""
        ref = ref.lstrip("/")
        found = rec.sandbox(self.md, ref)
        if found is not None:
            return found
        matches = [s for s in rec.sandboxes(self.md) if s.name == ref or s.cid.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    def _allocate(self, sb: rec.Sandbox, wanted: list[tuple[rec.Network, EndpointRequest]],
                  first_if: int = 0) -> list[rec.Endpoint]:
        eps = []
        with self.md.transaction() as tx:
            rec.put_sandbox(tx, sb)
            for i, (n, req) in enumerate(wanted):
                eps.append(self._allocate_one(tx, sb, n, req, f"eth{first_if + i}"))
        return eps

    def _allocate_one(self, tx: Any, sb: rec.Sandbox, n: rec.Network, req: EndpointRequest,
                      ifname: str) -> rec.Endpoint:
        row = tx.execute("SELECT doc FROM networks WHERE id=?", (n.id,)).fetchone()
        if row is None:
            raise NotFound(f"network {n.name} not found")
        n = rec.Network.from_doc(json.loads(row["doc"]))
        assert n.subnet is not None
        if req.aliases and n.name == "bridge":
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
        if req.ipv4 and n.name == "bridge":
            raise InvalidArgument("user specified IP address is supported on user defined networks only")
        if req.ipv4 and not n.user_subnet:
            raise InvalidArgument("user specified IP address is supported only when connecting to networks "
                                  "with user configured subnets")
        last = ipam.IPv4Address(n.last_ip) if n.last_ip else None
        ip = ipam.allocate(n.subnet, rec.taken_ips(tx, n.id), after=last, fixed=req.ipv4)
        if not req.ipv4:
            rec.put_network(tx, n.with_last_ip(ip))
        ep = rec.Endpoint(n.id, sb.cid, endpoint_id(sb.cid, n.id), sb.name, str(ip), n.subnet.prefixlen,
                          str(n.subnet.gateway), ipam.mac_for(ip), ifname, br.veth_name(self.ctx.tag, sb.cid, n.id),
                          tuple(req.aliases), {"IPv4Address": req.ipv4} if req.ipv4 else None)
        rec.put_endpoint(tx, ep)
        return ep

    def _plumb(self, sb: rec.Sandbox, eps: list[rec.Endpoint], *, fresh: bool = True) -> None:
        path = Path(sb.netns)
        if fresh:
            netns.remove(path)
            br.create_sandbox(path)
        for ep in eps:
            n = rec.network_by(self.md, id=ep.network_id)
            assert n is not None and n.subnet is not None
            self.ctx.ensure_bridge(n)
            p = br.Plug(ep.host_veth, ep.ifname, ipam.IPv4Address(ep.ip), ep.prefixlen,
                        ipam.IPv4Address(ep.gateway), ep.mac, n.mtu, default_route=ep.ifname == "eth0")
            with self.ctx.kernel.links_lock:
                self.ctx.kernel.forget(ep.host_veth)
                try:
                    br.plug(self.ctx.kernel.ipr, n.bridge, path, p)
                except OSError as err:
                    if err.errno != errno.ENODEV:
                        raise
                    self.ctx.bridges_ok.discard(n.bridge)      # deleted behind our back: recreate once
                    self.ctx.ensure_bridge(n)
                    br.plug(self.ctx.kernel.ipr, n.bridge, path, p)

    def _publish(self, sb: rec.Sandbox, ep: rec.Endpoint, n: rec.Network, port_bindings: ports.PortBindings | None,
                 exposed: Sequence[str], publish_all: bool) -> rec.Sandbox:
        bindings = ports.bindings_from(port_bindings, exposed, publish_all)
        maps: list[PortMap] = []
        if bindings and not n.internal:
            res = self.ctx.reservations.setdefault(sb.cid, ports.Reservation())
            maps = ports.reserve(bindings, ep.ip, endpoint=f"{sb.name} ({ep.endpoint_id})", reservation=res)
            sb = replace(sb, ports=tuple(maps))
            with self.md.transaction() as tx:     # recorded before the rules exist: teardown finds them
                rec.put_sandbox(tx, sb)
            self.ctx.firewall.add_ports(maps)
        sb = replace(sb, ports_view=ports.ports_view(exposed, maps, port_bindings))
        with self.md.transaction() as tx:
            rec.put_sandbox(tx, sb)
        return sb

    # Teardown -----------------------------------------------------------------------------------
    def teardown(self, cid: str) -> None:
        """Remove the container's veths, namespace, port rules and addresses. Idempotent."""
        sb = rec.sandbox(self.md, cid)
        eps = rec.endpoints(self.md, container_id=cid)
        res = self.ctx.reservations.pop(cid, None)
        if res is not None:
            res.close()
        if sb is not None and sb.ports:
            with contextlib.suppress(Exception):
                self.ctx.firewall.remove_ports(sb.ports)
        with self.md.transaction() as tx:
            rec.delete_endpoints(tx, cid)
            rec.delete_sandbox(tx, cid)
        netns.remove(self.ctx.netns_dir / cid)
        self.ctx.kernel.reap([ep.host_veth for ep in eps])
        if eps:
            with contextlib.suppress(Exception):
                self.refresh_hosts({ep.network_id for ep in eps}, skip=cid)

    # Hot plug -----------------------------------------------------------------------------------
    def attach(self, cid: str, n: rec.Network, req: EndpointRequest) -> dict[str, Any]:
        sb = rec.sandbox(self.md, cid)
        if sb is None or sb.mode != "bridge":
            raise Forbidden("container sharing network namespace with another container or host cannot be "
                            "connected to any other network")
        eps = rec.endpoints(self.md, container_id=cid)
        if any(ep.network_id == n.id for ep in eps):
            raise Forbidden(f"endpoint with name {sb.name} already exists in network {n.name}")
        used = {ep.ifname for ep in eps}
        ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        with self.md.transaction() as tx:
            ep = self._allocate_one(tx, sb, n, req, ifname)
        try:
            self._plumb(sb, [ep], fresh=False)
        except BaseException:
            with self.md.transaction() as tx:
                rec.delete_endpoints(tx, cid, [n.id])
            raise
        self._rewrite_hosts(sb)
        self.refresh_hosts({n.id}, skip=cid)
        return endpoint_settings(n, ep, cid)

    def detach(self, cid: str, n: rec.Network) -> bool:
        """Unplug network `n` from a running container; False when it had no endpoint there."""
        eps = rec.endpoints(self.md, container_id=cid)
        ep = next((e for e in eps if e.network_id == n.id), None)
        if ep is None:
            return False
        br.unplug(self.ctx.kernel.ipr, ep.host_veth)
        with self.md.transaction() as tx:
            rec.delete_endpoints(tx, cid, [n.id])
        sb = rec.sandbox(self.md, cid)
        rest = sorted((e for e in eps if e is not ep), key=lambda e: e.ifname)
        if sb is not None and ep.ifname == "eth0" and rest and netns.is_netns(Path(sb.netns)):
            with contextlib.suppress(Exception), netns.entered(sb.netns):
                from pyroute2 import IPRoute
                with IPRoute() as inner:
                    inner.route("replace", dst="0.0.0.0/0", gateway=rest[0].gateway)
        if sb is not None:
            self._rewrite_hosts(sb)
        self.refresh_hosts({n.id}, skip=cid)
        return True

    # Hosts files --------------------------------------------------------------------------------
    def hosts_for(self, sb: rec.Sandbox) -> str:
        eps = sorted(rec.endpoints(self.md, container_id=sb.cid), key=lambda e: e.ifname)
        own: list[dns.HostEntry] = []
        peers: list[dns.HostEntry] = []
        for i, ep in enumerate(eps):
            n = rec.network_by(self.md, id=ep.network_id)
            user = n is not None and n.name != "bridge"
            names = dns.own_names(sb.hostname, sb.domainname) if i == 0 else ()
            if user:
                names += tuple(x for x in (sb.name, *ep.aliases) if x not in names)
            own.append(dns.HostEntry(ep.ip, names))
            if not user:
                continue
            for other in rec.endpoints(self.md, network_id=ep.network_id):
                if other.container_id != sb.cid:
                    peers.append(dns.HostEntry(other.ip, (other.name, *other.aliases, other.container_id[:12])))
        return dns.hosts_file(own, peers, sb.extra_hosts)

    def _rewrite_hosts(self, sb: rec.Sandbox, text: str | None = None) -> None:
        if sb.hosts_path and Path(sb.hosts_path).parent.is_dir():
            with contextlib.suppress(OSError):
                dns.write_in_place(Path(sb.hosts_path), text if text is not None else self.hosts_for(sb))

    def refresh_hosts(self, network_ids: Iterable[str], skip: str = "") -> None:
        """Rewrite, in place, the hosts files of running containers on these networks."""
        cids: set[str] = set()
        for nid in network_ids:
            cids.update(ep.container_id for ep in rec.endpoints(self.md, network_id=nid))
        cids.discard(skip)
        all_sb = {s.cid: s for s in rec.sandboxes(self.md)}
        for c in cids:
            sb = all_sb.get(c)
            if sb is None:
                continue
            text = self.hosts_for(sb)
            self._rewrite_hosts(sb, text)
            for joined in all_sb.values():
                if joined.mode == f"container:{c}":
                    self._rewrite_hosts(joined, text)

    # Reconcile ----------------------------------------------------------------------------------
    def reconcile(self, live: Iterable[str]) -> None:
        """Drop every trace of containers not in `live`; rebuild what live ones need."""
        live = set(live)
        for sb in rec.sandboxes(self.md):
            if sb.cid not in live:
                self.teardown(sb.cid)
        stale = {ep.container_id for ep in rec.endpoints(self.md)} - live
        for cid in stale:
            self.teardown(cid)
        if self.ctx.netns_dir.is_dir():
            for f in self.ctx.netns_dir.iterdir():
                if f.name not in live:
                    netns.remove(f)
        nets = [n for n in rec.networks(self.md) if n.driver == "bridge"]
        ipr = self.ctx.kernel.ipr
        self.ctx.bridges_ok.clear()
        for n in nets:
            self.ctx.ensure_bridge(n)
        known = {n.bridge for n in nets}
        for name in br.links_with_prefix(ipr, br.bridge_glob(self.ctx.tag)):
            if name not in known:
                br.delete_link(ipr, name)
        wanted = {ep.host_veth for ep in rec.endpoints(self.md)}
        self.ctx.kernel.reap([v for v in br.links_with_prefix(ipr, br.veth_prefix(self.ctx.tag))
                              if v not in wanted], now=True)
        for sb in rec.sandboxes(self.md):
            if sb.ports and sb.cid not in self.ctx.reservations:
                res = self.ctx.reservations.setdefault(sb.cid, ports.Reservation())
                ports.rebind(sb.ports, res)
            if sb.mode == "bridge":
                self._rewrite_hosts(sb)
        with contextlib.suppress(Exception):
            self.ctx.sync_firewall()

    def is_live(self, sb: rec.Sandbox) -> bool:
        return sb.mode != "bridge" or netns.is_netns(Path(sb.netns))
