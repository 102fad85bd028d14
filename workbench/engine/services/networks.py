"""NetworkService: Docker's networks (bridge driver) and each container's place on them.

Networks: create / inspect / list / remove / prune / connect / disconnect, with the predefined
`bridge`, `host` and `none` present from the first call. Containers: `setup_container` before the
runtime starts a container, `teardown_container` after it exits (or is removed), `reconcile` when
the daemon starts. Everything runs on the engine's network thread (network/kernel.py), so the
methods may be called from any thread, the event loop's included (they block while they run:
API handlers call them through `asyncio.to_thread`).

State: SQLite (networks, endpoints, kv sandboxes — see network/records.py); kernel objects are
named after `state_tag` (one per daemon root), so engines on different roots never collide.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from workbench.engine.network import bridge as br
from workbench.engine.network import ipam, netns
from workbench.engine.network import records as rec
from workbench.engine.network.cleanup import gc_orphans
from workbench.engine.network.firewall import Firewall
from workbench.engine.network.kernel import Kernel
from workbench.engine.network.sandboxes import Context, EndpointRequest, NetSetup, Sandboxes, endpoint_settings
from workbench.errors import Conflict, Forbidden, InvalidArgument, NotFound

__all__ = ["EndpointRequest", "NetSetup", "NetworkService"]

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_FILTERS = {"name", "id", "label", "driver", "type", "scope", "dangling"}
_TRUE = {"1", "true", "True"}


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    """Host-wide lock: picking a subnet and bringing its bridge up is atomic across engines."""
    d = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")
    with open(d / "workbench-network.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


class NetworkService:
    def __init__(self, md: Any, run_dir: Path, state_tag: str, *, containers: Any = None,
                 pools: Sequence[ipam.PoolSpec] = ipam.DEFAULT_POOLS,
                 resolv_conf: Path = Path("/etc/resolv.conf")) -> None:
        """`containers`, when given, resolves container references for connect/disconnect and keeps
        their NetworkSettings.Networks current: it needs `get(ref) -> doc` and `save(doc)`."""
        self.md = md
        self.run_dir = Path(run_dir)
        self.tag = state_tag
        self.pools = tuple(pools)
        self.containers = containers
        self.kernel = Kernel()
        self.firewall = Firewall(state_tag)
        self.ctx = Context(md, state_tag, self.run_dir / "netns", self.kernel, self.firewall, Path(resolv_conf))
        self.sandboxes = Sandboxes(self.ctx)
        self._ready = False

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self.kernel.call(self._ready_then, fn, args, kwargs)

    def _ready_then(self, fn: Any, args: Any, kwargs: Any) -> Any:
        if not self._ready:
            self._start()
        return fn(*args, **kwargs)

    def _start(self) -> None:
        netns.prepare_dir(self.ctx.netns_dir)
        with contextlib.suppress(Exception):
            gc_orphans(self.kernel.ipr)
        for name in rec.PREDEFINED:
            if rec.network_by(self.md, name=name) is None:
                self._create_predefined(name)
        for n in rec.networks(self.md):
            if n.driver == "bridge":
                self.ctx.ensure_bridge(n)
        self.ctx.sync_firewall()
        self._ready = True

    def _create_predefined(self, name: str) -> None:
        nid = secrets.token_hex(32)
        if name != "bridge":
            n = rec.Network(nid, name, rec.DRIVER_OF[name], _now())
        else:
            bridge = br.bridge_name(self.tag, nid, default=True)
            opts = {"com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                    "com.docker.network.bridge.name": bridge, "com.docker.network.driver.mtu": "1500"}
            n = rec.Network(nid, name, "bridge", _now(), bridge, options=opts)
        self._insert(n, None, None, None)

    def _insert(self, n: rec.Network, subnet: str | None, gateway: str | None, ip_range: str | None) -> None:
        if n.driver != "bridge":
            with self.md.transaction() as tx:
                rec.put_network(tx, n, insert=True)
            return
        with _host_lock():
            used = [x.subnet.network for x in rec.networks(self.md) if x.subnet is not None]
            plan = ipam.plan(subnet, gateway, ip_range, used, ipam.host_routes(), self.pools)
            n = replace(n, subnet=plan, user_subnet=bool(subnet))
            self.ctx.ensure_bridge(n)
            try:
                with self.md.transaction() as tx:
                    rec.put_network(tx, n, insert=True)
            except Exception as err:
                self.ctx.bridges_ok.discard(n.bridge)
                br.delete_link(self.kernel.ipr, n.bridge)
                if "UNIQUE" in str(err):
                    raise Conflict(f"network with name {n.name} already exists") from None
                raise

    # Networks -----------------------------------------------------------------------------------
    def create(self, name: str, *, driver: str = "bridge", ipam_config: Sequence[Mapping[str, Any]] = (),
               ipam_driver: str = "default", ipam_options: Mapping[str, str] | None = None,
               internal: bool = False, attachable: bool = False, enable_ipv6: bool = False,
               labels: Mapping[str, str] | None = None, options: Mapping[str, str] | None = None,
               check_duplicate: bool = True) -> str:
        """Create a bridge network; returns its ID. 409 on a duplicate name."""
        return self._call(self._create, name, driver or "bridge", list(ipam_config), ipam_driver or "default",
                          dict(ipam_options or {}), internal, attachable, enable_ipv6, dict(labels or {}),
                          dict(options or {}))

    def _create(self, name: str, driver: str, cfgs: list[Mapping[str, Any]], ipam_driver: str,
                ipam_options: dict[str, str], internal: bool, attachable: bool, enable_ipv6: bool,
                labels: dict[str, str], options: dict[str, str]) -> str:
        if not name or not _NAME.match(name):
            raise InvalidArgument(f'invalid network name "{name}": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*')
        if rec.network_by(self.md, name=name) is not None:
            raise Conflict(f"network with name {name} already exists")
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        if ipam_driver != "default":
            raise NotFound(f'plugin "{ipam_driver}" not found')
        if enable_ipv6:
            raise InvalidArgument("IPv6 networking is not supported by this engine")
        v4 = [c for c in cfgs if ":" not in str(c.get("Subnet") or "")]
        if len(v4) != len(cfgs):
            raise InvalidArgument("IPv6 subnets are not supported by this engine")
        if len(v4) > 1:
            raise InvalidArgument("only one IPv4 IPAM config is supported per network")
        c = v4[0] if v4 else {}
        nid = secrets.token_hex(32)
        taken = {n.bridge for n in rec.networks(self.md)}
        while br.bridge_name(self.tag, nid) in taken:
            nid = secrets.token_hex(32)
        n = rec.Network(nid, name, "bridge", _now(), br.bridge_name(self.tag, nid), internal=internal,
                        attachable=attachable, options=options, labels=labels, ipam_options=ipam_options)
        self._insert(n, c.get("Subnet") or None, c.get("Gateway") or None, c.get("IPRange") or None)
        self.ctx.sync_firewall()
        return nid

    def inspect(self, ref: str, verbose: bool = False) -> dict[str, Any]:
        """Docker's network JSON, with `Containers` holding the running containers on it."""
        return self._call(self._inspect, ref)

    def _inspect(self, ref: str) -> dict[str, Any]:
        n = rec.resolve(self.md, ref)
        return self._doc(n, self._containers_of(n))

    def _doc(self, n: rec.Network, containers: dict[str, Any]) -> dict[str, Any]:
        doc = {k: v for k, v in n.to_doc().items() if not k.startswith("_")}
        doc["Containers"] = containers
        return doc

    def _containers_of(self, n: rec.Network) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if n.driver == "bridge":
            for ep in rec.endpoints(self.md, network_id=n.id):
                out[ep.container_id] = {"Name": ep.name, "EndpointID": ep.endpoint_id, "MacAddress": ep.mac,
                                        "IPv4Address": f"{ep.ip}/{ep.prefixlen}", "IPv6Address": ""}
            return out
        mode = "host" if n.driver == "host" else "none"
        for sb in rec.sandboxes(self.md):
            if sb.mode == mode:
                out[sb.cid] = {"Name": sb.name, "EndpointID": endpoint_settings(n, None, sb.cid)["EndpointID"],
                               "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}
        return out

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
        """GET /networks: filters name, id, label, driver, type (custom|builtin), scope, dangling."""
        return self._call(self._list, {k: list(v) for k, v in (filters or {}).items()})

    def _list(self, f: dict[str, list[str]]) -> list[dict[str, Any]]:
        for key in f:
            if key not in _FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        for t in f.get("type", []):
            if t not in ("custom", "builtin"):
                raise InvalidArgument(f"invalid filter: 'type'='{t}'")
        busy = {ep.network_id for ep in rec.endpoints(self.md)}
        return [self._doc(n, {}) for n in rec.networks(self.md) if _matches(n, f, n.id in busy)]

    def remove(self, ref: str) -> None:
        """DELETE /networks/{id}: 403 for predefined networks and networks with running containers."""
        self._call(self._remove, ref)

    def _remove(self, ref: str) -> None:
        n = rec.resolve(self.md, ref)
        if n.predefined:
            raise Forbidden(f"{n.name} is a pre-defined network and cannot be removed")
        if rec.endpoints(self.md, network_id=n.id):
            raise Forbidden(f"error while removing network: network {n.name} id {n.id} has active endpoints")
        with self.md.transaction() as tx:
            rec.delete_network(tx, n.id)
        self.ctx.bridges_ok.discard(n.bridge)
        br.delete_link(self.kernel.ipr, n.bridge)
        self.ctx.sync_firewall()

    def prune(self, filters: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
        """Remove custom networks with no running container → {"NetworksDeleted": [names]}."""
        return self._call(self._prune, {k: list(v) for k, v in (filters or {}).items()})

    def _prune(self, f: dict[str, list[str]]) -> dict[str, Any]:
        for key in f:
            if key not in ("label", "label!", "until"):
                raise InvalidArgument(f"invalid filter '{key}'")
        busy = {ep.network_id for ep in rec.endpoints(self.md)}
        deleted = []
        for n in rec.networks(self.md):
            if n.predefined or n.id in busy or not _labels_match(n.labels, f.get("label", [])):
                continue
            if f.get("label!") and _labels_match(n.labels, f["label!"], any_of=True):
                continue
            if f.get("until") and not _before(n.created, f["until"][0]):
                continue
            self._remove(n.id)
            deleted.append(n.name)
        return {"NetworksDeleted": deleted or None}

    # Connect / disconnect -----------------------------------------------------------------------
    def connect(self, ref: str, container: str, *, aliases: Sequence[str] = (), ipv4: str | None = None) -> None:
        """Attach a container: hot-plugged when it runs, recorded for its next start otherwise."""
        self._call(self._connect, ref, container, EndpointRequest(tuple(aliases or ()), ipv4 or None))

    def _connect(self, ref: str, container: str, req: EndpointRequest) -> None:
        n = rec.resolve(self.md, ref)
        if n.driver != "bridge":
            raise Forbidden(f"container cannot be disconnected from host network or connected to {n.name} network")
        doc = self._container(container)
        cid = self._cid(doc, container)
        mode = ((doc or {}).get("HostConfig") or {}).get("NetworkMode") or "default"
        sb = rec.sandbox(self.md, cid)
        if mode in ("host", "none") or mode.startswith("container:") or (sb is not None and sb.mode != "bridge"):
            raise Forbidden("container sharing network namespace with another container or host cannot be "
                            "connected to any other network")
        if sb is not None and self.sandboxes.is_live(sb):
            settings = self.sandboxes.attach(cid, n, req)
        elif doc is None:
            raise NotFound(f"No such container: {container}")
        else:
            known = (doc.get("NetworkSettings") or {}).get("Networks") or {}
            if n.name in known:
                raise Forbidden(f"endpoint with name {doc['Name'].lstrip('/')} already exists in network {n.name}")
            if req.aliases and n.name == "bridge":
                raise InvalidArgument("network-scoped alias is supported only for containers in user defined "
                                      "networks")
            settings = endpoint_settings(n, None, cid, req)
        if doc is not None:
            doc.setdefault("NetworkSettings", {}).setdefault("Networks", {})[n.name] = settings
            self.containers.save(doc)

    def disconnect(self, ref: str, container: str, *, force: bool = False) -> None:
        """Detach a container from a network (unplugged at once when it runs)."""
        self._call(self._disconnect, ref, container, force)

    def _disconnect(self, ref: str, container: str, force: bool) -> None:
        n = rec.resolve(self.md, ref)
        doc = self._container(container)
        cid = self._cid(doc, container)
        plugged = self.sandboxes.detach(cid, n)
        known = ((doc or {}).get("NetworkSettings") or {}).get("Networks") or {}
        if not plugged and n.name not in known and not force:
            raise InvalidArgument(f"container {cid} is not connected to network {n.name}")
        if doc is not None and n.name in known:
            del doc["NetworkSettings"]["Networks"][n.name]
            self.containers.save(doc)

    def _cid(self, doc: dict[str, Any] | None, ref: str) -> str:
        if doc is not None:
            return str(doc["Id"])
        sb = self.sandboxes.find(ref)          # no container service wired: running containers only
        return sb.cid if sb is not None else ref

    def _container(self, ref: str) -> dict[str, Any] | None:
        if self.containers is None:
            return None
        return self.containers.get(ref)

    # Containers ---------------------------------------------------------------------------------
    def setup_container(self, cid: str | Mapping[str, Any], name: str = "", hostname: str = "",
                        mode: str = "default", endpoints: Mapping[str, Any] | None = None,
                        port_bindings: Mapping[str, Any] | None = None, exposed: Sequence[str] = (),
                        publish_all: bool = False, *, hosts_path: str = "", extra_hosts: Sequence[str] = (),
                        domainname: str = "", dns: Sequence[str] = (), dns_search: Sequence[str] = (),
                        dns_options: Sequence[str] = ()) -> NetSetup:
        """Give a container its network before it starts (see NetSetup).

        Args:
            cid: the container ID (or, for convenience, the whole container doc: see setup_from_doc).
            name: container name; hostname: its hostname.
            mode: HostConfig.NetworkMode: "default"/"bridge", a network name or ID, "host", "none",
                "container:<id or name>".
            endpoints: further networks {name or id: {"aliases": [...], "ipv4": "a.b.c.d" | None}}
                (or EndpointRequest values); the `mode` network may appear here for its aliases.
            port_bindings: HostConfig.PortBindings; exposed: ExposedPorts keys ("80/tcp");
                publish_all: HostConfig.PublishAllPorts.
            hosts_path: the container's hosts file (bind-mounted as /etc/hosts): written now and
                rewritten in place when peers come and go.
        Raises:
            NotFound (unknown network), InvalidArgument, Forbidden ("Address already in use"),
            Internal (port already allocated).
        """
        if isinstance(cid, Mapping):
            return self.setup_from_doc(cid, hostname or None)
        reqs = {k: _request(v) for k, v in (endpoints or {}).items()}
        return self._call(self.sandboxes.setup, cid, name, hostname or cid[:12], mode or "default", reqs,
                          port_bindings, list(exposed), publish_all, hosts_path=str(hosts_path or ""),
                          extra_hosts=list(extra_hosts or ()), domainname=domainname, dns_servers=list(dns or ()),
                          dns_search=list(dns_search or ()), dns_options=list(dns_options or ()))

    def setup_from_doc(self, doc: Mapping[str, Any], hostname: str | None = None) -> NetSetup:
        """setup_container from a Docker-shaped container doc (Config, HostConfig, NetworkingConfig,
        NetworkSettings.Networks for networks connected while it was stopped, HostsPath)."""
        cfg, host = doc.get("Config") or {}, doc.get("HostConfig") or {}
        eps: dict[str, Any] = {}
        for k, v in ((doc.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).items():
            eps[k] = v
        for k, v in ((doc.get("NetworkSettings") or {}).get("Networks") or {}).items():
            if k not in eps and self._call(lambda r: rec.network_by(self.md, name=r), k) is not None:
                eps[k] = v
        mode = host.get("NetworkMode") or "default"
        if mode in ("host", "none") or mode.startswith("container:"):
            eps = {}
        cid = doc["Id"]
        eps = {k: _request(v, cid) for k, v in eps.items()}
        return self.setup_container(cid, str(doc.get("Name") or "").lstrip("/"),
                                    hostname or cfg.get("Hostname") or cid[:12], mode, eps,
                                    host.get("PortBindings") or {}, list(cfg.get("ExposedPorts") or {}),
                                    bool(host.get("PublishAllPorts")), hosts_path=str(doc.get("HostsPath") or ""),
                                    extra_hosts=host.get("ExtraHosts") or (), domainname=cfg.get("Domainname") or "",
                                    dns=host.get("Dns") or (), dns_search=host.get("DnsSearch") or (),
                                    dns_options=host.get("DnsOptions") or ())

    def teardown_container(self, cid: str) -> None:
        """Remove the container's veths, namespace, port rules and addresses. Idempotent, cheap."""
        self._call(self.sandboxes.teardown, cid)

    def reconcile(self, live_container_ids: Sequence[str]) -> None:
        """At daemon start: remove whatever a killed daemon left for containers not in the list."""
        self._call(self.sandboxes.reconcile, list(live_container_ids))

    def container_networks(self, cid: str) -> dict[str, dict[str, Any]]:
        """The current NetworkSettings.Networks of a running container (after connect/disconnect)."""
        def run() -> dict[str, dict[str, Any]]:
            out = {}
            for ep in rec.endpoints(self.md, container_id=cid):
                n = rec.network_by(self.md, id=ep.network_id)
                if n is not None:
                    out[n.name] = endpoint_settings(n, ep, cid)
            return out
        return self._call(run)

    # Lifecycle ----------------------------------------------------------------------------------
    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until deferred veth deletions are done (tests, shutdown)."""
        return self.kernel.settle(timeout)

    def close(self) -> None:
        """Stop the network thread. Kernel state stays: running containers keep their network."""
        self.kernel.close()

    def destroy(self) -> None:
        """Remove every kernel object of this engine (containers' networks, bridges, rules). For tests
        and for a root that is being deleted; the metadata rows stay."""
        def run() -> None:
            for sb in rec.sandboxes(self.md):
                self.sandboxes.teardown(sb.cid)
            for name in br.links_with_prefix(self.kernel.ipr, br.bridge_glob(self.tag)):
                br.delete_link(self.kernel.ipr, name)
            self.ctx.bridges_ok.clear()
            self.firewall.destroy()
            self.kernel.settle()
            netns.release_dir(self.ctx.netns_dir)
            self._ready = False
        self.kernel.call(run)
        self.close()


def _request(v: Any, cid: str = "") -> EndpointRequest:
    if isinstance(v, EndpointRequest):
        return v
    v = v or {}
    aliases = v.get("aliases") if "aliases" in v else v.get("Aliases")
    ipv4 = v.get("ipv4") if "ipv4" in v else (v.get("IPAMConfig") or {}).get("IPv4Address")
    return EndpointRequest(tuple(a for a in (aliases or ()) if a != cid[:12] or not cid), ipv4 or None)


def _labels_match(labels: Mapping[str, str], wanted: Sequence[str], any_of: bool = False) -> bool:
    def one(w: str) -> bool:
        k, eq, v = w.partition("=")
        return k in labels and (not eq or labels[k] == v)
    return any(one(w) for w in wanted) if any_of else all(one(w) for w in wanted)


def _before(created: str, until: str) -> bool:
    from datetime import datetime
    try:
        limit = float(until)
    except ValueError:
        try:
            limit = datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise InvalidArgument(f"invalid filter 'until={until}'") from None
    made = datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00").timestamp()
    return made < limit


def _matches(n: rec.Network, f: dict[str, list[str]], busy: bool) -> bool:
    if f.get("name") and not any(_search(v, n.name) for v in f["name"]):
        return False
    if f.get("id") and not any(n.id.startswith(v) for v in f["id"]):
        return False
    if f.get("label") and not _labels_match(n.labels, f["label"]):
        return False
    if f.get("driver") and n.driver not in f["driver"]:
        return False
    if f.get("scope") and "local" not in f["scope"]:
        return False
    if f.get("type") and ("builtin" if n.predefined else "custom") not in f["type"]:
        return False
    if f.get("dangling"):
        want = f["dangling"][0] in _TRUE
        if want != (not n.predefined and not busy):
            return False
    return True


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return pattern in text
