"""Every clean-up path leaves no veth, namespace, address, port rule or record behind."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

from tests.engine.network.conftest import host_fetch, require_net
from workbench.engine.network import ipam
from workbench.engine.network.cleanup import leftovers, remove_engine_state
from workbench.engine.services.networks import NetworkService
from workbench.engine.store.metadata import Metadata


def _veths(svc: NetworkService) -> list[str]:
    return [n for n in leftovers(svc.tag)["links"] if n.startswith("wv")]


def _addresses() -> set[str]:
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        return {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=2)}


def test_teardown_removes_everything_and_is_idempotent(netsvc, boxes):
    netsvc.create("tidy")
    a = boxes("a")
    a.setup(netsvc, "tidy", {"bridge": {}}, ports={"80/tcp": [{"HostPort": ""}]})
    assert len(_veths(netsvc)) == 2 and len(os.listdir(netsvc.run_dir / "netns")) == 1
    netsvc.teardown_container(a.cid)
    netsvc.teardown_container(a.cid)
    assert netsvc.settle()
    assert _veths(netsvc) == [] and os.listdir(netsvc.run_dir / "netns") == []
    assert netsvc.inspect("tidy")["Containers"] == {} and netsvc.inspect("bridge")["Containers"] == {}
    assert netsvc.firewall.elements() == []


def test_teardown_while_a_process_still_holds_the_namespace(netsvc, boxes):
    """rm -f: the namespace may outlive the unmount while a process sits in it; the veth must not."""
    a = boxes("held")
    a.setup(netsvc)
    sleeper = a.popen("sleep", "60")
    netsvc.teardown_container(a.cid)
    assert netsvc.settle()
    assert _veths(netsvc) == []
    assert sleeper.poll() is None
    sleeper.kill()
    sleeper.wait()


def test_network_remove_deletes_bridge_and_address(netsvc):
    nid = netsvc.create("gone", labels={"x": "1"})
    gw = netsvc.inspect(nid)["IPAM"]["Config"][0]["Gateway"]
    assert gw in _addresses()
    netsvc.remove("gone")
    assert gw not in _addresses()
    assert not any(n.endswith(nid[:6]) for n in leftovers(netsvc.tag)["links"])


def test_ipam_release_and_no_duplicates(netsvc, boxes):
    netsvc.create("pool", ipam_config=[{"Subnet": _small_subnet()}])      # a /29: 5 addresses
    made = [boxes(f"p{i}") for i in range(5)]
    ips = [b.setup(netsvc, "pool").networks["pool"]["IPAddress"] for b in made]
    assert len(set(ips)) == 5
    extra = boxes("extra")
    try:
        extra.setup(netsvc, "pool")
        raise AssertionError("the pool should be exhausted")
    except Exception as err:
        assert getattr(err, "status", None) == 503, err
    netsvc.teardown_container(made[2].cid)
    assert extra.setup(netsvc, "pool").networks["pool"]["IPAddress"] == ips[2]


def _small_subnet() -> str:
    pools = [ipam.PoolSpec("10.202.0.0/16", 29)]
    return str(ipam.pick_subnet([], ipam.host_routes(), pools))


KILLED = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from workbench.engine.services.networks import NetworkService
    from workbench.engine.store.metadata import Metadata
    root, tag, cids = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    svc = NetworkService(Metadata(root / "metadata.db"), root / "run", tag)
    svc.create("survivors")
    out = {}
    for i, cid in enumerate(cids):
        s = svc.setup_container(cid, f"c{i}", f"c{i}", "survivors", {"bridge": {}},
                                {"80/tcp": [{"HostPort": ""}]}, ["80/tcp"], False)
        out[cid] = s.ports["80/tcp"][0]["HostPort"]
    print(json.dumps(out), flush=True)
    time.sleep(600)
""")


def test_reconcile_after_the_daemon_was_killed(tmp_path: Path, boxes):
    require_net()
    tag, root = secrets.token_hex(3), tmp_path
    live, dead = boxes("live"), boxes("dead")
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(root), tag, live.cid, dead.cid],
                            stdout=subprocess.PIPE, cwd=str(Path(__file__).parents[3]))
    try:
        ports = json.loads(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)          # no chance to clean anything up
        proc.wait()
        assert len(leftovers(tag, root / "run")["links"]) == 2 + 4        # two bridges, two veths each
        svc = NetworkService(Metadata(root / "metadata.db"), root / "run", tag)
        try:
            svc.reconcile([live.cid])
            assert svc.settle()
            left = leftovers(tag, root / "run")
            assert left["netns"] == [str(root / "run" / "netns" / live.cid)]
            assert len([n for n in left["links"] if n.startswith("wv")]) == 2
            assert set(svc.inspect("survivors")["Containers"]) == {live.cid}
            assert [e for e in svc.firewall.elements() if e[0] == "pub_tcp"] == [("pub_tcp", ports[live.cid])]
            # the live container still works, its port is reserved again, the dead one's port is free
            live.net = SimpleNamespace(netns_path=str(root / "run" / "netns" / live.cid))
            live.httpd()
            assert host_fetch(int(ports[live.cid])) == "hello from live\n"
            assert host_fetch(int(ports[dead.cid]), timeout=2) is None
            svc.teardown_container(live.cid)
            svc.reconcile([])
            assert svc.settle()
            left = leftovers(tag, root / "run")
            assert left["netns"] == [] and [n for n in left["links"] if n.startswith("wv")] == []
        finally:
            live.stop()
            svc.destroy()
    finally:
        if proc.poll() is None:
            proc.kill()
        remove_engine_state(tag, root / "run")
    assert leftovers(tag, root / "run") == {"links": [], "netns": [], "table": False}


def test_orphaned_engine_state_is_collected(tmp_path: Path):
    """A root deleted while its bridges remain: the next engine start removes them."""
    require_net()
    tag, root = secrets.token_hex(3), tmp_path / "doomed"
    svc = NetworkService(Metadata(tmp_path / "doomed.db"), root / "run", tag)
    svc.create("orphan")
    svc.close()
    assert len(leftovers(tag)["links"]) == 2
    subprocess.run(["umount", "-l", str(root / "run" / "netns")], check=False)
    subprocess.run(["rm", "-rf", str(root)], check=True)
    other = NetworkService(Metadata(tmp_path / "other.db"), tmp_path / "other" / "run", secrets.token_hex(3))
    try:
        other.list()
        assert leftovers(tag) == {"links": [], "netns": [], "table": False}
    finally:
        other.destroy()


def test_restart_reuses_names_without_the_reaper_interfering(netsvc, boxes):
    """docker restart: teardown then setup of the same container at once; the deferred reaping of the
    old veth must not remove the new one of the same name."""
    a, b = boxes("again"), boxes("peer")
    b.setup(netsvc)
    for _ in range(3):
        a.setup(netsvc, ports={"80/tcp": [{"HostPort": ""}]})
        a.httpd()
        port = int(a.net.ports["80/tcp"][0]["HostPort"])
        assert host_fetch(port) == "hello from again\n"
        a.stop()
        netsvc.teardown_container(a.cid)
    a.setup(netsvc)
    assert netsvc.settle()
    a.httpd()
    assert b.fetch(a.ip("bridge")) == "hello from again\n"
