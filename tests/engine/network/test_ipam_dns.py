"""Pure parts: subnet pools around host routes, sequential allocation, hosts and resolv.conf text."""

from __future__ import annotations

import ipaddress

import pytest

from workbench.engine.network import dns, ipam
from workbench.errors import Forbidden, InvalidArgument, Unavailable

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address


def test_pool_skips_host_routes_and_used_subnets():
    assert ipam.pick_subnet([], []) == N("172.17.0.0/16")
    docker0 = [N("172.17.0.0/16"), N("172.18.5.0/24")]              # a real docker0 and some VPN route
    assert ipam.pick_subnet([], docker0) == N("172.19.0.0/16")
    assert ipam.pick_subnet([N("172.19.0.0/16")], docker0) == N("172.20.0.0/16")
    everything_172 = [N("172.16.0.0/12")]
    assert ipam.pick_subnet([], everything_172) == N("192.168.0.0/20")
    with pytest.raises(Unavailable):
        ipam.pick_subnet([], [N("172.16.0.0/12"), N("192.168.0.0/16")])
    pools = [ipam.PoolSpec("10.9.0.0/16", 24)]
    assert ipam.pick_subnet([N("10.9.0.0/24")], [], pools) == N("10.9.1.0/24")


def test_plan_validates_user_config():
    p = ipam.plan("10.1.2.0/24", None, None, [], [])
    assert (p.network, p.gateway, p.ip_range) == (N("10.1.2.0/24"), A("10.1.2.1"), None)
    p = ipam.plan("10.1.2.0/24", "10.1.2.254", "10.1.2.128/25", [], [])
    assert p.gateway == A("10.1.2.254") and p.ip_range == N("10.1.2.128/25")
    assert ipam.Subnet.from_doc(p.to_doc()) == p
    with pytest.raises(Forbidden, match="Pool overlaps"):
        ipam.plan("10.1.0.0/16", None, None, [N("10.1.2.0/24")], [])
    with pytest.raises(InvalidArgument):
        ipam.plan("10.1.2.0/24", "10.1.3.1", None, [], [])
    with pytest.raises(InvalidArgument):
        ipam.plan("10.1.2.0/24", None, "10.1.3.0/25", [], [])
    with pytest.raises(InvalidArgument):
        ipam.plan(None, "10.1.2.1", None, [], [])
    with pytest.raises(InvalidArgument):
        ipam.plan("nonsense", None, None, [], [])


def test_allocate_sequential_wraps_and_never_duplicates():
    sub = ipam.Subnet(N("10.0.0.0/29"), A("10.0.0.1"))               # hosts .2-.6 usable
    taken: list[ipaddress.IPv4Address] = []
    last = None
    for _ in range(5):
        last = ipam.allocate(sub, taken, after=last)
        taken.append(last)
    assert [str(x) for x in taken] == [f"10.0.0.{i}" for i in range(2, 7)]
    with pytest.raises(Unavailable):
        ipam.allocate(sub, taken, after=last)
    taken.remove(A("10.0.0.3"))
    assert ipam.allocate(sub, taken, after=last) == A("10.0.0.3")      # wraps round to the freed one
    # a freed address is not reused before the range has been walked
    sub2 = ipam.Subnet(N("10.0.1.0/24"), A("10.0.1.1"))
    assert ipam.allocate(sub2, [A("10.0.1.3")], after=A("10.0.1.3")) == A("10.0.1.4")


def test_allocate_range_and_fixed():
    sub = ipam.Subnet(N("10.0.0.0/24"), A("10.0.0.1"), N("10.0.0.64/30"))
    assert ipam.allocate(sub, []) == A("10.0.0.64")
    assert ipam.allocate(sub, [A("10.0.0.64")]) == A("10.0.0.65")
    assert ipam.allocate(sub, [], fixed="10.0.0.200") == A("10.0.0.200")
    with pytest.raises(Forbidden, match="Address already in use"):
        ipam.allocate(sub, [A("10.0.0.200")], fixed="10.0.0.200")
    with pytest.raises(Forbidden):
        ipam.allocate(sub, [], fixed="10.0.0.1")                       # the gateway
    with pytest.raises(InvalidArgument):
        ipam.allocate(sub, [], fixed="10.9.9.9")
    assert ipam.mac_for(A("172.17.0.2")) == "02:42:ac:11:00:02"


def test_hosts_and_resolv_conf(tmp_path):
    text = dns.hosts_file([dns.HostEntry("10.0.0.2", ("web1", "web"))],
                          [dns.HostEntry("10.0.0.3", ("db", "database", "0123456789ab"))], ["gw.example:10.0.0.1"])
    assert text.startswith(dns.BASE_HOSTS)
    assert text.endswith("10.0.0.1\tgw.example\n10.0.0.2\tweb1 web\n10.0.0.3\tdb database 0123456789ab\n")
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch corp.example\noptions ndots:2\n")
    assert dns.resolv_conf(host) == "nameserver 10.1.1.1\nsearch corp.example\noptions ndots:2\n"
    assert dns.resolv_conf(host, ["9.9.9.9"], ["a.b"], ["rotate"]) == \
        "nameserver 9.9.9.9\nsearch a.b\noptions rotate\n"
    host.write_text("nameserver 127.0.0.53\n")
    assert dns.resolv_conf(host) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    f = tmp_path / "hosts"
    f.write_text("a much longer original content\n")
    ino = f.stat().st_ino
    dns.write_in_place(f, "short\n")
    assert f.read_text() == "short\n" and f.stat().st_ino == ino
