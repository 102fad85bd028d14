"""NetworkService as the API sees it: Docker's JSON, filters, predefined networks, errors."""

from __future__ import annotations

import pytest

from tests.engine.network.conftest import free_subnet
from workbench.engine.network import ipam
from workbench.errors import Conflict, Forbidden, InvalidArgument, NotFound


def test_predefined_networks_exist_from_the_start(netsvc):
    nets = {n["Name"]: n for n in netsvc.list()}
    assert set(nets) == {"bridge", "host", "none"}
    assert (nets["bridge"]["Driver"], nets["host"]["Driver"], nets["none"]["Driver"]) == ("bridge", "host", "null")
    b = netsvc.inspect("bridge")
    cfg = b["IPAM"]["Config"][0]
    assert b["Scope"] == "local" and b["IPAM"]["Driver"] == "default" and b["Containers"] == {}
    assert b["Options"]["com.docker.network.bridge.default_bridge"] == "true"
    # never on top of a route the engine does not own
    mine = ipam.IPv4Network(cfg["Subnet"])
    bridge_routes = [r for r in ipam.host_routes() if r == mine]
    assert bridge_routes and cfg["Gateway"] == str(mine.network_address + 1)
    for name in ("bridge", "host", "none"):
        with pytest.raises(Forbidden, match=f"{name} is a pre-defined network and cannot be removed"):
            netsvc.remove(name)


def test_create_inspect_and_resolution(netsvc):
    subnet = free_subnet()
    nid = netsvc.create("app", ipam_config=[{"Subnet": subnet}], internal=True, labels={"tier": "db"},
                        options={"com.docker.network.driver.mtu": "1400"})
    doc = netsvc.inspect("app")
    assert doc["Id"] == nid and doc["Name"] == "app" and doc["Driver"] == "bridge"
    assert doc["Internal"] is True and doc["Labels"] == {"tier": "db"} and doc["EnableIPv6"] is False
    assert doc["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": str(ipam.IPv4Network(subnet)[1])}]
    assert doc["Created"].endswith("Z") and doc["Attachable"] is False
    assert netsvc.inspect(nid[:8])["Id"] == nid
    with pytest.raises(Conflict, match="network with name app already exists"):
        netsvc.create("app")
    with pytest.raises(Forbidden, match="Pool overlaps"):
        netsvc.create("clash", ipam_config=[{"Subnet": subnet}])
    with pytest.raises(NotFound, match="network nosuch not found"):
        netsvc.inspect("nosuch")
    with pytest.raises(NotFound, match='plugin "overlay" not found'):
        netsvc.create("ov", driver="overlay")
    with pytest.raises(InvalidArgument):
        netsvc.create("bad name")
    with pytest.raises(InvalidArgument, match="within subnet"):
        netsvc.create("rng", ipam_config=[{"Subnet": free_subnet(), "IPRange": "10.0.0.0/24"}])


def test_auto_subnets_do_not_overlap(netsvc):
    subnets = [netsvc.inspect(netsvc.create(f"auto{i}"))["IPAM"]["Config"][0]["Subnet"] for i in range(3)]
    nets = [ipam.IPv4Network(s) for s in subnets + [netsvc.inspect("bridge")["IPAM"]["Config"][0]["Subnet"]]]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])


def test_list_filters(netsvc, boxes):
    a = netsvc.create("alpha-net", labels={"team": "a", "env": "prod"})
    netsvc.create("beta-net", labels={"team": "b"})
    names = lambda f: sorted(n["Name"] for n in netsvc.list(f))  # noqa: E731
    assert names({"name": ["alpha"]}) == ["alpha-net"]
    assert names({"name": ["-net$"]}) == ["alpha-net", "beta-net"]
    assert names({"id": [a[:10]]}) == ["alpha-net"]
    assert names({"label": ["team"]}) == ["alpha-net", "beta-net"]
    assert names({"label": ["team=a", "env=prod"]}) == ["alpha-net"]
    assert names({"driver": ["null"]}) == ["none"]
    assert names({"type": ["builtin"]}) == ["bridge", "host", "none"]
    assert names({"type": ["custom"]}) == ["alpha-net", "beta-net"]
    b = boxes("user")
    b.setup(netsvc, "beta-net")
    assert names({"dangling": ["true"]}) == ["alpha-net"]
    assert names({"dangling": ["false"]}) == ["beta-net", "bridge", "host", "none"]
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        netsvc.list({"colour": ["x"]})
    with pytest.raises(Forbidden, match="has active endpoints"):
        netsvc.remove("beta-net")
    assert netsvc.prune({"label": ["team"]}) == {"NetworksDeleted": ["alpha-net"]}
    netsvc.teardown_container(b.cid)
    assert netsvc.prune() == {"NetworksDeleted": ["beta-net"]}
    assert netsvc.prune() == {"NetworksDeleted": None}


def test_connect_rules_for_predefined_and_shared_namespaces(netsvc, boxes):
    a = boxes("a")
    a.setup(netsvc)
    with pytest.raises(Forbidden):
        netsvc.connect("host", a.cid)
    with pytest.raises(Forbidden):
        netsvc.connect("none", a.cid)
    j = boxes("j")
    j.setup(netsvc, f"container:{a.cid}")
    netsvc.create("more")
    with pytest.raises(Forbidden, match="sharing network namespace"):
        netsvc.connect("more", j.cid)


class FakeContainers:
    """The two calls NetworkService makes on the container service, over plain docs."""

    def __init__(self) -> None:
        self.docs: dict[str, dict] = {}

    def get(self, ref: str) -> dict:
        for d in self.docs.values():
            if ref in (d["Id"], d["Name"].lstrip("/")):
                return {**d, "NetworkSettings": {"Networks": dict(d["NetworkSettings"]["Networks"])}}
        raise NotFound(f"No such container: {ref}")

    def save(self, doc: dict) -> None:
        self.docs[doc["Id"]] = doc


def test_connect_a_stopped_container_applies_at_its_next_start(netsvc, boxes):
    netsvc.containers = FakeContainers()
    netsvc.create("later")
    a, b = boxes("stopped"), boxes("peer")
    doc = {"Id": a.cid, "Name": "/stopped", "HostsPath": str(a.hosts), "State": {"Running": False},
           "Config": {"Hostname": "stopped", "ExposedPorts": {"80/tcp": {}}},
           "HostConfig": {"NetworkMode": "default", "PortBindings": {}},
           "NetworkSettings": {"Networks": {}}}
    netsvc.containers.save(doc)
    netsvc.connect("later", "stopped", aliases=["late"])
    saved = netsvc.containers.docs[a.cid]["NetworkSettings"]["Networks"]["later"]
    assert saved["Aliases"] == ["late"] and saved["IPAddress"] == ""
    a.net = netsvc.setup_container(netsvc.containers.get("stopped"))       # the container service's start
    assert list(a.net.networks) == ["bridge", "later"] and a.net.ports == {"80/tcp": None}
    b.setup(netsvc, "later")
    a.httpd()
    assert b.fetch("late") == "hello from stopped\n"
    netsvc.disconnect("later", "stopped")
    assert "later" not in netsvc.containers.docs[a.cid]["NetworkSettings"]["Networks"]
    assert b.fetch(a.ip("later"), timeout=2) is None
