"""The real docker CLI (28.x) against our daemon: images, import, tag, run -d, ps, logs, inspect,
stop, rm, rmi, save/load. The CLI negotiates down to API 1.41 through HEAD /_ping."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.helpers import busybox_rootfs_tar

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


@pytest.fixture(scope="module")
def docker(engine, busybox, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("dockercfg")

    def run(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([DOCKER, "-H", engine.host, *args], input=input, capture_output=True, timeout=120,
                           env={"DOCKER_CONFIG": str(cfg), "PATH": "/usr/bin:/bin:/usr/local/bin",
                                "DOCKER_BUILDKIT": "0"})
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}): {p.stderr.decode()}")
        return p
    return run


def test_version_negotiates_141(docker):
    out = docker("version", "--format", "{{.Server.APIVersion}}").stdout.decode().strip()
    assert out == "1.41"


def test_import_tag_images_rmi(docker):
    out = docker("import", "-c", 'CMD ["sh"]', "-", "cli-imported:1", input=busybox_rootfs_tar())
    assert out.stdout.decode().strip().startswith("sha256:")
    docker("tag", "cli-imported:1", "cli-imported:2")
    listing = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    assert "cli-imported:1" in listing and "cli-imported:2" in listing
    rmi = docker("rmi", "cli-imported:2").stdout.decode()
    assert "Untagged: cli-imported:2" in rmi
    filtered = docker("images", "--filter", "reference=cli-imp*", "-q").stdout.decode().split()
    assert len(filtered) == 1


def test_run_detached_ps_logs_inspect_stop_rm(docker):
    cid = docker("run", "-d", "--name", "cli-web", "busybox", "sh", "-c",
                 "echo hello-from-cli; sleep 60").stdout.decode().strip()
    assert len(cid) == 64
    ps = docker("ps", "--filter", "name=cli-web", "--format", "{{.Names}} {{.Status}}").stdout.decode()
    assert ps.startswith("cli-web Up")
    import time
    for _ in range(50):
        logs = docker("logs", "cli-web").stdout.decode()
        if logs:
            break
        time.sleep(0.1)
    assert logs == "hello-from-cli\n"
    running = docker("inspect", "--format", "{{.State.Running}} {{.Name}}", "cli-web").stdout.decode().strip()
    assert running == "true /cli-web"
    docker("stop", "-t", "1", "cli-web")
    state = json.loads(docker("inspect", "cli-web").stdout)[0]["State"]
    assert state["Running"] is False
    docker("rm", "cli-web")
    assert docker("inspect", "cli-web", check=False).returncode != 0


def test_run_foreground_and_exit_codes(docker):
    p = docker("run", "--rm", "busybox", "sh", "-c", "echo fg; exit 5", check=False)
    assert p.returncode == 5
    assert p.stdout.decode() == "fg\n"
    p = docker("run", "--rm", "busybox", "/nonexistent-binary", check=False)
    assert p.returncode == 127


def test_rm_running_message(docker):
    docker("run", "-d", "--name", "cli-busy", "busybox", "sleep", "60")
    p = docker("rm", "cli-busy", check=False)
    assert p.returncode != 0 and "Stop the container before attempting removal" in p.stderr.decode()
    docker("rm", "-f", "cli-busy")


def test_save_load(docker, tmp_path):
    out = tmp_path / "bb.tar"
    docker("save", "-o", str(out), "busybox:latest")
    docker("tag", "busybox:latest", "cli-saved:1")
    docker("rmi", "cli-saved:1")
    loaded = docker("load", "-i", str(out)).stdout.decode()
    assert "Loaded image: busybox:latest" in loaded


def test_run_interactive_stdin_half_close(docker):
    p = docker("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done >&2", input=b"line one\nline two\n")
    assert p.stdout.decode() == "line one\nline two\n"
    assert p.stderr.decode().strip() == "done"
    p = docker("run", "--rm", "-i", "busybox", "wc", "-l", input=b"a\nb\nc\n")
    assert p.stdout.decode().strip() == "3"


def test_exec_like_cp_and_diff(docker, tmp_path):
    docker("run", "-d", "--name", "cli-files", "busybox", "sh", "-c", "echo data > /tmp/made.txt; sleep 60")
    import time
    time.sleep(0.5)
    docker("cp", "cli-files:/tmp/made.txt", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "data\n"
    (tmp_path / "in.txt").write_text("pushed in\n")
    docker("cp", str(tmp_path / "in.txt"), "cli-files:/tmp/in.txt")
    diff = docker("diff", "cli-files").stdout.decode()
    assert "A /tmp/made.txt" in diff and "A /tmp/in.txt" in diff
    # what the runtime put there (mount points, /etc/hosts and co.) is no change, as with dockerd,
    # which keeps them in an init layer: a container that wrote nothing has an empty diff
    lines = set(diff.splitlines())
    assert not lines & {"A /dev", "A /proc", "A /sys", "A /etc/hosts", "A /etc/resolv.conf", "A /etc/hostname"}
    docker("run", "-d", "--name", "cli-idle", "busybox", "sleep", "60")
    assert docker("diff", "cli-idle").stdout.decode() == ""
    missing = docker("cp", "cli-idle:/no/such/file", str(tmp_path / "x"), check=False)
    assert missing.returncode != 0
    assert "Could not find the file /no/such/file in container cli-idle" in missing.stderr.decode()
    docker("rm", "-f", "cli-files", "cli-idle")
