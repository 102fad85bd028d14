"""Kernel plumbing for the bridge driver, with pyroute2 only: bridges, veth pairs, addresses, routes.

Names are derived from the engine's per-root tag so two engines on two roots never touch each
other's devices (IFNAMSIZ leaves 15 characters):

  bridge of the default network "bridge"   wb<tag6>-0
  bridge of a user network                 wb<tag6>-<id6>
  host end of a container's veth           wv<tag6><hash7(cid, network id)>

Every function takes an open `IPRoute` so the caller decides which thread and namespace it runs in
(pyroute2's sync API must not run on a thread with a running asyncio loop).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from workbench.engine.network import netns

DEFAULT_MTU = 1500
OWNER_PREFIX = "workbench:"


def bridge_name(tag: str, network_id: str, default: bool = False) -> str:
    return f"wb{tag[:6]}-0" if default else f"wb{tag[:6]}-{network_id[:6]}"


def bridge_glob(tag: str) -> str:
    return f"wb{tag[:6]}-"


def veth_name(tag: str, cid: str, network_id: str) -> str:
    h = hashlib.sha256(f"{cid}:{network_id}".encode()).hexdigest()[:7]
    return f"wv{tag[:6]}{h}"


def veth_prefix(tag: str) -> str:
    return f"wv{tag[:6]}"


@dataclass(frozen=True, slots=True)
class Plug:
    """One container interface: the veth pair, its address and routes."""

    host_veth: str
    ifname: str
    address: ipaddress.IPv4Address
    prefixlen: int
    gateway: ipaddress.IPv4Address
    mac: str
    mtu: int = DEFAULT_MTU
    default_route: bool = True


def _index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def links_with_prefix(ipr: Any, prefix: str) -> list[str]:
    return [n for link in ipr.get_links() if (n := link.get_attr("IFLA_IFNAME") or "").startswith(prefix)]


def ensure_bridge(ipr: Any, name: str, gateway: ipaddress.IPv4Address, prefixlen: int,
                  mtu: int = DEFAULT_MTU, owner: str = "") -> int:
    """Create (or adopt) bridge `name` with `gateway/prefixlen` on it, up. Idempotent.

    `owner` (the engine's run dir) goes into the link's alias as "workbench:<run dir>", so an engine
    can later recognise bridges whose root has been deleted (cleanup.gc_orphans)."""
    idx = _index(ipr, name)
    if idx is None:
        try:
            ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
        except NetlinkError as err:
            if err.code != errno.EEXIST:
                raise
        idx = _index(ipr, name)
        assert idx is not None
    have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(family=2, index=idx)}
    for addr, plen in have - {(str(gateway), prefixlen)}:
        ipr.addr("del", index=idx, address=addr, prefixlen=plen)
    if (str(gateway), prefixlen) not in have:
        ipr.addr("add", index=idx, address=str(gateway), prefixlen=prefixlen)
    if owner:
        ipr.link("set", index=idx, state="up", mtu=mtu, ifalias=f"{OWNER_PREFIX}{owner}")
    else:
        ipr.link("set", index=idx, state="up", mtu=mtu)
    _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
    _sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "1")
    return idx


def delete_link(ipr: Any, name: str) -> bool:
    """Delete a link by name; False when it was not there."""
    idx = _index(ipr, name)
    if idx is None:
        return False
    try:
        ipr.link("del", index=idx)
    except NetlinkError as err:
        if err.code not in (errno.ENODEV, errno.ENOENT):
            raise
        return False
    return True


def link_exists(ipr: Any, name: str) -> bool:
    return _index(ipr, name) is not None


def create_sandbox(path: Path) -> None:
    """A fresh namespace at `path`: IPv6 off for new interfaces, `lo` up."""
    netns.create(path)
    try:
        with netns.entered(path):
            _sysctl("net/ipv6/conf/default/disable_ipv6", "1")
            from pyroute2 import IPRoute
            with IPRoute() as ipr:
                ipr.link("set", index=1, state="up")
    except BaseException:
        netns.remove(path)
        raise


def plug(ipr: Any, bridge: str, sandbox: Path, p: Plug) -> None:
    """Create the veth pair `p.host_veth` ⇄ `p.ifname` (inside `sandbox`), enslave, address, route."""
    br = _index(ipr, bridge)
    if br is None:
        raise OSError(errno.ENODEV, f"bridge {bridge} does not exist")
    if _index(ipr, p.host_veth) is not None:      # left over from an earlier life of this container
        delete_link(ipr, p.host_veth)
    fd = os.open(sandbox, os.O_RDONLY)
    try:
        # enslaved and up in the same request: two netlink round trips fewer on `start`'s path
        ipr.link("add", ifname=p.host_veth, kind="veth", mtu=p.mtu, master=br, state="up",
                 peer={"ifname": p.ifname, "net_ns_fd": fd, "address": p.mac, "mtu": p.mtu})
    finally:
        os.close(fd)
    try:
        with netns.entered(sandbox):
            from pyroute2 import IPRoute
            with IPRoute() as inner:
                idx = _index(inner, p.ifname)
                inner.addr("add", index=idx, address=str(p.address), prefixlen=p.prefixlen)
                inner.link("set", index=idx, state="up")
                if p.default_route:
                    inner.route("replace", dst="0.0.0.0/0", gateway=str(p.gateway))
    except BaseException:
        with contextlib.suppress(Exception):
            delete_link(ipr, p.host_veth)
        raise


def unplug(ipr: Any, host_veth: str) -> None:
    """Remove a veth pair by its host end (both ends go). Idempotent."""
    delete_link(ipr, host_veth)


def _sysctl(key: str, value: str) -> None:
    with contextlib.suppress(OSError):
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(value)
