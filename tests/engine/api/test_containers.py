"""Containers over the real socket, on real runc containers: lifecycle, waits, logs, errors."""

from __future__ import annotations

import json
import struct
import threading
import time

import pytest


def create(engine, cmd, name=None, **extra):
    body = {"Image": "busybox", "Cmd": cmd, **extra}
    r = engine.api.post("/containers/create", params={"name": name} if name else None, json=body)
    assert r.status_code == 201, r.text
    return r.json()["Id"]


def wait(engine, cid, condition=None):
    r = engine.api.post(f"/containers/{cid}/wait", params={"condition": condition} if condition else None)
    assert r.status_code == 200, r.text
    return r.json()


def run(engine, cmd, **extra):
    cid = create(engine, cmd, **extra)
    assert engine.api.post(f"/containers/{cid}/start").status_code == 204
    return cid, wait(engine, cid)


def frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        stream, size = struct.unpack(">BxxxL", data[:8])
        out.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return out


def test_echo_logs_multiplexed(engine, busybox):
    cid, res = run(engine, ["sh", "-c", "echo out; echo err >&2"])
    assert res == {"StatusCode": 0, "Error": None}
    r = engine.api.get(f"/containers/{cid}/logs", params={"stdout": 1, "stderr": 1})
    assert sorted(frames(r.content)) == [(1, b"out\n"), (2, b"err\n")]
    only_err = frames(engine.api.get(f"/containers/{cid}/logs", params={"stderr": 1}).content)
    assert only_err == [(2, b"err\n")]


@pytest.mark.parametrize("cmd,code", [(["sh", "-c", "exit 3"], 3), (["false"], 1), (["true"], 0),
                                      (["sh", "-c", "exit 255"], 255)])
def test_exit_codes_exact(engine, busybox, cmd, code):
    cid, res = run(engine, cmd)
    assert res["StatusCode"] == code
    st = engine.api.get(f"/containers/{cid}/json").json()["State"]
    assert st["ExitCode"] == code and st["Status"] == "exited" and not st["Running"]
    assert st["FinishedAt"] != "0001-01-01T00:00:00Z"


def test_many_containers_started_at_once(engine, busybox):
    # starts race through one monitor server: each container gets its own monitor, its own exit
    # code and its own log, and `--rm` ones are gone afterwards
    n = 12
    results: dict[int, tuple[str, dict]] = {}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            cid = create(engine, ["sh", "-c", f"echo out-{i}; exit {i}"], HostConfig={"AutoRemove": i % 2 == 1})
            waiter = threading.Thread(target=lambda: results.__setitem__(
                i, (cid, wait(engine, cid, "removed" if i % 2 else "next-exit"))))
            waiter.start()
            time.sleep(0.01)                           # the wait is registered before the start
            assert engine.api.post(f"/containers/{cid}/start").status_code == 204
            waiter.join(60)
            if i % 2 == 0:
                logs = engine.api.get(f"/containers/{cid}/logs", params={"stdout": 1}).content
                assert frames(logs) == [(1, f"out-{i}\n".encode())], logs
        except BaseException as err:                   # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert {i: r[1]["StatusCode"] for i, r in results.items()} == {i: i for i in range(n)}
    for i, (cid, _) in results.items():
        status = engine.api.get(f"/containers/{cid}/json").status_code
        assert status == (404 if i % 2 else 200), (i, status)
        if i % 2 == 0:
            assert engine.api.delete(f"/containers/{cid}").status_code == 204


def test_logs_tail_timestamps_since(engine, busybox):
    cid, _ = run(engine, ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done"])
    tail = frames(engine.api.get(f"/containers/{cid}/logs", params={"stdout": 1, "tail": 2}).content)
    assert [d for _, d in tail] == [b"line4\n", b"line5\n"]
    ts = frames(engine.api.get(f"/containers/{cid}/logs", params={"stdout": 1, "timestamps": 1,
                                                                  "tail": 1}).content)
    stamp, _, text = ts[0][1].partition(b" ")
    assert text == b"line5\n" and stamp.endswith(b"Z") and b"T" in stamp
    future = frames(engine.api.get(f"/containers/{cid}/logs", params={"stdout": 1,
                                                                      "since": int(time.time()) + 60}).content)
    assert future == []


def test_logs_follow_streams_until_exit(engine, busybox):
    cid = create(engine, ["sh", "-c", "echo a; sleep 0.5; echo b"])
    engine.api.post(f"/containers/{cid}/start")
    with engine.api.stream("GET", f"/containers/{cid}/logs", params={"stdout": 1, "follow": 1}) as r:
        data = b"".join(r.iter_bytes())
    assert [d for _, d in frames(data)] == [b"a\n", b"b\n"]


def test_wait_next_exit_posted_before_start(engine, busybox):
    cid = create(engine, ["sh", "-c", "exit 7"])
    result = {}

    def waiter():
        result["body"] = wait(engine, cid, "next-exit")

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    assert t.is_alive(), "next-exit must not answer before the container ran"
    engine.api.post(f"/containers/{cid}/start")
    t.join(20)
    assert result["body"]["StatusCode"] == 7


def test_wait_removed_with_autoremove(engine, busybox):
    cid = create(engine, ["true"], HostConfig={"AutoRemove": True})
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("b", wait(engine, cid, "removed")))
    t.start()
    time.sleep(0.1)
    engine.api.post(f"/containers/{cid}/start")
    t.join(20)
    assert result["b"]["StatusCode"] == 0
    assert engine.api.get(f"/containers/{cid}/json").status_code == 404


def test_missing_executable_127_and_rm_removes(engine, busybox):
    cid = create(engine, ["/nonexistent-binary"], HostConfig={"AutoRemove": True})
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("b", wait(engine, cid, "removed")))
    t.start()
    time.sleep(0.1)
    r = engine.api.post(f"/containers/{cid}/start")
    assert r.status_code == 400
    msg = r.json()["message"]
    assert "no such file or directory" in msg or "executable file not found" in msg
    t.join(20)
    assert result["b"]["StatusCode"] == 127
    assert engine.api.get(f"/containers/{cid}/json").status_code == 404


def test_stop_running_then_304(engine, busybox):
    cid = create(engine, ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"])
    engine.api.post(f"/containers/{cid}/start")
    time.sleep(0.3)
    t0 = time.monotonic()
    assert engine.api.post(f"/containers/{cid}/stop", params={"t": 10}).status_code == 204
    assert time.monotonic() - t0 < 5, "a process that handles SIGTERM stops at once"
    st = engine.api.get(f"/containers/{cid}/json").json()["State"]
    assert not st["Running"] and st["ExitCode"] == 0
    assert engine.api.post(f"/containers/{cid}/stop").status_code == 304


def test_stop_timeout_kills_with_sigkill(engine, busybox):
    cid = create(engine, ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    engine.api.post(f"/containers/{cid}/start")
    time.sleep(0.2)
    t0 = time.monotonic()
    engine.api.post(f"/containers/{cid}/stop", params={"t": 1})
    assert 0.9 < time.monotonic() - t0 < 10
    assert engine.api.get(f"/containers/{cid}/json").json()["State"]["ExitCode"] == 137


def test_remove_running_409_then_force(engine, busybox):
    cid = create(engine, ["sleep", "60"])
    engine.api.post(f"/containers/{cid}/start")
    r = engine.api.delete(f"/containers/{cid}")
    assert r.status_code == 409
    assert "Stop the container before attempting removal or force remove" in r.json()["message"]
    assert engine.api.delete(f"/containers/{cid}", params={"force": 1}).status_code == 204
    assert engine.api.get(f"/containers/{cid}/json").status_code == 404


def test_kill_signal_names(engine, busybox):
    for sig in ("SIGKILL", "9", "KILL"):
        cid = create(engine, ["sleep", "60"])
        engine.api.post(f"/containers/{cid}/start")
        assert engine.api.post(f"/containers/{cid}/kill", params={"signal": sig}).status_code == 204
        assert wait(engine, cid)["StatusCode"] == 137
    assert engine.api.post(f"/containers/{cid}/kill").status_code == 409
    assert engine.api.post(f"/containers/{cid}/kill", params={"signal": "NOPE"}).status_code in (400, 409)


def test_name_clash_409_and_prefix_resolution(engine, busybox):
    cid = create(engine, ["true"], name="clash")
    r = engine.api.post("/containers/create", params={"name": "clash"}, json={"Image": "busybox", "Cmd": ["true"]})
    assert r.status_code == 409 and "already in use" in r.json()["message"]
    assert engine.api.get(f"/containers/{cid[:8]}/json").json()["Id"] == cid
    assert engine.api.get("/containers/clash/json").json()["Name"] == "/clash"
    assert engine.api.get("/containers//clash/json").status_code in (200, 404)


def test_rename(engine, busybox):
    cid = create(engine, ["true"], name="before-rename")
    create(engine, ["true"], name="taken-name")
    assert engine.api.post(f"/containers/{cid}/rename", params={"name": "taken-name"}).status_code == 409
    assert engine.api.post(f"/containers/{cid}/rename", params={"name": "after-rename"}).status_code == 204
    assert engine.api.get("/containers/after-rename/json").json()["Id"] == cid


def test_pause_unpause_top_restart(engine, busybox):
    cid = create(engine, ["sleep", "60"])
    engine.api.post(f"/containers/{cid}/start")
    top = engine.api.get(f"/containers/{cid}/top").json()
    assert "PID" in top["Titles"] and any("sleep" in " ".join(p) for p in top["Processes"])
    assert engine.api.post(f"/containers/{cid}/pause").status_code == 204
    assert engine.api.get(f"/containers/{cid}/json").json()["State"]["Status"] == "paused"
    assert engine.api.post(f"/containers/{cid}/pause").status_code == 409
    assert engine.api.post(f"/containers/{cid}/unpause").status_code == 204
    pid1 = engine.api.get(f"/containers/{cid}/json").json()["State"]["Pid"]
    assert engine.api.post(f"/containers/{cid}/restart", params={"t": 0}).status_code == 204
    st = engine.api.get(f"/containers/{cid}/json").json()
    assert st["State"]["Running"] and st["State"]["Pid"] != pid1 and st["RestartCount"] == 0
    engine.api.delete(f"/containers/{cid}", params={"force": 1})


def test_list_filters_both_shapes(engine, busybox):
    cid = create(engine, ["true"], name="listme-1", Labels={"suite": "list"})
    running = create(engine, ["sleep", "30"], name="listme-2", Labels={"suite": "list"})
    engine.api.post(f"/containers/{running}/start")
    by_cli = engine.api.get("/containers/json", params={"all": 1, "filters": json.dumps(
        {"name": {"listme": True}})}).json()
    by_sdk = engine.api.get("/containers/json", params={"all": 1, "filters": json.dumps(
        {"name": ["listme"]})}).json()
    assert {c["Id"] for c in by_cli} == {cid, running} == {c["Id"] for c in by_sdk}
    only_running = engine.api.get("/containers/json", params={"filters": json.dumps(
        {"label": ["suite=list"]})}).json()
    assert [c["Id"] for c in only_running] == [running]
    created = engine.api.get("/containers/json", params={"filters": json.dumps(
        {"status": ["created"], "label": ["suite=list"]})}).json()
    assert [c["Id"] for c in created] == [cid]
    anc = engine.api.get("/containers/json", params={"all": 1, "filters": json.dumps(
        {"ancestor": ["busybox"], "label": ["suite=list"]})}).json()
    assert len(anc) == 2
    entry = only_running[0]
    assert entry["Names"] == ["/listme-2"] and entry["State"] == "running"
    assert entry["Status"].startswith("Up") and isinstance(entry["Created"], int)
    limited = engine.api.get("/containers/json", params={"limit": 1}).json()
    assert len(limited) == 1
    engine.api.delete(f"/containers/{running}", params={"force": 1})


def test_inspect_shape(engine, busybox):
    cid = create(engine, ["sh", "-c", "echo $FOO; pwd; id -u; hostname"], Env=["FOO=bar"], WorkingDir="/work",
                 User="1000:1000", Hostname="myhost", Labels={"a": "b"}, StopSignal="SIGUSR1",
                 HostConfig={"Memory": 64 * 1024 * 1024, "NanoCpus": 500_000_000, "PidsLimit": 50})
    engine.api.post(f"/containers/{cid}/start")
    assert wait(engine, cid)["StatusCode"] == 0
    out = frames(engine.api.get(f"/containers/{cid}/logs", params={"stdout": 1}).content)
    assert [d for _, d in out] == [b"bar\n", b"/work\n", b"1000\n", b"myhost\n"]
    info = engine.api.get(f"/containers/{cid}/json").json()
    for key in ("Status", "Running", "ExitCode", "OOMKilled", "Pid", "StartedAt", "FinishedAt"):
        assert key in info["State"]
    assert info["Config"]["Labels"]["a"] == "b" and info["Config"]["StopSignal"] == "SIGUSR1"
    assert info["HostConfig"]["Memory"] == 64 * 1024 * 1024 and info["HostConfig"]["PidsLimit"] == 50
    assert info["GraphDriver"]["Name"] == "overlay2" and info["Name"].startswith("/")
    assert info["Image"].startswith("sha256:")


def test_entrypoint_override_and_bind(engine, busybox, tmp_path):
    (tmp_path / "in.txt").write_text("from host\n")
    cid, res = run(engine, ["/data/in.txt"], Entrypoint=["cat"], HostConfig={"Binds": [f"{tmp_path}:/data:ro"]})
    assert res["StatusCode"] == 0
    assert frames(engine.api.get(f"/containers/{cid}/logs", params={"stdout": 1}).content) == [(1, b"from host\n")]
    mounts = engine.api.get(f"/containers/{cid}/json").json()["Mounts"]
    assert mounts[0]["Type"] == "bind" and mounts[0]["RW"] is False
    cid, res = run(engine, ["sh", "-c", "echo x > /data/w"], HostConfig={"Binds": [f"{tmp_path}:/data:ro"]})
    assert res["StatusCode"] != 0


def test_restart_policy_on_failure(engine, busybox):
    cid = create(engine, ["sh", "-c", "exit 2"], HostConfig={"RestartPolicy": {"Name": "on-failure",
                                                                               "MaximumRetryCount": 2}})
    engine.api.post(f"/containers/{cid}/start")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        info = engine.api.get(f"/containers/{cid}/json").json()
        if info["RestartCount"] == 2 and info["State"]["Status"] == "exited":
            break
        time.sleep(0.1)
    assert info["RestartCount"] == 2 and info["State"]["ExitCode"] == 2


def test_restart_policy_always_and_manual_stop(engine, busybox):
    cid = create(engine, ["sh", "-c", "sleep 0.2; exit 1"], HostConfig={"RestartPolicy": {"Name": "always"}})
    engine.api.post(f"/containers/{cid}/start")
    deadline = time.monotonic() + 20
    while engine.api.get(f"/containers/{cid}/json").json()["RestartCount"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine.api.get(f"/containers/{cid}/json").json()["RestartCount"] >= 1
    engine.api.post(f"/containers/{cid}/stop", params={"t": 1})
    time.sleep(0.8)
    assert engine.api.get(f"/containers/{cid}/json").json()["State"]["Status"] == "exited"


def test_bad_json_and_types(engine, busybox):
    r = engine.api.post("/containers/create", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = engine.api.post("/containers/create", json={"Image": "busybox", "Cmd": "true",
                                                   "HostConfig": {"Memory": "lots"}})
    assert r.status_code == 400
    r = engine.api.post("/containers/create", json={"Image": "nosuchimage:1", "Cmd": ["true"]})
    assert r.status_code == 404 and r.json()["message"].startswith("No such image")
    r = engine.api.post("/containers/create", json={"Image": "busybox", "Cmd": ["true"],
                                                   "SomeFutureField": {"x": 1}, "HostConfig": {"GwPriority": 1}})
    assert r.status_code == 201
    assert engine.api.get("/_ping").status_code == 200


def test_prune_removes_stopped_only(engine, busybox):
    done, _ = run(engine, ["true"])
    live = create(engine, ["sleep", "30"])
    engine.api.post(f"/containers/{live}/start")
    out = engine.api.post("/containers/prune").json()
    assert done in out["ContainersDeleted"] and live not in out["ContainersDeleted"]
    engine.api.delete(f"/containers/{live}", params={"force": 1})


def test_image_in_use_conflict(engine, busybox):
    r = engine.api.post("/images/create", params={"fromSrc": "-", "repo": "inuse:1"},
                        content=__import__("tests.helpers", fromlist=["x"]).busybox_rootfs_tar())
    cid = create(engine, ["true"], Image="inuse:1")
    r = engine.api.delete("/images/inuse:1")
    assert r.status_code == 409 and "is using its referenced image" in r.json()["message"]
    engine.api.delete(f"/containers/{cid}")
    assert engine.api.delete("/images/inuse:1").status_code == 200


def test_environment_is_merged_and_built_as_dockerd_does(engine, busybox):
    """Config.Env: the request's variables first, then the image's it does not set (moby's merge).
    The process gets dockerd's defaults first (PATH, HOSTNAME, TERM with a terminal), each replaced
    in place by the container's own, then the rest in order; HOME last."""
    cid = create(engine, ["env"], Env=["FOO=bar", "PATH=/x:/bin"], Hostname="envbox")
    info = engine.api.get(f"/containers/{cid}/json").json()
    image_env = engine.api.get("/images/busybox/json").json()["Config"]["Env"] or []
    assert info["Config"]["Env"] == ["FOO=bar", "PATH=/x:/bin"] + [e for e in image_env
                                                                    if e.split("=")[0] not in ("FOO", "PATH")]
    assert engine.api.post(f"/containers/{cid}/start").status_code == 204
    wait(engine, cid)
    out = engine.api.get(f"/containers/{cid}/logs", params={"stdout": 1}).content
    lines = b"".join(d for _, d in frames(out)).decode().splitlines()
    assert lines[:3] == ["PATH=/x:/bin", "HOSTNAME=envbox", "FOO=bar"] and lines[-1] == "HOME=/root"
    engine.api.delete(f"/containers/{cid}")


def test_tmpfs_flag_mounts_with_dockerds_default_options(engine, busybox):
    """`--tmpfs /t:size=1m` (HostConfig.Tmpfs): a tmpfs, noexec,nosuid,nodev unless told otherwise."""
    from workbench.engine.services.mounts import tmpfs_options
    assert tmpfs_options("") == ["noexec", "nosuid", "nodev"]
    assert tmpfs_options("exec,size=1m,size=2m,mode=700") == ["nosuid", "nodev", "exec", "size=2m", "mode=700"]
    cid, res = run(engine, ["sh", "-c", "touch /t/x && ls /t && grep ' /t ' /proc/mounts"],
                   HostConfig={"Tmpfs": {"/t": "size=1m"}})
    out = b"".join(d for _, d in frames(engine.api.get(f"/containers/{cid}/logs",
                                                         params={"stdout": 1, "stderr": 1}).content)).decode()
    assert res["StatusCode"] == 0, out
    lines = out.splitlines()
    assert lines[0] == "x" and lines[1].startswith("tmpfs /t tmpfs ")
    opts = lines[1].split()[3].split(",")
    assert {"nosuid", "nodev", "noexec", "size=1024k"} <= set(opts), opts
    assert engine.api.get(f"/containers/{cid}/json").json()["Mounts"] == []
    engine.api.delete(f"/containers/{cid}")
    # --mount type=tmpfs,tmpfs-size=..,tmpfs-mode=..: the same defaults, its options converted
    cid, res = run(engine, ["grep", " /m ", "/proc/mounts"], HostConfig={"Mounts": [
        {"Type": "tmpfs", "Target": "/m", "TmpfsOptions": {"SizeBytes": 2 << 20, "Mode": 0o700}}]})
    line = b"".join(d for _, d in frames(engine.api.get(f"/containers/{cid}/logs", params={"stdout": 1}).content))
    assert res["StatusCode"] == 0
    assert {"noexec", "nosuid", "nodev", "size=2048k", "mode=700"} <= set(line.split()[3].decode().split(","))
    engine.api.delete(f"/containers/{cid}")
