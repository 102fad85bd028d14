"""Real namespaces, real bridges, busybox httpd/wget/ping: names, aliases, isolation, hot-plug, modes."""

from __future__ import annotations

import ipaddress
import os

import pytest

from workbench.errors import Forbidden, InvalidArgument


def test_peers_reach_each_other_by_name_alias_and_short_id(netsvc, boxes):
    netsvc.create("front")
    a, b = boxes("alpha"), boxes("beta")
    a.setup(netsvc, "front", {"front": {"aliases": ["web", "www.local"]}})
    b.setup(netsvc, "front")
    a.httpd()
    for host in ("alpha", "web", "www.local", a.cid[:12], a.ip("front")):
        assert b.fetch(host) == "hello from alpha\n", host
    # a started before b: its hosts file was rewritten in place when b joined
    assert "beta" in a.hosts.read_text()
    assert b.run("ping", "-c1", "-W2", "beta").returncode == 0          # itself, by name
    assert a.run("ping", "-c1", "-W2", "beta").returncode == 0


def test_loopback_default_route_and_interface(netsvc, boxes):
    a = boxes("solo")
    net = a.setup(netsvc)                     # default bridge network
    s = net.networks["bridge"]
    # Docker's default pools: a /16 of 172.17-31, else a /20 of 192.168 (when the host uses those)
    assert s["IPPrefixLen"] in (16, 20), s
    subnet = ipaddress.ip_network(f"{s['Gateway']}/{s['IPPrefixLen']}", strict=False)
    assert ipaddress.ip_address(s["IPAddress"]) in subnet and subnet.is_private
    assert s["MacAddress"] == "02:42:" + ":".join(f"{int(x):02x}" for x in s["IPAddress"].split("."))
    routes = a.run("ip", "route").stdout
    assert f"default via {s['Gateway']} dev eth0" in routes
    assert "mtu 1500" in a.run("ip", "link", "show", "eth0").stdout
    a.httpd()
    assert a.fetch("127.0.0.1") == "hello from solo\n"                    # lo is up
    assert a.run("ping", "-c1", "-W2", s["Gateway"]).returncode == 0      # bridge gateway


def test_default_bridge_has_no_names(netsvc, boxes):
    a, b = boxes("one"), boxes("two")
    a.setup(netsvc)
    b.setup(netsvc)
    a.httpd()
    assert b.fetch(a.ip("bridge")) == "hello from one\n"
    assert "one" not in b.hosts.read_text()
    with pytest.raises(InvalidArgument, match="network-scoped alias"):
        boxes("three").setup(netsvc, "bridge", {"bridge": {"aliases": ["x"]}})


def test_networks_are_isolated(netsvc, boxes):
    netsvc.create("red")
    netsvc.create("blue")
    r, b = boxes("red1"), boxes("blue1")
    r.setup(netsvc, "red")
    b.setup(netsvc, "blue")
    r.httpd()
    assert b.fetch(r.ip("red"), timeout=2) is None
    assert b.run("ping", "-c1", "-W1", r.ip("red")).returncode != 0
    assert "red1" not in b.hosts.read_text()
    r2 = boxes("red2")
    r2.setup(netsvc, "red")
    assert r2.fetch("red1") == "hello from red1\n"


def test_internal_network_reaches_peers_only(netsvc, boxes):
    netsvc.create("vault", internal=True)
    netsvc.create("open")
    v1, v2, o = boxes("v1"), boxes("v2"), boxes("o")
    v1.setup(netsvc, "vault")
    v2.setup(netsvc, "vault")
    o.setup(netsvc, "open")
    v1.httpd()
    o.httpd()
    assert v2.fetch("v1") == "hello from v1\n"
    assert v2.fetch(o.ip("open"), timeout=2) is None
    assert o.fetch(v1.ip("vault"), timeout=2) is None


def test_connect_and_disconnect_a_running_container(netsvc, boxes):
    netsvc.create("n1")
    netsvc.create("n2")
    a, b = boxes("aa"), boxes("bb")
    a.setup(netsvc, "n1")
    b.setup(netsvc, "n2")
    a.httpd()
    inode = b.hosts.stat().st_ino
    assert b.fetch(a.ip("n1"), timeout=2) is None
    netsvc.connect("n1", "bb", aliases=["bee"])           # by name, as the CLI sends it
    assert b.hosts.stat().st_ino == inode and "aa" in b.hosts.read_text()
    assert b.fetch("aa") == "hello from aa\n"
    assert "bee" in a.hosts.read_text()
    assert set(netsvc.container_networks(b.cid)) == {"n1", "n2"}
    assert netsvc.container_networks(b.cid)["n1"]["Aliases"] == ["bee", b.cid[:12]]
    with pytest.raises(Forbidden, match="already exists in network n1"):
        netsvc.connect("n1", b.cid)
    c = netsvc.inspect("n1")["Containers"]
    assert set(c) == {a.cid, b.cid} and c[b.cid]["Name"] == "bb"
    netsvc.disconnect("n1", b.cid)
    assert b.fetch(a.ip("n1"), timeout=2) is None
    assert "aa" not in b.hosts.read_text() and "bee" not in a.hosts.read_text()
    with pytest.raises(InvalidArgument, match="is not connected"):
        netsvc.disconnect("n1", b.cid)
    # disconnecting eth0 moves the default route to what is left
    netsvc.connect("n1", b.cid)
    netsvc.disconnect("n2", b.cid)
    assert b.fetch("aa") == "hello from aa\n"


def test_fixed_address_and_ip_range(netsvc, boxes):
    from tests.engine.network.conftest import free_subnet
    subnet = free_subnet()
    base = subnet.rsplit(".", 1)[0]
    netsvc.create("fixed", ipam_config=[{"Subnet": subnet, "IPRange": f"{base}.128/28", "Gateway": f"{base}.254"}])
    a, b = boxes("fa"), boxes("fb")
    a.setup(netsvc, "fixed", {"fixed": {"ipv4": f"{base}.7"}})
    b.setup(netsvc, "fixed")
    assert a.ip("fixed") == f"{base}.7"
    assert b.ip("fixed") == f"{base}.128"
    assert b.net.networks["fixed"]["Gateway"] == f"{base}.254"
    a.httpd()
    assert b.fetch("fa") == "hello from fa\n"
    with pytest.raises(Forbidden, match="Address already in use"):
        boxes("fc").setup(netsvc, "fixed", {"fixed": {"ipv4": f"{base}.7"}})
    with pytest.raises(InvalidArgument, match="user configured subnets"):
        netsvc.create("auto")
        boxes("fd").setup(netsvc, "auto", {"auto": {"ipv4": "172.30.0.9"}})


def test_multiple_networks_at_start(netsvc, boxes):
    netsvc.create("m1")
    netsvc.create("m2")
    a, b, c = boxes("ma"), boxes("mb"), boxes("mc")
    a.setup(netsvc, "m1", {"m2": {"aliases": ["both"]}})
    b.setup(netsvc, "m1")
    c.setup(netsvc, "m2")
    a.httpd()
    assert list(a.net.networks) == ["m1", "m2"]
    assert b.fetch("ma") == "hello from ma\n"
    assert c.fetch("both") == "hello from ma\n"
    links = a.run("ip", "-o", "link").stdout
    assert "eth0@" in links and "eth1@" in links


def test_host_none_and_container_modes(netsvc, boxes):
    a = boxes("owner")
    a.setup(netsvc)
    a.httpd(8080)
    j = boxes("joiner")
    net = j.setup(netsvc, f"container:{a.cid[:10]}")
    assert net.netns_path == a.net.netns_path and net.networks == {} and net.hostname == "owner"
    assert j.fetch("127.0.0.1", 8080) == "hello from owner\n"
    hid = os.urandom(32).hex()
    h = netsvc.setup_container(hid, "hostbox", "hostbox", "host", {}, {}, [], False)
    assert h.netns_path == "host" and list(h.networks) == ["host"] and h.networks["host"]["IPAddress"] == ""
    n = netsvc.setup_container(os.urandom(32).hex(), "nonebox", "nonebox", "none", {}, {}, [], False)
    assert n.netns_path is None and list(n.networks) == ["none"]
    assert "127.0.0.1\tlocalhost" in n.hosts
    assert netsvc.inspect("host")["Containers"][hid]["Name"] == "hostbox"
    netsvc.teardown_container(hid)
    assert netsvc.inspect("host")["Containers"] == {}
    with pytest.raises(InvalidArgument, match="non running container"):
        netsvc.setup_container(os.urandom(32).hex(), "x", "x", "container:nosuch", {}, {}, [], False)
