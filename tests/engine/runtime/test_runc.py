"""The runc wrapper: argv per verb, errors with exit status and message, one state root per instance."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.runtime.conftest import Box, require_root
from workbench.engine.runtime.runc import Runc, RuntimeFailure, RuntimeOptions, error_message


def test_argv_building(tmp_path: Path) -> None:
    r = Runc(RuntimeOptions(root=tmp_path, binary="/usr/bin/runc"))
    glob = ["/usr/bin/runc", "--root", str(tmp_path), "--log-format", "json"]
    assert r.run_argv("c1", Path("/b"), pid_file=Path("/b/p"), log=Path("/b/l")) == [
        "/usr/bin/runc", "--root", str(tmp_path), "--log", "/b/l", "--log-format", "json",
        "run", "--detach", "--bundle", "/b", "--pid-file", "/b/p", "c1"]
    assert r.create_argv("c1", Path("/b"), no_pivot=True) == [*glob, "create", "--bundle", "/b", "--no-pivot", "c1"]
    assert r.start_argv("c1") == [*glob, "start", "c1"]
    assert r.delete_argv("c1", force=True) == [*glob, "delete", "--force", "c1"]
    assert r.delete_argv("c1") == [*glob, "delete", "c1"]
    assert r.exec_argv("c1", Path("/p.json"), detach=True) == [*glob, "exec", "--process", "/p.json", "--detach", "c1"]
    assert r.name == "runc"


def test_error_message_parsing() -> None:
    assert error_message('{"level":"warning","msg":"w"}\n{"level":"error","msg":"boom","time":"t"}\n') == "boom"
    assert error_message("plain text failure\n\n") == "plain text failure"
    assert error_message("") == ""


def test_unknown_container_is_missing(tmp_path: Path) -> None:
    require_root()
    r = Runc(RuntimeOptions(root=tmp_path / "root", binary="runc"))
    with pytest.raises(RuntimeFailure) as err:
        r.state("nope")
    assert err.value.missing and err.value.status == 404 and err.value.exit_status == 1
    assert "does not exist" in str(err.value)
    assert r.list() == []
    assert not r.exists("nope")


def test_missing_binary(tmp_path: Path) -> None:
    r = Runc(RuntimeOptions(root=tmp_path, binary=str(tmp_path / "no-runc")))
    with pytest.raises(RuntimeFailure, match="no-runc"):
        r.list()


def test_verbs_on_a_real_container(runc_box: Box) -> None:
    cid, cdir = runc_box.prepare(["sleep", "30"])
    r = runc_box.runtime.runc
    r.create(cid, cdir, pid_file=cdir / "init.pid")
    st = r.state(cid)
    assert st.status == "created" and st.id == cid and st.pid == int((cdir / "init.pid").read_text())
    r.start(cid)
    assert r.state(cid).status == "running"
    assert r.ps(cid) == [st.pid]
    r.pause(cid)
    assert r.state(cid).status == "paused"
    r.resume(cid)
    assert [c.id for c in r.list()] == [cid]
    r.kill(cid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while r.state(cid).status != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r.delete(cid)
    assert not r.exists(cid)
    with pytest.raises(RuntimeFailure) as err:
        r.state(cid)
    assert err.value.missing


def test_sealed_copy_is_executable_where_memfds_are_noexec_by_default() -> None:
    # vm.memfd_noexec=1 (Linux 6.3+) makes a plain memfd non-executable; it is per pid namespace,
    # so a child namespace sets it without touching the host
    assert Path("/proc/sys/vm/memfd_noexec").exists(), "a kernel before 6.3: nothing to guard against"
    code = ("import os; from workbench.engine.runtime.runc import sealed_copy; "
            "plain = os.memfd_create('plain', os.MFD_CLOEXEC); "
            "fd = sealed_copy(os.path.realpath('/proc/self/exe')); "
            "print(os.access(f'/proc/self/fd/{plain}', os.X_OK), "
            "fd is not None and os.access(f'/proc/self/fd/{fd}', os.X_OK))")
    out = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
                          f"echo 1 > /proc/sys/vm/memfd_noexec && exec {sys.executable} -c \"{code}\""],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[3], timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
