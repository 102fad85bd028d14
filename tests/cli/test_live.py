"""The `workbench` command against a live engine, run as a real process: output, exit codes, stdin.

Every verb of the CLI is exercised here, the way a user types it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.client.helpers import free_port, start_registry
from tests.helpers import forget_engine

REPO = Path(__file__).resolve().parents[2]


class WB:
    """Runs `python -m workbench.cli.main -H <engine> ...` and returns the CompletedProcess."""

    def __init__(self, host: str, config: Path) -> None:
        self.host = host
        self.env = dict(os.environ, PYTHONPATH=str(REPO), DOCKER_CONFIG=str(config))
        self.env.pop("WORKBENCH_HOST", None)

    def __call__(self, *argv: str, input: bytes | str | None = None, code: int | None = 0,
                 binary: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run([sys.executable, "-m", "workbench.cli.main", "-H", self.host, *argv],
                              input=data, capture_output=True, env=self.env, timeout=timeout,
                              stdin=None if data is not None else subprocess.DEVNULL)
        if not binary:
            proc.stdout = proc.stdout.decode()  # type: ignore[assignment]
            proc.stderr = proc.stderr.decode()  # type: ignore[assignment]
        if code is not None:
            assert proc.returncode == code, (argv, proc.returncode, proc.stdout, proc.stderr)
        return proc


@pytest.fixture
def wb(engine, busybox, tmp_path):
    return WB(engine.host, tmp_path / "docker-config")


@pytest.fixture
def name():
    return f"wbc{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cleanup(engine):
    made: list[str] = []
    yield made
    with engine.client() as client:
        for cid in made:
            try:
                client.containers.remove(cid, force=True, volumes=True)
            except Exception:
                pass


# -- system ---------------------------------------------------------------------------------------
def test_version_info_df(wb, engine):
    out = wb("version").stdout
    assert out.startswith("Client:\n") and "\nServer:\n" in out and "API version:      1.41" in out
    assert wb("version", "--format", "{{.Server.ApiVersion}}").stdout.strip() == "1.41"
    assert "Containers:" in wb("info").stdout
    assert wb("system", "df").stdout.split()[:5] == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert wb("engine", "status", "--root", str(engine.root)).returncode == 0


# -- images ---------------------------------------------------------------------------------------
def test_images_tag_history_inspect_rmi(wb, busybox, name):
    out = wb("images").stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.split()[:2] == ["busybox", "latest"] for line in out[1:])
    assert busybox[7:19] in wb("images", "-q").stdout.split()
    wb("tag", "busybox", f"{name}:v1")
    wb("image", "tag", "busybox", f"docker.io/library/{name}:v2")
    assert {f"{name}:v1", f"{name}:v2"} <= set(json.loads(wb("image", "inspect", "busybox").stdout)[0]["RepoTags"])
    assert wb("inspect", "--format", "{{.Id}}", f"{name}:v1").stdout.strip() == busybox
    assert sorted(wb("image", "ls", name, "--format", "{{.Repository}}:{{.Tag}}").stdout.split()) == \
        [f"{name}:v1", f"{name}:v2"]
    hist = wb("history", "busybox").stdout.splitlines()
    assert hist[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"] and busybox[7:19] in hist[1]
    assert wb("rmi", f"{name}:v1", f"{name}:v2").stdout.splitlines() == [f"Untagged: {name}:v1",
                                                                          f"Untagged: {name}:v2"]
    err = wb("rmi", f"{name}:v1", code=1).stderr
    assert err.startswith("Error response from daemon: No such image")
    assert wb("inspect", f"{name}-nope", code=1).stderr.strip().endswith(f"No such object: {name}-nope")


def test_bootstrap_import_save_load(wb, name, tmp_path):
    image_id = wb("image", "bootstrap", "busybox", "--tag", f"{name}:boot").stdout.strip()
    assert image_id.startswith("sha256:")
    assert wb("run", "--rm", f"{name}:boot", "cat", "/etc/passwd").stdout.startswith("root:x:0:0:")
    wb("save", "-o", str(tmp_path / "img.tar"), f"{name}:boot")
    assert "manifest.json" in tarfile.open(tmp_path / "img.tar").getnames()
    saved = wb("save", f"{name}:boot", binary=True).stdout
    assert tarfile.open(fileobj=io.BytesIO(saved)).getnames()
    wb("rmi", f"{name}:boot")
    assert wb("load", "-i", str(tmp_path / "img.tar")).stdout.strip() == f"Loaded image: {name}:boot"
    wb("rmi", f"{name}:boot")
    assert wb("load", input=saved).stdout.strip() == f"Loaded image: {name}:boot"
    from workbench.cli.bootstrap import busybox_rootfs

    (tmp_path / "rootfs.tar").write_bytes(busybox_rootfs())
    imported = wb("import", "-c", 'CMD ["echo", "from import"]', "-m", "msg", str(tmp_path / "rootfs.tar"),
                  f"{name}:imp").stdout.strip()
    assert imported.startswith("sha256:")
    assert wb("run", "--rm", f"{name}:imp").stdout == "from import\n"
    piped = wb("import", "-", f"{name}:pipe", input=busybox_rootfs()).stdout.strip()
    assert piped.startswith("sha256:")
    wb("rmi", f"{name}:boot", f"{name}:imp", f"{name}:pipe")


# -- run ------------------------------------------------------------------------------------------
def test_run_output_and_exit_codes(wb, name):
    proc = wb("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", code=3)
    assert proc.stdout == "out\n" and proc.stderr == "err\n"
    assert wb("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "busybox", "sh", "-c",
              "echo $A $(pwd) $(id -u)").stdout == "1 /tmp 65534\n"
    assert wb("run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint").stdout == "via entrypoint\n"
    assert wb("run", "--rm", "-i", "busybox", "cat", input="piped in\n").stdout == "piped in\n"
    assert wb("run", "--rm", "busybox", "sh", "-c", "sleep 10 & pid=$!; kill -9 $pid; wait $pid", code=137)
    assert "Error response from daemon" in wb("run", "--rm", "busybox", "/nonexistent-binary", code=127).stderr
    err = wb("run", "--rm", f"{name}-missing:1", code=125).stderr
    assert f"Unable to find image '{name}-missing:1' locally" in err


def test_run_detached_ps_logs_stop_rm(wb, name, cleanup):
    cid = wb("run", "-d", "--name", name, "-l", f"suite={name}", "busybox", "sh", "-c",
             "echo started; trap 'exit 0' TERM; while true; do sleep 0.1; done").stdout.strip()
    cleanup.append(cid)
    assert len(cid) == 64
    lines = wb("ps", "--filter", f"name={name}").stdout.splitlines()
    assert lines[0].split()[:2] == ["CONTAINER", "ID"] and cid[:12] in lines[1] and lines[1].endswith(name)
    assert wb("ps", "-q", "--filter", f"label=suite={name}").stdout.split() == [cid[:12]]
    assert wb("ps", "--no-trunc", "-q", "--filter", f"name={name}").stdout.split() == [cid]
    for _ in range(50):
        if wb("logs", name).stdout == "started\n":
            break
    assert wb("logs", "--tail", "1", name).stdout == "started\n"
    assert wb("logs", "-t", name).stdout.split(" ", 1)[1] == "started\n"
    wb("run", "-d", "--name", name, "busybox", code=125)  # name in use
    assert "stop the container before" in wb("rm", name, code=1).stderr.lower()
    assert wb("stop", "-t", "5", name).stdout.strip() == name
    assert wb("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.strip() == "exited 0"
    assert wb("logs", "-f", name, timeout=30).stdout == "started\n"  # returns: the container has stopped
    assert wb("rm", name).stdout.strip() == name


def test_create_start_attach_wait_rename(wb, name, cleanup):
    cid = wb("create", "--name", name, "busybox", "sh", "-c", "echo hi; exit 4").stdout.strip()
    cleanup.append(cid)
    assert wb("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "created"
    proc = wb("start", "-a", name, code=4)
    assert proc.stdout == "hi\n"
    assert wb("wait", name).stdout.strip() == "4"
    wb("rename", name, f"{name}-2")
    assert wb("inspect", "-f", "{{.Name}}", f"{name}-2").stdout.strip() == f"/{name}-2"
    assert wb("start", f"{name}-2").stdout.strip() == f"{name}-2"


def test_stop_kill_restart_pause_top_exec(wb, name, cleanup):
    cid = wb("run", "-d", "--name", name, "busybox", "sleep", "60").stdout.strip()
    cleanup.append(cid)
    top = wb("top", name).stdout.splitlines()
    assert "PID" in top[0] and any("sleep 60" in line for line in top[1:])
    assert wb("exec", name, "sh", "-c", "echo in-exec; exit 5", code=5).stdout == "in-exec\n"
    assert wb("exec", "-i", name, "cat", input="to exec\n").stdout == "to exec\n"
    assert wb("exec", "-e", "X=7", "-w", "/tmp", name, "sh", "-c", "echo $X $(pwd)").stdout == "7 /tmp\n"
    wb("exec", "-d", name, "touch", "/tmp/detached")
    wb("pause", name)
    assert wb("inspect", "-f", "{{.State.Paused}}", name).stdout.strip() == "true"
    wb("unpause", name)
    wb("restart", "-t", "1", name)
    assert wb("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    assert wb("kill", name).stdout.strip() == name
    assert wb("wait", name).stdout.strip() == "137"
    assert "No such container" in wb("kill", f"{name}-nope", code=1).stderr


def test_cp_diff_export_commit(wb, name, cleanup, tmp_path):
    cid = wb("run", "-d", "--name", name, "busybox", "sleep", "60").stdout.strip()
    cleanup.append(cid)
    src = tmp_path / "in.txt"
    src.write_text("copied in\n")
    wb("cp", str(src), f"{name}:/tmp/")
    wb("cp", str(src), f"{name}:/tmp/renamed.txt")
    assert wb("exec", name, "cat", "/tmp/in.txt", "/tmp/renamed.txt").stdout == "copied in\ncopied in\n"
    wb("cp", f"{name}:/tmp/in.txt", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "copied in\n"
    (tmp_path / "outdir").mkdir()
    wb("cp", f"{name}:/etc", str(tmp_path / "outdir"))
    assert (tmp_path / "outdir" / "etc" / "passwd").read_text().startswith("root:")
    tar_bytes = wb("cp", f"{name}:/tmp/in.txt", "-", binary=True).stdout
    assert tarfile.open(fileobj=io.BytesIO(tar_bytes)).extractfile("in.txt").read() == b"copied in\n"
    diff = wb("diff", name).stdout.splitlines()
    assert "A /tmp/in.txt" in diff
    exported = wb("export", name, binary=True).stdout
    assert any(n.lstrip("./") == "tmp/in.txt" for n in tarfile.open(fileobj=io.BytesIO(exported)).getnames())
    wb("export", "-o", str(tmp_path / "fs.tar"), name)
    assert (tmp_path / "fs.tar").stat().st_size == len(exported)
    image_id = wb("commit", "-c", 'CMD ["cat", "/tmp/in.txt"]', name, f"{name}:c").stdout.strip()
    assert image_id.startswith("sha256:")
    assert wb("run", "--rm", f"{name}:c").stdout == "copied in\n"
    wb("rmi", f"{name}:c")


def test_prune_verbs(wb, name):
    cid = wb("create", "-l", f"prune={name}", "busybox", "true").stdout.strip()
    out = wb("container", "prune", "-f", "--filter", f"label=prune={name}").stdout
    assert cid in out and "Total reclaimed space:" in out
    assert "Total reclaimed space:" in wb("image", "prune", "-f").stdout
    assert "Total reclaimed space:" in wb("system", "prune", "-f", "--filter", f"label=prune={name}").stdout


# -- build ----------------------------------------------------------------------------------------
def test_build(wb, name, tmp_path, cleanup):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nARG WHO=world\nCOPY hello.txt /\n"
                                    "RUN echo \"hello $WHO\" >> /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n")
    (ctx / "hello.txt").write_text("from context\n")
    out = wb("build", "-t", f"{name}:1", "--build-arg", "WHO=cli", "--label", "k=v", str(ctx)).stdout
    assert "Step 1/" in out and f"Successfully tagged {name}:1" in out
    assert wb("run", "--rm", f"{name}:1").stdout == "from context\nhello cli\n"
    quiet = wb("build", "-q", "-t", f"{name}:2", "--build-arg", "WHO=cli", "--label", "k=v", str(ctx)).stdout
    assert quiet.strip().startswith("sha256:") and len(quiet.strip()) == 71
    other = tmp_path / "Dockerfile.other"
    other.write_text("FROM busybox\nCMD [\"echo\", \"other\"]\n")
    wb("build", "-t", f"{name}:3", "-f", str(other), str(ctx))
    assert wb("run", "--rm", f"{name}:3").stdout == "other\n"
    wb("build", "-t", f"{name}:4", "-", input="FROM busybox\nCMD [\"echo\", \"stdin\"]\n")
    assert wb("run", "--rm", f"{name}:4").stdout == "stdin\n"
    failed = wb("build", "-", input="FROM busybox\nRUN exit 7\n", code=1)
    assert "returned a non-zero code: 7" in failed.stderr
    wb("rmi", f"{name}:1", f"{name}:2", f"{name}:3", f"{name}:4")


# -- networks, volumes, ports -----------------------------------------------------------------------
def test_network_verbs(wb, name, cleanup):
    octet = int(name[-2:], 16)
    net_id = wb("network", "create", "--subnet", f"10.232.{octet}.0/24", "--label", "k=v", name).stdout.strip()
    try:
        lines = wb("network", "ls", "--filter", f"name={name}").stdout.splitlines()
        assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"] and name in lines[1]
        assert wb("network", "ls", "-q", "--filter", f"name={name}").stdout.split() == [net_id[:12]]
        doc = json.loads(wb("network", "inspect", name).stdout)[0]
        assert doc["Labels"] == {"k": "v"} and doc["IPAM"]["Config"][0]["Subnet"] == f"10.232.{octet}.0/24"
        cleanup.append(wb("run", "-d", "--name", f"{name}-srv", "--network", name, "--network-alias", "svc",
                          "busybox", "sleep", "60").stdout.strip())
        assert wb("run", "--rm", "--network", name, "busybox", "ping", "-c", "1", "-W", "2", "svc").returncode == 0
        cleanup.append(wb("run", "-d", "--name", f"{name}-late", "busybox", "sleep", "60").stdout.strip())
        wb("network", "connect", "--alias", "late", name, f"{name}-late")
        assert f"{name}-late" in wb("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}",
                                    name).stdout
        wb("network", "disconnect", name, f"{name}-late")
        wb("rm", "-f", f"{name}-srv", f"{name}-late")
    finally:
        wb("network", "rm", name, code=None)
    assert wb("network", "inspect", name, code=1).stderr.startswith("Error response from daemon:")


def test_volume_verbs_and_mounts(wb, name, cleanup):
    assert wb("volume", "create", "--label", "k=v", name).stdout.strip() == name
    assert wb("volume", "ls", "-q", "--filter", f"name={name}").stdout.split() == [name]
    assert wb("volume", "ls").stdout.splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert json.loads(wb("volume", "inspect", name).stdout)[0]["Labels"] == {"k": "v"}
    wb("run", "--rm", "-v", f"{name}:/data", "busybox", "sh", "-c", "echo persisted > /data/f")
    assert wb("run", "--rm", "--mount", f"type=volume,source={name},target=/d,readonly", "busybox",
              "cat", "/d/f").stdout == "persisted\n"
    cleanup.append(wb("create", "-v", f"{name}:/data", "busybox").stdout.strip())
    assert wb("volume", "rm", name, code=1).stderr.startswith("Error response from daemon:")
    wb("rm", cleanup.pop())
    assert wb("volume", "rm", name).stdout.strip() == name


def test_publish_and_port(wb, name, cleanup):
    port = free_port()
    cleanup.append(wb("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", "busybox", "httpd", "-f",
                      "-p", "80").stdout.strip())
    assert wb("port", name).stdout.strip() == f"80/tcp -> 127.0.0.1:{port}"
    assert wb("port", name, "80").stdout.strip() == f"127.0.0.1:{port}"
    assert f"127.0.0.1:{port}->80/tcp" in wb("ps", "--filter", f"name={name}").stdout


# -- registry -------------------------------------------------------------------------------------
def test_push_pull_login_logout_registry_ls(wb, name, tmp_path):
    from workbench.engine.registry.auth import make_htpasswd_line

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(make_htpasswd_line("bob", "pw") + "\n")
    proc, addr = start_registry(tmp_path, htpasswd)
    try:
        ref = f"{addr}/{name}/bb:1"
        wb("tag", "busybox", ref)
        assert wb("push", ref, code=1).stderr  # not logged in yet
        assert "Error response from daemon" in wb("login", "-u", "bob", "-p", "bad", addr, code=1).stderr
        assert wb("login", "-u", "bob", "--password-stdin", addr, input="pw\n").stdout.strip() == "Login Succeeded"
        config = json.loads((Path(wb.env["DOCKER_CONFIG"]) / "config.json").read_text())
        assert addr in config["auths"]
        pushed = wb("push", ref).stdout
        assert "digest: sha256:" in pushed
        assert wb("registry", "ls", addr).stdout.split() == [f"{name}/bb"]
        assert wb("registry", "ls", f"{addr}/{name}/bb").stdout.split() == ["1"]
        wb("rmi", ref)
        pulled = wb("pull", ref).stdout
        assert "Status:" in pulled and pulled.strip().endswith(ref)
        assert wb("pull", "-q", ref).stdout.strip() == ref
        # -a: every tag, both ways; a bare name without -a means :latest; -a with a tag is refused
        repo = f"{addr}/{name}/bb"
        wb("tag", "busybox", f"{repo}:2")
        assert "tag can't be used with --all-tags/-a" in wb("push", "-a", ref, code=1).stderr
        assert "tag can't be used with --all-tags/-a" in wb("pull", "-a", ref, code=1).stderr
        no_latest = wb("push", repo, code=1)                                 # there is no :latest
        assert no_latest.stdout.strip() == "Using default tag: latest" and "does not exist" in no_latest.stderr
        pushed_all = wb("push", "-a", repo).stdout
        assert "1: digest: sha256:" in pushed_all and "2: digest: sha256:" in pushed_all
        wb("rmi", ref, f"{repo}:2")
        pulled_all = wb("pull", "-a", repo).stdout
        assert pulled_all.count("Pulling from") == 2 and f"Status: Downloaded newer image for {repo}" in pulled_all
        assert {t.split(":")[-1] for t in wb("images", "--format", "{{.Tag}}", repo).stdout.split()} == {"1", "2"}
        assert wb("logout", addr).stdout.strip() == f"Removing login credentials for {addr}"
        wb("rmi", ref)
        assert wb("pull", ref, code=1).stderr
    finally:
        proc.terminate()
        proc.wait(10)


def test_registry_serve_with_tokens_and_registry_gc(wb, name, tmp_path):
    """`registry serve --token`: logins and pushes go through Bearer tokens; `registry gc` (and
    `--dry-run`) on the same root keep what the pushed image references and sweep an orphan."""
    import time as _time

    import httpx

    from workbench.engine.registry.auth import make_htpasswd_line

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(make_htpasswd_line("tok", "pw") + "\n")
    proc, addr = start_registry(tmp_path, htpasswd, "--token")
    try:
        challenge = httpx.get(f"http://{addr}/v2/").headers["WWW-Authenticate"]
        assert challenge.startswith(f'Bearer realm="http://{addr}/token"')
        wb("login", "-u", "tok", "--password-stdin", addr, input="pw\n")
        ref = f"{addr}/{name}/gc:1"
        wb("tag", "busybox", ref)
        assert "digest: sha256:" in wb("push", ref).stdout
        token = httpx.get(f"http://{addr}/token", auth=("tok", "pw"),
                          params={"scope": f"repository:{name}/gc:pull,push"}).json()["token"]
        orphan = os.urandom(2000)
        digest = "sha256:" + hashlib.sha256(orphan).hexdigest()
        h = {"Authorization": f"Bearer {token}"}
        loc = httpx.post(f"http://{addr}/v2/{name}/gc/blobs/uploads/", headers=h).headers["Location"]
        sep = "&" if "?" in loc else "?"
        assert httpx.put(f"http://{addr}{loc}{sep}digest={digest}", content=orphan, headers=h).status_code == 201
    finally:
        proc.terminate()
        proc.wait(10)
    root = tmp_path / "reg"
    past = _time.time() - 7200                       # older than gc's grace period
    for dirpath, _, files in os.walk(root):
        for f in files:
            os.utime(os.path.join(dirpath, f), (past, past))
    dry = wb("registry", "gc", "--root", str(root), "--dry-run").stdout.splitlines()
    assert dry[0] == f"would remove blob {digest}" and dry[-1].startswith("1 blobs would be removed, ")
    assert (root / "blobs" / "sha256" / digest.split(":")[1]).exists()
    done = wb("registry", "gc", "--root", str(root)).stdout.splitlines()
    assert done[0] == f"removed blob {digest}" and done[-1].startswith("1 blobs removed, ")
    assert not (root / "blobs" / "sha256" / digest.split(":")[1]).exists()
    assert wb("registry", "gc", "--root", str(root)).stdout.startswith("0 blobs removed, 0B freed, ")


def test_usage_errors_from_the_real_command(wb):
    proc = wb("run", "--cpus", "many", "busybox", code=125)
    assert "See 'workbench run --help'." in proc.stderr
    assert wb("ps", "--bogus", code=125).stderr.startswith("unknown flag: --bogus")


def test_engine_start_status_stop_on_a_second_root(wb, tmp_path):
    """`engine start --detach` on its own root and socket, then `status`, a request, and `stop`."""
    root, sock = tmp_path / "root2", f"unix://{tmp_path}/second.sock"
    second = WB(sock, tmp_path / "cfg2")
    second("engine", "start", "--root", str(root), "--host", sock, "--detach",
           "--insecure-registry", "10.99.0.0/16", "--insecure-registry", "reg.internal:5000", timeout=60)
    try:
        assert second("engine", "status", "--root", str(root)).returncode == 0
        assert second("ps", "-a").stdout.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                                     "PORTS", "NAMES"]
        # the daemon got the insecure registries (and /info lists them as dockerd does)
        info = json.loads(second("info", "--format", "{{json .RegistryConfig}}").stdout)
        assert info["InsecureRegistryCIDRs"] == ["::1/128", "127.0.0.0/8", "10.99.0.0/16"]
        assert info["IndexConfigs"]["reg.internal:5000"]["Secure"] is False
        assert info["IndexConfigs"]["docker.io"]["Official"] is True
    finally:
        second("engine", "stop", "--root", str(root), timeout=60)
        forget_engine(root)
        left = _mounts_under(root)
        for mount in sorted(left, key=len, reverse=True):  # never leak a mount into the next tests
            subprocess.run(["umount", "-l", mount], check=False)
    assert second("engine", "status", "--root", str(root), code=1).returncode == 1
    assert "Cannot connect" in second("ps", code=1).stderr
    assert left == [], f"the stopped engine left mounts behind: {left}"


def _mounts_under(base: Path) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line.split()[4] for line in lines if line.split()[4].startswith(str(base))]
