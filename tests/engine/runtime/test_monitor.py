"""The monitor outlives whoever started it; a new Runtime adopts it, settles what it left behind, and
keeps its state under its own root."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.engine.runtime.conftest import Box, leftover_cgroups, run
from workbench.engine.runtime import MONITOR, Runtime, RuntimeFailure

ROOT = Path(__file__).resolve().parents[3]


def _start_in_child(box: Box, cid: str, cdir: Path) -> subprocess.Popen[str]:
    """A separate process (a stand-in daemon) that starts the container, prints its pid, then sleeps."""
    code = textwrap.dedent(f"""
        import asyncio, sys, time
        from pathlib import Path
        from workbench.engine.runtime import Runtime
        rt = Runtime(Path({str(box.runtime.root)!r}), {box.runtime.name!r})
        pid = asyncio.run(rt.start({cid!r}, Path({str(cdir)!r}), Path({str(cdir)!r})))
        print(pid, flush=True)
        time.sleep(600)
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_monitor_survives_sigkill_of_its_starter(box: Box) -> None:
    cid, cdir = box.prepare(["sh", "-c", "echo before; sleep 1; echo after; exit 4"])
    starter = _start_in_child(box, cid, cdir)
    pid = int(starter.stdout.readline())
    os.killpg(starter.pid, signal.SIGKILL)            # the "daemon" dies without any clean-up
    starter.wait()
    os.kill(pid, 0)                                   # the container still runs ...
    fresh = Runtime(box.runtime.root, box.runtime.name)
    assert fresh.monitor_alive(cdir) and fresh.adopt(cdir) is None
    _wait_for(cdir / "exit.json", 10)                 # ... and its monitor records the exit
    deadline = time.monotonic() + 5
    while fresh.monitor_alive(cdir):                  # (exit.json is written just before it leaves)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    st = fresh.exit_status(cdir)
    assert st is not None and st.exit_code == 4 and not st.oom_killed
    assert box.output(cid, cdir) == "before\nafter\n"
    assert fresh.adopt(cdir) == st
    assert not fresh.runc.exists(cid) and not leftover_cgroups(cid)


def test_wait_exit_on_an_adopted_monitor(box: Box) -> None:
    cid, cdir = box.prepare(["sh", "-c", "sleep 0.5; exit 7"])
    starter = _start_in_child(box, cid, cdir)
    int(starter.stdout.readline())
    os.killpg(starter.pid, signal.SIGKILL)
    starter.wait()
    fresh = Runtime(box.runtime.root, box.runtime.name)
    assert fresh.adopt(cdir) is None
    st = run(asyncio.wait_for(fresh.wait_exit(cdir), 10))   # pidfd on a process that is not our child
    assert st.exit_code == 7
    assert not fresh.monitor_alive(cdir)


def test_adopt_after_monitor_died_without_exit(box: Box) -> None:
    async def scenario() -> None:
        cid, cdir, pid = await box.start(["sleep", "30"])
        mon_pid = int((cdir / "monitor.pid").read_text().split()[0])
        os.kill(mon_pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while box.runtime.monitor_alive(cdir):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        fresh = Runtime(box.runtime.root, box.runtime.name)
        st = fresh.adopt(cdir)
        assert st is not None and st.exit_code == 255 and "monitor" in st.error
        assert not fresh.runc.exists(cid) and not leftover_cgroups(cid)
        with pytest.raises(ProcessLookupError):
            for _ in range(100):
                os.kill(pid, 0)
                await asyncio.sleep(0.02)
        assert json.loads((cdir / "exit.json").read_text())["ExitCode"] == 255
        assert fresh.adopt(cdir) == st                 # settled once, stable afterwards
    run(scenario())


def test_adopt_of_a_never_started_container(runc_box: Box) -> None:
    cid, cdir = runc_box.prepare(["true"])
    st = runc_box.runtime.adopt(cdir)
    assert st is not None and st.exit_code == 255 and st.error


def test_restart_in_the_same_dir(box: Box) -> None:
    async def scenario() -> None:
        cid, cdir, _ = await box.start(["sh", "-c", "echo run; exit 1"])
        assert (await box.runtime.wait_exit(cdir)).exit_code == 1
        await box.runtime.start(cid, cdir, cdir)       # a restart policy starting it again
        assert (await box.runtime.wait_exit(cdir)).exit_code == 1
        assert box.output(cid, cdir) == "run\nrun\n"
    run(scenario())


def test_start_refuses_while_monitor_runs(runc_box: Box) -> None:
    async def scenario() -> None:
        cid, cdir, _ = await runc_box.start(["sleep", "30"])
        from workbench.engine.runtime import RuntimeFailure
        with pytest.raises(RuntimeFailure) as err:
            await runc_box.runtime.start(cid, cdir, cdir)
        assert err.value.status == 409
        runc_box.runtime.kill(cid, signal.SIGKILL)
        await runc_box.runtime.wait_exit(cdir)
    run(scenario())


def test_two_roots_never_see_each_other(runc_box: Box, tmp_path: Path) -> None:
    async def scenario() -> None:
        cid, cdir, _ = await runc_box.start(["sleep", "30"])
        other = Runtime(tmp_path / "other-root", "runc")
        assert [c.id for c in runc_box.runtime.runc.list()] == [cid]
        assert other.runc.list() == []
        assert other.cleanup_orphans([]) == []
        assert runc_box.runtime.runc.state(cid).status == "running"
        runc_box.runtime.kill(cid, signal.SIGKILL)
        await runc_box.runtime.wait_exit(cdir)
    run(scenario())


def test_cleanup_orphans_removes_only_the_unknown(runc_box: Box) -> None:
    async def scenario() -> None:
        rt = runc_box.runtime
        live, live_dir, _ = await runc_box.start(["sleep", "30"])
        orphan, orphan_dir = runc_box.prepare(["sleep", "30"])
        rt.runc.create(orphan, orphan_dir)                 # runtime state without a monitor
        assert rt.runc.state(orphan).status == "created"
        assert rt.cleanup_orphans([live]) == [orphan]
        assert not rt.runc.exists(orphan) and not leftover_cgroups(orphan)
        assert rt.runc.state(live).status == "running"
        rt.kill(live, signal.SIGKILL)
        await rt.wait_exit(live_dir)
    run(scenario())


def test_monitor_runs_as_a_plain_script(runc_box: Box) -> None:
    """`python -S monitor.py ...` works on its own (what Runtime does, minus the cached bytecode)."""
    cid, cdir = runc_box.prepare(["sh", "-c", "echo scripted"])
    rt = runc_box.runtime
    read_fd, write_fd = os.pipe()
    argv = [sys.executable, "-S", str(MONITOR), str(cdir), cid, f"sync={write_fd}", f"/workbench/{cid}",
            "--exec", *rt.runc.run_argv(cid, cdir, pid_file=cdir / "init.pid", log=cdir / "runtime.log"),
            "--delete", *rt.runc.delete_argv(cid, force=True)]
    proc = subprocess.Popen(argv, pass_fds=(write_fd, *rt.runc.pass_fds), start_new_session=True)
    os.close(write_fd)
    with os.fdopen(read_fd) as sync:
        kind, pid = sync.readline().split()
    assert kind == "ok" and int(pid) > 1
    assert proc.wait(10) == 0
    assert json.loads((cdir / "exit.json").read_text())["ExitCode"] == 0
    assert runc_box.output(cid, cdir) == "scripted\n"


def test_monitor_rejects_bad_arguments(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-S", str(MONITOR), str(tmp_path)], capture_output=True, text=True,
                          timeout=10)
    assert proc.returncode == 2 and "usage" in proc.stderr


def test_many_waiters_and_the_polling_fallback(runc_box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.engine.runtime as runtime_mod

    async def scenario() -> None:
        _, cdir, _ = await runc_box.start(["sh", "-c", "sleep 0.3; exit 5"])
        a, b = await asyncio.gather(runc_box.runtime.wait_exit(cdir), runc_box.runtime.wait_exit(cdir))
        assert a == b and a.exit_code == 5
        assert (await runc_box.runtime.wait_exit(cdir)).exit_code == 5      # after the fact, too
        monkeypatch.setattr(runtime_mod, "pidfd_of", lambda pid: None)      # no pidfd: poll
        _, cdir, _ = await runc_box.start(["sh", "-c", "sleep 0.2; exit 6"])
        handle = runc_box.runtime._monitors[str(cdir)]
        if handle.pidfd is not None:                    # the one the monitor server sent along
            os.close(handle.pidfd)
            handle.pidfd = None
        assert runc_box.runtime.monitor_alive(cdir)
        assert (await asyncio.wait_for(runc_box.runtime.wait_exit(cdir), 10)).exit_code == 6
    run(scenario())


def test_joining_another_network_namespace(runc_box: Box) -> None:
    async def scenario() -> None:
        first, first_dir, pid = await runc_box.start(["sleep", "30"])
        netns = f"/proc/{pid}/ns/net"
        cid, cdir, st = await runc_box.run(["readlink", "/proc/self/ns/net"], network=netns)
        assert st.exit_code == 0 and runc_box.output(cid, cdir).strip() == os.readlink(netns)
        runc_box.runtime.kill(first, signal.SIGKILL)
        await runc_box.runtime.wait_exit(first_dir)
    run(scenario())


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_monitors_are_forked_by_the_server_and_outlive_it(runc_box: Box) -> None:
    rt = runc_box.runtime

    async def scenario() -> None:
        cid, cdir, _ = await runc_box.start(["sh", "-c", "read line; echo after"], stdin=True)
        handle = rt._monitors[str(cdir)]
        server = rt.launcher._server
        assert server is not None and handle.proc is None           # forked, not spawned
        assert _parent(handle.pid) == server.pid
        # the server sent a pidfd it opened before the monitor could be reaped: it names this monitor
        fdinfo = Path(f"/proc/self/fdinfo/{handle.pidfd}").read_text()
        assert f"Pid:\t{handle.pid}\n" in fdinfo
        assert os.getsid(handle.pid) == handle.pid                   # a session of its own
        fds = {n: os.readlink(f"/proc/{handle.pid}/fd/{n}") for n in (0, 1, 2)}
        assert fds == {0: "/dev/null", 1: str(cdir / "monitor.log"), 2: str(cdir / "monitor.log")}
        # the server goes (as when the daemon stops): the monitor and its container carry on
        rt.launcher.close()
        assert server.poll() is not None and rt.monitor_alive(cdir)
        with open(rt.stdin_path(cdir), "w") as f:
            f.write("go\n")
        status = await asyncio.wait_for(rt.wait_exit(cdir), 30)
        assert status.exit_code == 0 and runc_box.output(cid, cdir) == "after\n"
        # a closed launcher still starts containers, spawning their monitors itself
        cid2, cdir2, st2 = await runc_box.run(["true"])
        assert st2.exit_code == 0 and rt._monitors[str(cdir2)].proc is not None

    run(scenario())


def test_a_dead_server_is_replaced(runc_box: Box) -> None:
    rt = runc_box.runtime
    _, _, st = run(runc_box.run(["true"]))
    first = rt.launcher._server
    assert st.exit_code == 0 and first is not None
    first.kill()
    first.wait()
    _, cdir, st = run(runc_box.run(["sh", "-c", "exit 3"]))
    assert st.exit_code == 3
    assert rt.launcher._server is not None and rt.launcher._server.pid != first.pid
    assert rt._monitors[str(cdir)].proc is None


def test_a_request_the_server_got_but_never_answered_is_not_sent_again(runc_box: Box) -> None:
    # a second monitor for the same container would fight the first: once delivered, a request is
    # never resent; the silent server is killed and the start fails cleanly, the next one works
    rt = runc_box.runtime
    run(runc_box.run(["true"]))
    server = rt.launcher._server
    assert server is not None and rt.launcher._sock is not None
    rt.launcher._sock.settimeout(0.5)
    os.kill(server.pid, signal.SIGSTOP)
    try:
        with pytest.raises(RuntimeFailure, match="before reporting"):
            run(runc_box.start(["sh", "-c", "echo once"]))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGCONT)
    assert server.poll() is not None and rt.launcher._server is None      # killed, not reused
    cid, cdir, st = run(runc_box.run(["sh", "-c", "echo again"]))
    assert st.exit_code == 0 and runc_box.output(cid, cdir) == "again\n"
    assert rt.launcher._server is not None and rt.launcher._server.pid != server.pid
