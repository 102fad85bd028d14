"""Runtime end to end with real runc (and crun when installed): logs, exit codes, start errors,
limits that really bind, capabilities, masked paths, stdin, pause/kill and the event loop."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.engine.runtime.conftest import Box, leftover_cgroups, run
from workbench.engine.runtime import RuntimeFailure

RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
DOCKER_DEFAULT_CAPS = 0x00000000A80425FB


def test_echo_writes_json_file_log(box: Box) -> None:
    cid, cdir, st = run(box.run(["sh", "-c", "echo hello; echo oops >&2; printf 'no newline'"]))
    assert st.exit_code == 0 and not st.oom_killed and st.error == ""
    assert RFC3339NANO.match(st.finished_at)
    records = box.logs(cid, cdir)
    assert [(r["log"], r["stream"]) for r in records if r["stream"] == "stdout"] == \
        [("hello\n", "stdout"), ("no newline", "stdout")]
    assert [r["log"] for r in records if r["stream"] == "stderr"] == ["oops\n"]
    for r in records:
        assert set(r) == {"log", "stream", "time"} and RFC3339NANO.match(r["time"])
    raw = (cdir / f"{cid}-json.log").read_text().splitlines()[0]
    assert raw.startswith('{"log":"hello\\n","stream":"stdout","time":"')
    # the monitor cleaned up after itself: no runtime state, no cgroup, exit.json on disk
    assert not box.runtime.runc.exists(cid) and not leftover_cgroups(cid)
    assert json.loads((cdir / "exit.json").read_text()) == {
        "ExitCode": 0, "OOMKilled": False, "FinishedAt": st.finished_at, "Error": ""}
    assert not box.runtime.monitor_alive(cdir)


def test_runtime_runs_from_a_sealed_copy_that_never_reaches_the_container(box: Box) -> None:
    # the runtime binary is executed from a sealed memfd (no per-invocation self-copy); the
    # container must see only its stdio, not that fd nor the monitor's
    import fcntl
    opts = box.runtime.runc.opts
    assert opts.exec_fd is not None and opts.executable == f"/proc/self/fd/{opts.exec_fd}"
    assert fcntl.fcntl(opts.exec_fd, 1034) & 0xF == 0xF            # F_GET_SEALS: seal, shrink, grow, write
    assert os.readlink(f"/proc/self/fd/{opts.exec_fd}").startswith("/memfd:workbench-runtime:")
    cid, cdir, st = run(box.run(["sh", "-c", "sleep 0.1 & ls -l /proc/1/fd /proc/$!/fd; wait"]))
    assert st.exit_code == 0, box.output(cid, cdir, "stderr")
    out = box.output(cid, cdir)
    assert "memfd" not in out and "workbench" not in out, out
    fds = [line.split("->")[0].split()[-1] for line in out.splitlines() if "->" in line]
    assert sorted(fds) == ["0", "0", "1", "1", "2", "2"], out      # the init (sh) and its child


def test_logs_are_written_as_produced(box: Box) -> None:
    async def scenario() -> None:
        cid, cdir, _ = await box.start(["sh", "-c", "echo first; sleep 3; echo second"])
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and "first" not in box.output(cid, cdir):
            await asyncio.sleep(0.02)
        assert box.output(cid, cdir) == "first\n"
        assert box.runtime.monitor_alive(cdir) and box.runtime.exit_status(cdir) is None
        box.runtime.kill(cid, signal.SIGKILL)
        st = await box.runtime.wait_exit(cdir)
        assert st.exit_code == 137
    run(scenario())


def test_long_line_is_split_like_docker(box: Box) -> None:
    cid, cdir, st = run(box.run(["sh", "-c", "head -c 40000 /dev/zero | tr '\\0' a; echo"]))
    parts = [r["log"] for r in box.logs(cid, cdir)]
    assert "".join(parts) == "a" * 40000 + "\n"
    assert len(parts) == 3 and all(len(p) == 16384 for p in parts[:2])


@pytest.mark.parametrize(("script", "code"), [("exit 0", 0), ("exit 3", 3), ("sh -c 'kill -9 $$'; exit $?", 137),
                                              ("sh -c 'kill -TERM $$'; exit $?", 143)])
def test_exit_codes(box: Box, script: str, code: int) -> None:
    _, _, st = run(box.run(["sh", "-c", script]))
    assert st.exit_code == code


def test_kill_gives_137(box: Box) -> None:
    async def scenario() -> None:
        cid, cdir, pid = await box.start(["sleep", "30"])
        os.kill(pid, 0)
        box.runtime.kill(cid, signal.SIGKILL)
        st = await asyncio.wait_for(box.runtime.wait_exit(cdir), 10)
        assert st.exit_code == 137 and not st.oom_killed
        with pytest.raises(RuntimeFailure) as err:
            box.runtime.kill(cid, signal.SIGKILL)
        assert err.value.status == 409 and str(err.value) == f"Container {cid} is not running"
    run(scenario())


@pytest.mark.parametrize(("argv", "needle"), [
    (["nope"], 'exec: "nope": executable file not found in $PATH'),
    (["/nope"], "no such file or directory"),
])
def test_missing_executable_is_dockers_error(box: Box, argv: list[str], needle: str) -> None:
    cid, cdir = box.prepare(argv)
    with pytest.raises(RuntimeFailure) as err:
        run(box.runtime.start(cid, cdir, cdir))
    assert needle in str(err.value), str(err.value)
    assert str(err.value).startswith("OCI runtime create failed: ")
    assert err.value.status == 400 and err.value.exit_status == 127
    st = box.runtime.exit_status(cdir)
    assert st is not None and st.exit_code == 127 and needle in st.error
    assert not box.runtime.runc.exists(cid) and not leftover_cgroups(cid)
    assert box.logs(cid, cdir) == []        # the runtime's complaint is not the container's output


def test_memory_limit_oom_killed(box: Box) -> None:
    cid, cdir, st = run(box.run(["sh", "-c", "dd if=/dev/zero bs=1M count=64 2>/dev/null | tail -n 1 >/dev/null"],
                                memory=8 * 1024 * 1024))
    assert st.exit_code == 137 and st.oom_killed, st
    assert not leftover_cgroups(cid)


def test_no_oom_without_pressure(box: Box) -> None:
    _, _, st = run(box.run(["sh", "-c", "dd if=/dev/zero bs=1M count=2 2>/dev/null | tail -n 1 | wc -c"],
                           memory=32 * 1024 * 1024))
    assert st.exit_code == 0 and not st.oom_killed


def test_limits_are_in_the_cgroup(box: Box) -> None:
    async def scenario() -> None:
        cid, cdir, _ = await box.start(["sleep", "30"], memory=16 * 1024 * 1024, pids_limit=20,
                                       nano_cpus=1_500_000_000)
        cg = Path("/sys/fs/cgroup")
        assert (cg / "memory/workbench" / cid / "memory.limit_in_bytes").read_text().strip() == str(16 << 20)
        assert (cg / "pids/workbench" / cid / "pids.max").read_text().strip() == "20"
        assert (cg / "cpu/workbench" / cid / "cpu.cfs_quota_us").read_text().strip() == "150000"
        assert (cg / "cpu/workbench" / cid / "cpu.cfs_period_us").read_text().strip() == "100000"
        box.runtime.kill(cid, signal.SIGKILL)
        await box.runtime.wait_exit(cdir)
        assert not leftover_cgroups(cid)
    run(scenario())


def test_pids_limit_binds(box: Box) -> None:
    cid, cdir, st = run(box.run(["sh", "-c", "for i in $(seq 1 30); do sleep 5 & done; echo forked"],
                                pids_limit=10))
    err = box.output(cid, cdir, "stderr").lower()
    assert "can't fork" in err or "resource temporarily unavailable" in err, err
    assert "forked" not in box.output(cid, cdir)


def test_nano_cpus_sets_cfs_quota(box: Box) -> None:
    cid, cdir, st = run(box.run(["cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"],
                                nano_cpus=500_000_000))
    assert st.exit_code == 0
    assert box.output(cid, cdir).split() == ["50000", "100000"]


def _status(box: Box, cid: str, cdir: Path) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in box.output(cid, cdir).splitlines() if ":\t" in line)


def test_capabilities_match_docker_default(box: Box) -> None:
    cid, cdir, st = run(box.run(["cat", "/proc/self/status"]))
    status = _status(box, cid, cdir)
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert int(status[key], 16) == DOCKER_DEFAULT_CAPS, (key, status[key])
    assert int(status["CapInh"], 16) == 0 and int(status["CapAmb"], 16) == 0
    assert status["NoNewPrivs"].strip() == "0"
    assert status["Seccomp"].strip() == "2"         # Docker's default profile is loaded


def test_cap_add_drop_and_privileged(runc_box: Box) -> None:
    cid, cdir, _ = run(runc_box.run(["cat", "/proc/self/status"], cap_add=["NET_ADMIN"], cap_drop=["CAP_MKNOD"]))
    eff = int(_status(runc_box, cid, cdir)["CapEff"], 16)
    assert eff == (DOCKER_DEFAULT_CAPS | 1 << 12) & ~(1 << 27)
    cid, cdir, _ = run(runc_box.run(["cat", "/proc/self/status"], cap_drop=["ALL"]))
    assert int(_status(runc_box, cid, cdir)["CapEff"], 16) == 0
    cid, cdir, _ = run(runc_box.run(["cat", "/proc/self/status"], privileged=True))
    status = _status(runc_box, cid, cdir)
    ours = int(_status_of_self()["CapBnd"], 16)        # all we hold (this sandbox may lack some)
    assert int(status["CapBnd"], 16) == int(status["CapEff"], 16) == ours
    assert status["Seccomp"].strip() == "0"


def _status_of_self() -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":\t" in line)


def test_masked_and_readonly_paths(box: Box) -> None:
    cid, cdir = box.prepare(["sh", "-c",
                             "cat /proc/kcore 2>/dev/null | wc -c; wc -c < /proc/keys; ls /sys/firmware | wc -l; "
                             "echo x > /proc/sys/kernel/domainname && echo WROTE; echo done"])
    config = json.loads((cdir / "config.json").read_text())
    assert "/proc/kcore" in config["linux"]["maskedPaths"]
    run(box.runtime.start(cid, cdir, cdir))
    assert run(box.runtime.wait_exit(cdir)).exit_code == 0
    kcore, keys, firmware, *rest = box.output(cid, cdir).split()
    assert kcore == "0"                      # /proc/kcore is /dev/null in the container (or absent here)
    assert keys == "0"                       # /proc/keys is masked as well
    assert Path("/proc/keys").read_text()    # ... though the host's is not empty
    assert firmware == "0"
    assert rest == ["done"] and "WROTE" not in box.output(cid, cdir)
    if Path("/proc/kcore").exists():
        assert kcore == "0"


def test_stdin_once_feeds_the_container(box: Box) -> None:
    async def scenario() -> None:
        cid, cdir, _ = await box.start(["sh", "-c", "cat; echo eof"], stdin=True, stdin_once=True)
        fifo = box.runtime.stdin_path(cdir)

        def feed() -> None:
            with open(fifo, "wb") as f:
                f.write(b"line one\nline two\n")
        await asyncio.to_thread(feed)
        st = await asyncio.wait_for(box.runtime.wait_exit(cdir), 10)
        assert st.exit_code == 0
        assert box.output(cid, cdir) == "line one\nline two\neof\n"
        assert not fifo.exists()
    run(scenario())


def test_stdin_open_survives_writers(runc_box: Box) -> None:
    async def scenario() -> None:
        cid, cdir, _ = await runc_box.start(["sh", "-c", "read a; read b; echo $a-$b"], stdin=True)
        for text in (b"one\n", b"two\n"):
            await asyncio.to_thread(lambda t=text: Path(runc_box.runtime.stdin_path(cdir)).write_bytes(t))
        st = await asyncio.wait_for(runc_box.runtime.wait_exit(cdir), 10)
        assert st.exit_code == 0 and runc_box.output(cid, cdir) == "one-two\n"
    run(scenario())


def test_pause_resume_and_pids(box: Box) -> None:
    async def scenario() -> None:
        cid, cdir, pid = await box.start(["sh", "-c", "sleep 30 & wait"])
        await asyncio.sleep(0.1)
        pids = box.runtime.pids(cid)
        assert pid in pids and len(pids) == 2
        box.runtime.pause(cid)
        freezer = Path("/sys/fs/cgroup/freezer/workbench") / cid / "freezer.state"
        assert freezer.read_text().strip() == "FROZEN"
        assert box.runtime.runc.state(cid).status == "paused"
        box.runtime.resume(cid)
        assert freezer.read_text().strip() == "THAWED"
        box.runtime.kill(cid, signal.SIGTERM)     # sh as pid 1 ignores TERM: still running
        await asyncio.sleep(0.1)
        assert box.runtime.monitor_alive(cdir)
        box.runtime.kill(cid, signal.SIGKILL)
        assert (await box.runtime.wait_exit(cdir)).exit_code == 137
        with pytest.raises(RuntimeFailure) as err:
            box.runtime.pause(cid)
        assert err.value.status == 409
    run(scenario())


def test_runc_states_pause_errors(runc_box: Box) -> None:
    async def scenario() -> None:
        cid, cdir, _ = await runc_box.start(["sleep", "30"])
        with pytest.raises(RuntimeFailure) as err:
            runc_box.runtime.resume(cid)
        assert err.value.status == 409 and str(err.value) == f"Container {cid} is not paused"
        runc_box.runtime.pause(cid)
        with pytest.raises(RuntimeFailure) as err:
            runc_box.runtime.pause(cid)
        assert err.value.status == 409 and str(err.value) == f"Container {cid} is already paused"
        runc_box.runtime.delete(cid, force=True)           # force-delete of a paused container kills it
        st = await asyncio.wait_for(runc_box.runtime.wait_exit(cdir), 10)
        assert st.exit_code == 137
    run(scenario())


def test_start_does_not_block_the_event_loop(box: Box) -> None:
    async def scenario() -> tuple[float, float]:
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.002)
                now = time.monotonic()
                gaps.append(now - last)
                last = now
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        t0 = time.monotonic()
        _, cdir, _ = await box.start(["sh", "-c", "sleep 0.3"])
        took = time.monotonic() - t0
        await box.runtime.wait_exit(cdir)
        task.cancel()
        return max(gaps), took
    gap, took = run(scenario())
    assert gap < max(0.05, took / 2), (gap, took)     # the loop kept ticking through the start

def test_network_modes(runc_box: Box) -> None:
    cid, cdir, _ = run(runc_box.run(["sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '"], network="none"))
    assert runc_box.output(cid, cdir).split() == ["lo"]
    host_ifaces = {name for name in os.listdir("/sys/class/net") if name != "lo"}
    cid, cdir, _ = run(runc_box.run(["sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '"], network="host"))
    seen = set(runc_box.output(cid, cdir).split())
    assert "lo" in seen and seen & host_ifaces          # the host's interfaces (others come and go)


def test_user_env_cwd_hostname(runc_box: Box) -> None:
    cid, cdir, _ = run(runc_box.run(["sh", "-c", "id -u; id -g; id -G; pwd; hostname; echo $PATH; echo $FOO"],
                                    uid=1000, gid=1000, additional_gids=[1000, 27], cwd="/tmp", hostname="boxy",
                                    env=["FOO=bar"]))
    lines = runc_box.output(cid, cdir).splitlines()
    assert lines[:2] == ["1000", "1000"] and set(lines[2].split()) == {"1000", "27"}
    assert lines[3:] == ["/tmp", "boxy", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "bar"]


def test_readonly_rootfs_and_binds(runc_box: Box, tmp_path: Path) -> None:
    src = tmp_path / "data"
    src.mkdir()
    (src / "in.txt").write_text("from host\n")
    cid, cdir, st = run(runc_box.run(
        ["sh", "-c", "cat /data/in.txt; echo out > /data/out.txt; touch /x 2>/dev/null || echo readonly"],
        readonly_rootfs=True, mounts=[(str(src), "/data", "bind", ["rbind", "rw"])]))
    assert runc_box.output(cid, cdir) == "from host\nreadonly\n"
    assert (src / "out.txt").read_text() == "out\n"


def test_container_starts_with_default_signal_dispositions(box: Box) -> None:
    """Nothing the monitor ignores (SIGHUP, SIGINT, SIGPIPE) leaks into the container."""
    cid, cdir, _ = run(box.run(["cat", "/proc/self/status"]))
    status = _status(box, cid, cdir)
    assert int(status["SigIgn"], 16) == 0 and int(status["SigBlk"], 16) == 0, status


def test_public_surface() -> None:
    import workbench.engine.runtime as runtime
    assert sorted(runtime.__all__) == ["ExitStatus", "Runtime", "RuntimeFailure", "pick_runtime"]
    assert issubclass(RuntimeFailure, __import__("workbench.errors").errors.WorkbenchError)
