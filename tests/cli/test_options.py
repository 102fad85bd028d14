"""`run`/`create` flags → ContainerSpec, and the start-failure exit codes."""

from __future__ import annotations

import pytest

from workbench.cli.options import read_env_file, spec_from_args
from workbench.cli.parser import parse
from workbench.cli.sessions import start_exit_code


def test_spec_from_run_flags(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=1\n\nBARE\n")
    args = parse(["run", "--rm", "--env-file", str(env_file), "-e", "A=1", "-p", "127.0.0.1:8080:80",
                  "-p", "8443:443", "--expose", "9000-9001", "-v", "/anon", "-v", "data:/d:ro", "--memory", "64m",
                  "--cpus", "1.5", "--pids-limit", "10", "--restart", "always", "--entrypoint", "/bin/sh",
                  "--ulimit", "nofile=10:20", "--tmpfs", "/run:size=1m", "--add-host", "h:1.2.3.4",
                  "busybox", "-c", "echo"])
    body = spec_from_args(args, auto_remove=True, detach=False).to_wire()
    assert body["Env"] == ["FROM_FILE=1", "A=1"] and body["Entrypoint"] == ["/bin/sh"]
    assert body["Cmd"] == ["-c", "echo"]
    assert set(body["ExposedPorts"]) == {"80/tcp", "443/tcp", "9000/tcp", "9001/tcp"}
    host = body["HostConfig"]
    assert host["PortBindings"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "8080"}]
    assert host["PortBindings"]["443/tcp"] == [{"HostIp": "", "HostPort": "8443"}]
    assert host["Binds"] == ["data:/d:ro"] and body["Volumes"] == {"/anon": {}}
    assert host["Memory"] == 64 << 20 and host["NanoCpus"] == 1_500_000_000 and host["PidsLimit"] == 10
    assert host["RestartPolicy"]["Name"] == "always" and host["AutoRemove"] is True
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 10, "Hard": 20}]
    assert host["Tmpfs"] == {"/run": "size=1m"} and host["ExtraHosts"] == ["h:1.2.3.4"]
    assert body["AttachStdout"] and body["AttachStderr"] and not body["AttachStdin"]


def test_interactive_run_attaches_stdin_once():
    body = spec_from_args(parse(["run", "-i", "busybox", "cat"]), detach=False).to_wire()
    assert body["OpenStdin"] and body["StdinOnce"] and body["AttachStdin"]
    detached = spec_from_args(parse(["run", "-d", "-i", "busybox", "cat"]), detach=True).to_wire()
    assert detached["OpenStdin"] and not detached["StdinOnce"] and not detached["AttachStdout"]


def test_env_file_errors(tmp_path):
    with pytest.raises(Exception, match="open"):
        read_env_file(str(tmp_path / "missing"))


@pytest.mark.parametrize("message,code", [
    ('exec: "nope": executable file not found in $PATH', 127),
    ("stat /nonexistent-binary: no such file or directory", 127),
    ("exec /etc/passwd: permission denied", 126),
    ("exec /tmp: is a directory", 126),
    ("cgroup failure", 125),
])
def test_start_failures_map_like_docker(message, code):
    assert start_exit_code(message) == code


def test_since_until_timestamps():
    from workbench.cli.commands import timestamp

    now = 1_700_000_000.0
    assert timestamp("42m", now) == f"{now - 2520:.9f}"
    assert timestamp("1h30m", now) == f"{now - 5400:.9f}"
    assert timestamp("1.5s", now) == f"{now - 1.5:.9f}"
    assert timestamp("1700000000") == "1700000000"
    assert timestamp("2023-11-14T22:13:20Z") == f"{now:.9f}"
    assert timestamp("2023-11-14") == f"{now - 80000:.9f}"
    assert timestamp(None) is None
    with pytest.raises(Exception, match="invalid value"):
        timestamp("yesterday")
