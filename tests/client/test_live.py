"""The client against a live engine (the session `engine` fixture): every resource and verb.

Each test uses its own names (a per-test prefix) and removes what it made. The `registry` fixture runs
`workbench registry serve` on a free loopback port for push, pull and login.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
import uuid

import pytest

from tests.client.helpers import free_port, start_registry
from workbench.cli.bootstrap import busybox_rootfs
from workbench.client import Client, LogFrame, Mount
from workbench.errors import BuildError, Conflict, InvalidArgument, NotFound, WorkbenchError

@pytest.fixture
def client(engine, busybox):
    with engine.client() as c:
        yield c


@pytest.fixture
def name():
    """A unique name prefix for what one test creates."""
    return f"wbt{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cleanup(client):
    """Container IDs/names to remove (force) after the test."""
    made: list[str] = []
    yield made
    for cid in made:
        try:
            client.containers.remove(cid, force=True, volumes=True)
        except WorkbenchError:
            pass


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    proc, addr = start_registry(tmp_path_factory.mktemp("registry"))
    yield addr
    proc.terminate()
    proc.wait(10)


def run(client: Client, cmd, cleanup, **options) -> tuple[str, int, list[LogFrame]]:
    """docker run: create, wait(next-exit) and attach before start, then collect."""
    cid = client.containers.create("busybox", cmd, **options).id
    cleanup.append(cid)
    with client.containers.waiting(cid, "next-exit") as waiter, client.containers.attach(cid) as out:
        client.containers.start(cid)
        frames = list(out)
        result = waiter.result()
    return cid, result.status_code, frames


def _sorted(frames: list[LogFrame]) -> list[LogFrame]:
    return sorted(frames, key=lambda f: (f.stream, f.data))


# -- system ---------------------------------------------------------------------------------------
def test_system(client):
    ping = client.system.ping()
    assert ping.api_version and ping.os_type == "linux"
    assert client.api_version == "1.41"
    version = client.system.version()
    assert version.api_version and version.os == "linux"
    info = client.system.info()
    assert "Containers" in info and info["Swarm"]["LocalNodeState"] == "inactive"
    df = client.system.df()
    assert any("busybox:latest" in i.repo_tags for i in df.images)


# -- images ---------------------------------------------------------------------------------------
def test_image_list_inspect_history(client, busybox):
    images = client.images.list()
    assert any("busybox:latest" in i.repo_tags for i in images)
    assert [i.id for i in client.images.list(name="busybox")] == [busybox]
    assert client.images.list(filters={"reference": "no-such-*"}) == []
    details = client.images.inspect("busybox")
    assert details.id == busybox and details.os == "linux" and details.config["Cmd"] == ["sh"]
    assert len(details.layers) == 1
    assert client.images.inspect(busybox[7:19]).id == busybox  # short ID prefix
    history = client.images.history("busybox")
    assert history[0].id == busybox and history[0].size > 0


def test_tag_remove_prune(client, busybox, name):
    client.images.tag("busybox", f"{name}/app", "v1")
    client.images.tag("busybox", f"{name}/app:v2")
    assert {f"{name}/app:v1", f"{name}/app:v2"} <= set(client.images.inspect(busybox).repo_tags)
    removed = client.images.remove(f"{name}/app:v1")
    assert [r.untagged for r in removed] == [f"{name}/app:v1"] and not any(r.deleted for r in removed)
    client.images.remove(f"{name}/app:v2")
    with pytest.raises(NotFound, match="No such image"):
        client.images.remove(f"{name}/app:v2")
    report = client.images.prune()
    assert report.space_reclaimed >= 0


def test_import_save_load(client, name):
    image_id = client.images.import_(busybox_rootfs(), repository=f"{name}:1",
                                     changes=['CMD ["echo", "imported"]', "ENV A=1"], message="m")
    assert image_id.startswith("sha256:")
    details = client.images.inspect(f"{name}:1")
    assert details.id == image_id and details.config["Cmd"] == ["echo", "imported"]
    assert "A=1" in details.config["Env"]
    with client.images.save([f"{name}:1"]) as archive:
        data = archive.read()
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert "manifest.json" in names
    client.images.remove(f"{name}:1")
    assert client.images.load(data) == [f"{name}:1"]
    assert client.images.inspect(f"{name}:1").id == image_id
    client.images.remove(f"{name}:1")


# -- containers -----------------------------------------------------------------------------------
def test_run_attach_logs_inspect(client, cleanup, name):
    cid, code, frames = run(client, ["sh", "-c", "echo out; echo err >&2; exit 3"], cleanup, name=name,
                            labels={"suite": name}, env={"A": "1"})
    assert code == 3
    assert _sorted(frames) == [LogFrame(1, b"out\n"), LogFrame(2, b"err\n")]
    assert _sorted(client.containers.logs(name)) == _sorted(frames)
    assert client.containers.logs(name, stderr=False) == [LogFrame(1, b"out\n")]
    details = client.containers.inspect(name)
    assert details.id == cid and details.name == name and details.state.exit_code == 3
    assert details.state.status == "exited" and details.labels == {"suite": name}
    assert "A=1" in details.config["Env"]


def test_logs_follow_tail_timestamps(client, cleanup):
    cid = client.containers.create("busybox", ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done"]).id
    cleanup.append(cid)
    client.containers.start(cid)
    with client.containers.stream_logs(cid, follow=True) as logs:
        assert b"".join(f.data for f in logs) == b"1\n2\n3\n"
    assert client.containers.logs(cid, tail=1) == [LogFrame(1, b"3\n")]
    stamped = client.containers.logs(cid, timestamps=True)
    assert stamped[0].data.split(b" ", 1)[1] == b"1\n" and stamped[0].data[:4].isdigit()


def test_tty_output_is_raw(client, cleanup):
    cid = client.containers.create("busybox", ["echo", "tty"], tty=True).id
    cleanup.append(cid)
    with client.containers.waiting(cid, "next-exit") as waiter, client.containers.attach(cid) as out:
        client.containers.start(cid)
        data = b"".join(f.data for f in out)
        waiter.result()
    assert data.replace(b"\r", b"") == b"tty\n"


def test_attach_stdin(client, cleanup):
    cid = client.containers.create("busybox", ["cat"], stdin_open=True, stdin_once=True, attach_stdin=True,
                                   attach_stdout=True).id
    cleanup.append(cid)
    with client.containers.waiting(cid, "next-exit") as waiter, \
            client.containers.attach(cid, stdin=True) as stream:
        client.containers.start(cid)
        stream.send(b"hello stdin\n")
        stream.close_stdin()
        assert b"".join(f.data for f in stream) == b"hello stdin\n"
        assert waiter.result().status_code == 0


def test_auto_remove_and_removed_wait(client):
    cid = client.containers.create("busybox", ["true"], auto_remove=True).id
    with client.containers.waiting(cid, "removed") as waiter:
        client.containers.start(cid)
        assert waiter.result().status_code == 0
    with pytest.raises(NotFound):
        client.containers.inspect(cid)


def test_lifecycle_stop_kill_restart_pause(client, cleanup, name):
    cid = client.containers.create("busybox", ["sleep", "60"], name=name, stop_timeout=1).id
    cleanup.append(cid)
    client.containers.start(cid)
    client.containers.start(cid)  # already running: no error (304)
    assert client.containers.inspect(cid).state.running
    client.containers.pause(cid)
    assert client.containers.inspect(cid).state.paused
    client.containers.unpause(cid)
    client.containers.restart(cid, timeout=1)
    assert client.containers.inspect(cid).state.running
    client.containers.kill(cid, "SIGKILL")
    assert client.containers.wait(cid).status_code == 137
    client.containers.start(cid)
    client.containers.stop(cid, timeout=1)
    state = client.containers.inspect(cid).state
    assert not state.running and state.exit_code in (137, 143)
    client.containers.stop(cid)  # already stopped: no error (304)


def test_list_filters_and_limit(client, cleanup, name):
    for i in range(2):
        cid = client.containers.create("busybox", ["sleep", "30"], name=f"{name}-{i}", labels={"grp": name}).id
        cleanup.append(cid)
    client.containers.start(f"{name}-0")
    running = client.containers.list(filters={"label": f"grp={name}"})
    assert [c.name for c in running] == [f"{name}-0"] and running[0].state == "running"
    both = client.containers.list(all=True, filters={"name": name})
    assert sorted(c.name for c in both) == [f"{name}-0", f"{name}-1"]
    created = client.containers.list(all=True, filters={"status": "created", "label": f"grp={name}"})
    assert [c.name for c in created] == [f"{name}-1"]
    assert len(client.containers.list(all=True, limit=1)) == 1
    assert client.containers.list(all=True, filters={"ancestor": "busybox", "name": name})


def test_rename_top_changes_archives_export_commit(client, cleanup, name):
    cid = client.containers.create("busybox", ["sleep", "60"], name=name).id
    cleanup.append(cid)
    client.containers.start(cid)
    client.containers.rename(name, f"{name}-new")
    assert client.containers.inspect(cid).name == f"{name}-new"
    top = client.containers.top(cid)
    assert "PID" in top.titles and any("sleep" in " ".join(p) for p in top.processes)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    client.containers.put_archive(cid, "/tmp", buf.getvalue())
    assert client.containers.stat_path(cid, "/tmp/hello.txt").size == 6
    with client.containers.get_archive(cid, "/tmp/hello.txt") as archive:
        assert archive.stat.name == "hello.txt"
        tar = tarfile.open(fileobj=io.BytesIO(archive.read()))
        assert tar.extractfile("hello.txt").read() == b"hello\n"
    with pytest.raises(NotFound):
        client.containers.stat_path(cid, "/nonexistent")
    changes = {c.path: c.kind.letter for c in client.containers.changes(cid)}
    assert changes.get("/tmp/hello.txt") == "A"
    with client.containers.export(cid) as exported:
        names = tarfile.open(fileobj=io.BytesIO(exported.read())).getnames()
    assert any(n.lstrip("./") == "tmp/hello.txt" for n in names)
    image_id = client.containers.commit(cid, f"{name}-img:1", changes=['CMD ["cat", "/tmp/hello.txt"]'])
    assert client.images.inspect(f"{name}-img:1").id == image_id
    out_cid = client.containers.create(f"{name}-img:1").id
    cleanup.append(out_cid)
    client.containers.start(out_cid)
    assert client.containers.wait(out_cid).status_code == 0
    assert client.containers.logs(out_cid) == [LogFrame(1, b"hello\n")]
    client.containers.remove(out_cid)
    cleanup.remove(out_cid)
    client.images.remove(f"{name}-img:1")


def test_exec(client, cleanup):
    cid = client.containers.create("busybox", ["sleep", "60"]).id
    cleanup.append(cid)
    with pytest.raises(Conflict):
        client.exec.create(cid, ["true"])  # not running yet
    client.containers.start(cid)
    result = client.exec.run(cid, "sh -c 'echo a; echo b >&2; exit 4'", env={"X": "1"}, workdir="/tmp")
    assert result.exit_code == 4 and result.stdout == b"a\n" and result.stderr == b"b\n"
    exec_id = client.exec.create(cid, ["cat"], stdin=True)
    with client.exec.start(exec_id) as stream:
        stream.send(b"via exec\n")
        stream.close_stdin()
        assert b"".join(f.data for f in stream) == b"via exec\n"
    details = client.exec.inspect(exec_id)
    assert details.exit_code == 0 and not details.running and details.container_id == cid
    bg = client.exec.create(cid, ["sh", "-c", "echo bg > /tmp/bg"])
    client.exec.start_detached(bg)
    for _ in range(100):
        if client.exec.inspect(bg).exit_code is not None:
            break
        time.sleep(0.05)
    assert client.exec.run(cid, ["cat", "/tmp/bg"]).stdout == b"bg\n"


def test_errors_carry_docker_messages(client, cleanup, name):
    with pytest.raises(NotFound, match="^No such image"):
        client.containers.create(f"{name}-missing:1")
    cid = client.containers.create("busybox", ["sleep", "30"], name=name).id
    cleanup.append(cid)
    with pytest.raises(Conflict):
        client.containers.create("busybox", name=name)
    client.containers.start(cid)
    with pytest.raises(Conflict, match="[Ss]top the container before"):
        client.containers.remove(cid)
    with pytest.raises(NotFound, match="No such container"):
        client.containers.inspect(f"{name}-nope")
    bad = client.containers.create("busybox", ["/nonexistent-binary"]).id
    cleanup.append(bad)
    with pytest.raises(WorkbenchError, match="no such file or directory|executable file not found"):
        client.containers.start(bad)
    with pytest.raises(InvalidArgument):
        client.containers.create("busybox", ports={"80/tcp": "not-a-port"}, network="none")


def test_resources_reach_host_config(client, cleanup):
    cid = client.containers.create("busybox", ["true"], memory="64m", cpus=0.5, pids_limit=32,
                                   restart_policy="on-failure:2", user="nobody", working_dir="/tmp",
                                   hostname="boxy", entrypoint=["sh", "-c"],
                                   mounts=[Mount(target="/scratch", type="tmpfs")]).id
    cleanup.append(cid)
    details = client.containers.inspect(cid)
    host = details.host_config
    assert host["Memory"] == 64 << 20 and host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 32
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert details.config["User"] == "nobody" and details.config["WorkingDir"] == "/tmp"
    assert details.config["Hostname"] == "boxy" and details.config["Entrypoint"] == ["sh", "-c"]


def test_container_prune(client, name):
    cid = client.containers.create("busybox", ["true"], labels={"prune": name}).id
    report = client.containers.prune(filters={"label": f"prune={name}"})
    assert cid in report.deleted
    with pytest.raises(NotFound):
        client.containers.inspect(cid)


# -- networks and volumes -------------------------------------------------------------------------
def test_networks(client, cleanup, name):
    octet = int(name[-2:], 16)
    subnet = f"10.231.{octet}.0/24"
    net_id = client.networks.create(name, subnet=subnet, gateway=f"10.231.{octet}.1", labels={"k": "v"})
    try:
        with pytest.raises(Conflict):
            client.networks.create(name)
        assert [n.id for n in client.networks.list(filters={"name": name})] == [net_id]
        net = client.networks.inspect(name)
        assert net.driver == "bridge" and net.labels == {"k": "v"}
        assert net.ipam[0].subnet == subnet
        server = client.containers.create("busybox", ["sleep", "30"], network=name, network_aliases=["svc"]).id
        peer = client.containers.create("busybox", ["sleep", "30"], network=name).id
        other = client.containers.create("busybox", ["sleep", "30"]).id
        cleanup.extend([server, peer, other])
        for cid in (server, peer, other):
            client.containers.start(cid)
        result = client.exec.run(peer, ["ping", "-c", "1", "-W", "2", "svc"])
        assert result.exit_code == 0, result.output
        client.networks.connect(name, other, aliases=["late"])
        members = {e.container_id for e in client.networks.inspect(name).containers}
        assert {server, peer, other} <= members
        assert name in client.containers.inspect(other).network_settings["Networks"]
        client.networks.disconnect(name, other, force=True)
        assert other not in {e.container_id for e in client.networks.inspect(name).containers}
    finally:
        for cid in list(cleanup):
            client.containers.remove(cid, force=True)
            cleanup.remove(cid)
        client.networks.remove(net_id)
    with pytest.raises(NotFound):
        client.networks.inspect(name)
    client.networks.create(f"{name}-p", labels={"prune": name})
    assert f"{name}-p" in client.networks.prune(filters={"label": f"prune={name}"}).deleted


def test_volumes(client, cleanup, name):
    vol = client.volumes.create(name, labels={"k": "v"})
    assert vol.name == name and vol.driver == "local" and vol.labels == {"k": "v"}
    assert [v.name for v in client.volumes.list(filters={"name": name})] == [name]
    assert client.volumes.inspect(name).mountpoint
    cid, code, _ = run(client, ["sh", "-c", "echo kept > /data/f"], cleanup, volumes=[f"{name}:/data"])
    assert code == 0
    with pytest.raises(Conflict):
        client.volumes.remove(name)
    _, code, frames = run(client, ["cat", "/data/f"], cleanup,
                          mounts=[Mount(target="/data", source=name, read_only=True)])
    assert frames == [LogFrame(1, b"kept\n")]
    for c in list(cleanup):
        client.containers.remove(c, force=True)
        cleanup.remove(c)
    client.volumes.remove(name)
    with pytest.raises(NotFound):
        client.volumes.inspect(name)
    client.volumes.create(f"{name}-p", labels={"prune": name})
    assert f"{name}-p" in client.volumes.prune(filters={"label": f"prune={name}"}).deleted


def test_published_port(client, cleanup):
    port = free_port()
    cid = client.containers.create("busybox", ["httpd", "-f", "-p", "80", "-h", "/etc"],
                                   ports={"80/tcp": ("127.0.0.1", port)}).id
    cleanup.append(cid)
    client.containers.start(cid)
    assert client.containers.inspect(cid).ports["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    summary = next(c for c in client.containers.list() if c.id == cid)
    assert f"127.0.0.1:{port}->80/tcp" in [str(p) for p in summary.ports]
    import httpx

    for _ in range(50):
        try:
            assert "root:x:0:0" in httpx.get(f"http://127.0.0.1:{port}/passwd", timeout=2).text
            break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        pytest.fail("published port never answered")


# -- build ----------------------------------------------------------------------------------------
def test_build_and_failure(client, cleanup, name, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nARG GREETING=hi\nCOPY msg.txt /msg.txt\n"
                                         "RUN echo \"$GREETING\" >> /msg.txt\nCMD [\"cat\", \"/msg.txt\"]\n")
    (tmp_path / "msg.txt").write_text("from context\n")
    (tmp_path / "ignored.txt").write_text("x")
    (tmp_path / ".dockerignore").write_text("ignored.txt\n")
    with client.build(tmp_path, tags=[f"{name}:1"], buildargs={"GREETING": "hello"}, labels={"b": "1"}) as b:
        lines = "".join(e.stream or "" for e in b)
    assert b.image_id and "Step 1/" in lines and " : FROM busybox" in lines
    assert client.images.inspect(f"{name}:1").id == b.image_id
    assert client.images.inspect(f"{name}:1").labels == {"b": "1"}
    cid = client.containers.create(f"{name}:1").id
    cleanup.append(cid)
    client.containers.start(cid)
    client.containers.wait(cid)
    assert b"".join(f.data for f in client.containers.logs(cid)) == b"from context\nhello\n"
    quiet = client.build(tmp_path, tags=f"{name}:2", buildargs={"GREETING": "hello"}, labels={"b": "1"},
                         quiet=True).result()
    assert quiet == b.image_id  # fully cached
    with pytest.raises(BuildError) as caught:
        client.build(dockerfile_text="FROM busybox\nRUN exit 7\n").result()
    assert "returned a non-zero code: 7" in str(caught.value)
    client.containers.remove(cid)
    cleanup.remove(cid)
    client.images.remove(f"{name}:1")
    client.images.remove(f"{name}:2")


# -- registry -------------------------------------------------------------------------------------
def test_push_pull_catalog(client, registry, name):
    ref = f"{registry}/{name}/bb:1"
    client.images.tag("busybox", ref)
    with client.images.push(ref) as progress:
        events = list(progress)
    assert any(e.aux and e.aux.get("Digest", "").startswith("sha256:") for e in events)
    assert f"{name}/bb" in client.registry.catalog(registry)
    assert client.registry.tags(registry, f"{name}/bb") == ["1"]
    client.images.remove(ref)
    with client.images.pull(ref) as progress:
        statuses = [e.status for e in progress if e.status]
    assert any(s.startswith("Status:") for s in statuses)
    details = client.images.inspect(ref)
    assert any(d.startswith(f"{registry}/{name}/bb@sha256:") for d in details.repo_digests)
    with pytest.raises(NotFound):
        client.images.pull(f"{registry}/{name}/bb:nope").drain()
    client.images.remove(ref)


def test_login_with_htpasswd_registry(client, tmp_path, name):
    from workbench.engine.registry.auth import make_htpasswd_line

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(make_htpasswd_line("alice", "s3cret") + "\n")
    proc, addr = start_registry(tmp_path, htpasswd)
    try:
        with Client(client.host.url, config_dir=tmp_path / "cfg") as c:
            with pytest.raises(WorkbenchError):
                c.registry.login("alice", "wrong", addr)
            assert c.credentials.get(addr) is None
            assert c.registry.login("alice", "s3cret", addr).status == "Login Succeeded"
            assert c.credentials.get(addr).username == "alice"
            c.images.tag("busybox", f"{addr}/{name}:1")
            c.images.push(f"{addr}/{name}:1").drain()
            assert c.registry.catalog(addr) == [name]
            assert c.registry.logout(addr) is True
            with pytest.raises(WorkbenchError):
                c.images.push(f"{addr}/{name}:1").drain()
            c.images.remove(f"{addr}/{name}:1")
    finally:
        proc.terminate()
        proc.wait(10)


def test_concurrent_requests_share_one_client(client, cleanup):
    cid = client.containers.create("busybox", ["sleep", "1"]).id
    cleanup.append(cid)
    results: list[int] = []
    with client.containers.waiting(cid) as waiter:
        client.containers.start(cid)
        threads = [threading.Thread(target=lambda: results.append(len(client.images.list()))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert waiter.result().status_code == 0
    assert len(results) == 8


def test_registry_browsing_follows_the_engines_insecure_registries(client, tmp_path, name):
    """`registry ls` asks the registry itself, as the engine would reach it: loopback and what
    `/info` lists as insecure over unverified TLS first, then plain HTTP; anything else verified."""
    import httpx

    from tests.engine.registry.registry_support import Registry, Served, make_image, make_registry_app
    from tests.helpers import self_signed_tls
    from workbench.engine.registry.storage import RegistryStorage

    assert client.registry.insecure("127.0.0.1:5000") and client.registry.insecure("[::1]:5000")
    assert not client.registry.insecure("registry.example:5000") and not client.registry.insecure("docker.io")
    tls = self_signed_tls(tmp_path)
    storage = RegistryStorage(tmp_path / "reg")
    plain, secure = Served(make_registry_app(storage)), Served(make_registry_app(storage), tls=tls)
    try:
        with httpx.Client(base_url=plain.url) as c:
            Registry(plain, storage, c).push_image(f"{name}/tls", make_image("browse", layers=1), tag="v1")
        addr = f"127.0.0.1:{secure.port}"                  # speaks only TLS, self-signed
        assert client.registry.catalog(addr) == [f"{name}/tls"]
        assert client.registry.tags(addr, f"{name}/tls") == ["v1"]
    finally:
        secure.close()
        plain.close()


def test_registry_browsing_follows_link_pages_and_never_downgrades_tls(tmp_path):
    """`registry ls` follows the registry's `Link` pages to the end (distribution pages its catalog);
    and like the engine's client it uses plain HTTP only while TLS has not answered: a connection
    dropped on a later page is an error, not a reason to go on without TLS."""
    import asyncio

    from aiohttp import web

    from tests.engine.registry.registry_support import Served
    from tests.helpers import self_signed_tls
    from workbench.client._distribution import RegistryBrowser
    from workbench.errors import APIError

    drop = False

    async def catalog(request: web.Request) -> web.StreamResponse:
        if request.query.get("last") != "a":
            return web.json_response({"repositories": ["a"]}, headers={"Link": '</v2/_catalog?last=a>; rel="next"'})
        if drop:
            request.transport.abort()                  # a reset on the second page
            await asyncio.sleep(1)
        return web.json_response({"repositories": ["b"]})

    app = web.Application()
    app.router.add_get("/v2/_catalog", catalog)
    served = Served(app, tls=self_signed_tls(tmp_path))
    try:
        assert RegistryBrowser(f"127.0.0.1:{served.port}", insecure=True).catalog() == ["a", "b"]
        drop = True
        browser = RegistryBrowser(f"127.0.0.1:{served.port}", insecure=True)
        with pytest.raises(APIError):
            browser.catalog()
        assert browser.base_url.startswith("https://")
    finally:
        served.close()
