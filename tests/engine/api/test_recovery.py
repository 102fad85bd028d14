"""SIGKILL the daemon, start it again: every container is in a true state, logs intact, nothing leaked.
Also the limits that must really bind (memory → OOMKilled 137, pids)."""

from __future__ import annotations

import os
import subprocess
import time

from tests.engine.api.test_containers import create, frames, wait


def _runc_ids(engine) -> set[str]:
    """Container IDs the OCI runtime (crun or runc, whichever the engine picked) still has state for."""
    import shutil
    ids: set[str] = set()
    for binary in ("crun", "runc"):
        if shutil.which(binary):
            out = subprocess.run([binary, "--root", str(engine.root / "run" / "runtime"), "list", "-q"],
                                 capture_output=True, text=True, check=False)
            ids |= set(out.stdout.split())
    return ids


def test_sigkill_restart_adopts_and_settles(engine, busybox):
    live = create(engine, ["sh", "-c", "echo started; sleep 30"])
    short = create(engine, ["sh", "-c", "sleep 1; echo bye; exit 4"])
    engine.api.post(f"/containers/{live}/start")
    engine.api.post(f"/containers/{short}/start")
    time.sleep(0.3)
    pid = engine.api.get(f"/containers/{live}/json").json()["State"]["Pid"]
    engine.restart(kill=True)          # SIGKILL: no chance to clean up
    time.sleep(1.5)                    # `short` exits while ... or after the daemon restarts
    info = engine.api.get(f"/containers/{live}/json").json()
    assert info["State"]["Running"] and info["State"]["Pid"] == pid
    os.kill(pid, 0)
    assert wait(engine, short)["StatusCode"] == 4
    logs = frames(engine.api.get(f"/containers/{short}/logs", params={"stdout": 1}).content)
    assert logs == [(1, b"bye\n")]
    assert frames(engine.api.get(f"/containers/{live}/logs", params={"stdout": 1}).content) == [(1, b"started\n")]
    # the adopted container is still fully manageable
    assert engine.api.post(f"/containers/{live}/stop", params={"t": 1}).status_code == 204
    assert wait(engine, live)["StatusCode"] == 137
    for cid in (live, short):
        assert engine.api.delete(f"/containers/{cid}").status_code == 204
        assert not (engine.root / "containers" / cid).exists()
    assert not ({live, short} & _runc_ids(engine))
    mounts = open("/proc/self/mountinfo").read()
    assert live not in mounts and short not in mounts


def test_exit_while_daemon_down(engine, busybox):
    cid = create(engine, ["sh", "-c", "sleep 0.5; exit 9"])
    engine.api.post(f"/containers/{cid}/start")
    engine.proc.kill()
    engine.proc.wait()
    time.sleep(1.2)
    engine.restart(kill=False) if engine.proc.poll() is None else _start_again(engine)
    st = engine.api.get(f"/containers/{cid}/json").json()["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 9
    engine.api.delete(f"/containers/{cid}")


def _start_again(engine):
    from tests.conftest import start_daemon
    engine.proc = start_daemon(engine.root, engine.sock, engine.log)


def test_memory_limit_oom_killed(engine, busybox):
    cid = create(engine, ["sh", "-c", "x=a; while true; do x=$x$x; done"],
                 HostConfig={"Memory": 16 * 1024 * 1024, "MemorySwap": 16 * 1024 * 1024})
    engine.api.post(f"/containers/{cid}/start")
    assert wait(engine, cid)["StatusCode"] == 137
    st = engine.api.get(f"/containers/{cid}/json").json()["State"]
    assert st["OOMKilled"] is True and st["ExitCode"] == 137


def test_pids_limit_binds(engine, busybox):
    cid = create(engine, ["sh", "-c", "for i in $(seq 1 30); do sleep 5 & done; wait; echo done"],
                 HostConfig={"PidsLimit": 10})
    engine.api.post(f"/containers/{cid}/start")
    wait(engine, cid)
    err = b"".join(d for s, d in frames(engine.api.get(f"/containers/{cid}/logs",
                                                           params={"stderr": 1}).content))
    assert b"fork" in err.lower() or b"resource temporarily unavailable" in err.lower()


def test_cpu_quota_is_set(engine, busybox):
    cid = create(engine, ["sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat "
                                      "/sys/fs/cgroup/cpu.max"], HostConfig={"NanoCpus": 500_000_000})
    engine.api.post(f"/containers/{cid}/start")
    wait(engine, cid)
    out = b"".join(d for _, d in frames(engine.api.get(f"/containers/{cid}/logs", params={"stdout": 1}).content))
    assert b"50000" in out
