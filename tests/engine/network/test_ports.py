"""Published ports: parsing, DNAT from the host's loopback, ephemeral ports, clashes."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.engine.network.conftest import host_fetch
from workbench.engine.network import netns, ports
from workbench.engine.network.firewall import PortMap
from workbench.errors import Internal, InvalidArgument


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_parse_port_specs():
    assert ports.parse_port_spec("80") == [("80/tcp", {"HostIp": "", "HostPort": ""})]
    assert ports.parse_port_spec("8080:80") == [("80/tcp", {"HostIp": "", "HostPort": "8080"})]
    assert ports.parse_port_spec("8080:80/udp") == [("80/udp", {"HostIp": "", "HostPort": "8080"})]
    assert ports.parse_port_spec("127.0.0.1:8080:80") == [("80/tcp", {"HostIp": "127.0.0.1", "HostPort": "8080"})]
    assert ports.parse_port_spec("127.0.0.1::80") == [("80/tcp", {"HostIp": "127.0.0.1", "HostPort": ""})]
    assert ports.parse_port_spec("8080-8081:80-81") == [("80/tcp", {"HostIp": "", "HostPort": "8080"}),
                                                          ("81/tcp", {"HostIp": "", "HostPort": "8081"})]
    assert ports.parse_port_spec("9000-9010:80") == [("80/tcp", {"HostIp": "", "HostPort": "9000-9010"})]
    for bad in ("8080:", "x:80", "80/icmp", "8080-8082:80-81"):
        with pytest.raises(InvalidArgument):
            ports.parse_port_spec(bad)


def test_bindings_and_view():
    b = ports.bindings_from({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": None},
                            ["80/tcp", "443/tcp", "53/udp"], publish_all=True)
    assert ports.Binding(80, "tcp", "127.0.0.1", 8080) in b
    assert ports.Binding(443, "tcp") in b and ports.Binding(53, "udp") in b
    view = ports.ports_view(["80/tcp", "443/tcp"], [PortMap("tcp", "127.0.0.1", 8080, "1.2.3.4", 80)])
    assert view == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "443/tcp": None}


def test_published_port_reachable_from_host_loopback(netsvc, boxes):
    fixed = _free_port()
    a = boxes("web")
    net = a.setup(netsvc, "bridge", ports={"80/tcp": [{"HostIp": "", "HostPort": str(fixed)}],
                                           "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                  exposed=["80/tcp", "8080/tcp", "9999/tcp"])
    assert net.ports["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(fixed)}]
    assert net.ports["9999/tcp"] is None
    eph = int(net.ports["8080/tcp"][0]["HostPort"])
    assert eph > 1024 and net.ports["8080/tcp"][0]["HostIp"] == "127.0.0.1"
    a.httpd(80)
    a.httpd(8080)
    assert host_fetch(fixed) == "hello from web\n"
    assert host_fetch(eph) == "hello from web\n"
    # from another container, through the host's gateway address (DNAT in prerouting)
    b = boxes("client")
    b.setup(netsvc)
    gw = b.net.networks["bridge"]["Gateway"]
    assert b.fetch(gw, fixed) == "hello from web\n"
    netsvc.teardown_container(a.cid)
    assert host_fetch(fixed, timeout=2) is None
    s = socket.socket()
    s.bind(("0.0.0.0", fixed))          # the reservation is released with the container
    s.close()


def test_publish_all_and_udp(netsvc, boxes):
    a = boxes("udp")
    net = a.setup(netsvc, "bridge", exposed=["5353/udp", "80/tcp"], publish_all=True)
    assert {k: v[0]["HostIp"] for k, v in net.ports.items()} == {"5353/udp": "0.0.0.0", "80/tcp": "0.0.0.0"}
    hp = int(net.ports["5353/udp"][0]["HostPort"])
    # busybox nc has no UDP mode: a tiny Python UDP echo server inside the namespace
    code = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 5353))\n"
            "print('ready', flush=True)\nd, peer = s.recvfrom(100)\ns.sendto(d.upper(), peer)\n")
    with netns.entered(net.netns_path):
        echo = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert echo.stdout.readline() == b"ready\n"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(b"ping over udp", ("127.0.0.1", hp))
            assert s.recvfrom(100)[0] == b"PING OVER UDP"
    finally:
        echo.kill()
        echo.wait()


def test_port_clash_is_a_clear_error_and_leaves_nothing(netsvc, boxes):
    taken = socket.socket()
    taken.bind(("0.0.0.0", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        a = boxes("clash")
        with pytest.raises(Internal) as exc:
            a.setup(netsvc, "bridge", ports={"80/tcp": [{"HostIp": "", "HostPort": str(port)}]})
        assert exc.value.status == 500
        assert str(exc.value).startswith("driver failed programming external connectivity on endpoint clash (")
        assert str(exc.value).endswith(f"Bind for 0.0.0.0:{port} failed: port is already allocated")
        assert netsvc.inspect("bridge")["Containers"] == {}
        assert not (netsvc.run_dir / "netns" / a.cid).exists()
        # a second container asking for a port another container holds gets the same error
        b, c = boxes("first"), boxes("second")
        p2 = _free_port()
        b.setup(netsvc, "bridge", ports={"80/tcp": [{"HostPort": str(p2)}]})
        with pytest.raises(Internal, match="port is already allocated"):
            c.setup(netsvc, "bridge", ports={"80/tcp": [{"HostPort": str(p2)}]})
        b.httpd()
        assert host_fetch(p2) == "hello from first\n"
    finally:
        taken.close()


def test_rules_live_in_the_engines_own_table(netsvc, boxes):
    a = boxes("t")
    a.setup(netsvc, "bridge", ports={"80/tcp": [{"HostPort": ""}]})
    table = subprocess.run(["nft", "list", "table", "ip", f"wb_{netsvc.tag}"], capture_output=True,
                           text=True).stdout
    assert f": {a.ip('bridge')} . 80" in table
    netsvc.teardown_container(a.cid)
    table = subprocess.run(["nft", "list", "table", "ip", f"wb_{netsvc.tag}"], capture_output=True,
                           text=True).stdout
    assert a.ip("bridge") not in table
