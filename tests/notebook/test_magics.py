"""`%docker` through IPython's InteractiveShell against the live session engine."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.notebook.conftest import REPO, run
from workbench.errors import ContainerError, NotFound
from workbench.kernel_ext.display import ExitCode


def test_extension_loads_fast_and_registers_the_magics(engine, kernel_env):
    code = ("import time\nfrom IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance()\nt = time.perf_counter()\nip.run_line_magic('load_ext', 'workbench')\n"
            "dt = time.perf_counter() - t\nimport sys\n"
            "print(dt, 'docker' in ip.magics_manager.magics['line'], 'docker' in ip.magics_manager.magics['cell'],"
            " 'pandas' in sys.modules, 'ipywidgets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=kernel_env,
                         cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    seconds, line, cell, pandas, widgets = out.stdout.split()[-5:]
    assert (line, cell, pandas, widgets) == ("True", "True", "False", "False")
    assert float(seconds) < 0.3, f"load_ext took {seconds}s"


def test_no_engine_is_one_clear_line(kernel_env, tmp_path):
    env = dict(kernel_env, WORKBENCH_HOST=f"unix://{tmp_path}/none.sock", WORKBENCH_AUTOSTART="0")
    code = ("from IPython.core.interactiveshell import InteractiveShell\nip = InteractiveShell.instance()\n"
            "ip.run_line_magic('load_ext', 'workbench')\nr = ip.run_cell('%docker ps')\n"
            "print('ERROR', type(r.error_in_exec).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=60)
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("workbench: no engine answers at unix://") and "engine start" in lines[0]
    assert "Traceback" not in out.stdout + out.stderr
    assert lines[-1] == "ERROR Unavailable"


def test_images_is_a_dataframe_with_real_dtypes(shell, capsys):
    result, df = run(shell, "df = %docker images\ndf")
    assert result.success
    assert isinstance(df, pd.DataFrame)
    assert df["size"].dtype == "int64" and isinstance(df["created"].dtype, pd.DatetimeTZDtype)
    assert "busybox" in set(df.repository)
    out = capsys.readouterr().out
    assert "REPOSITORY" in out and "MB" in out          # the text form shows sizes human-readable
    html = shell.display_formatter.format(df)[0]["text/html"]
    assert "wb-images" in html and "MB" in html


def test_python_values_interpolate(shell):
    shell.user_ns["wanted"] = "busybox"
    _, df = run(shell, "%docker images {wanted}")
    assert set(df.repository) == {"busybox"}
    _, df2 = run(shell, "%docker images $wanted")
    assert df2.equals(df)
    _, df3 = run(shell, "%docker images ${wanted}:latest")
    assert list(df3.tag) == ["latest"]


def test_ps_lists_created_containers(shell):
    _, cid = run(shell, "%docker create --name nb-ps-test busybox true")
    assert isinstance(cid, str) and len(cid) == 64
    try:
        _, df = run(shell, "%docker ps -a --filter name=nb-ps-test")
        assert list(df.name) == ["nb-ps-test"] and list(df.state) == ["created"]
        _, quiet = run(shell, "%docker ps -aq")
        assert quiet is None                              # -q prints IDs as docker does
    finally:
        run(shell, "%docker rm -f nb-ps-test")


def test_errors_are_one_line_and_fail_the_cell(shell, capsys):
    result, _ = run(shell, "%docker rmi no-such-image:1")
    assert isinstance(result.error_in_exec, NotFound)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    assert "NotFound" in text and "No such image: no-such-image:1" in text
    result, _ = run(shell, "%docker run --no-such-flag busybox")
    text = capsys.readouterr().out
    assert not result.success and "UsageError" in text and "See '%docker run --help'." in text


def test_help_is_shown_not_raised(shell, capsys):
    result, _ = run(shell, "%docker images --help")
    assert result.success
    assert "usage: %docker images" in capsys.readouterr().out


def test_run_streams_output_and_returns_the_exit_code(shell, capsys):
    result, code = run(shell, "%docker run --rm busybox sh -c 'echo hello; echo oops >&2'")
    assert result.success and isinstance(code, ExitCode) and code == 0
    out = capsys.readouterr()
    assert "hello" in out.out and "oops" in out.err


def test_run_non_zero_exit_fails_the_cell(shell, capsys):
    result, _ = run(shell, "%docker run --rm busybox sh -c 'echo bad >&2; exit 3'")
    err = result.error_in_exec
    assert isinstance(err, ContainerError) and err.exit_code == 3
    assert "exited with code 3" in capsys.readouterr().out


def test_run_output_arrives_while_the_container_runs(shell):
    """The first line is in the cell well before the container ends (streamed, not collected)."""
    from workbench.kernel_ext import streams

    seen: list[float] = []
    real = streams._Writer.write

    def spy(self, frame):
        seen.append(time.monotonic())
        return real(self, frame)

    streams._Writer.write = spy
    try:
        start = time.monotonic()
        run(shell, "%docker run --rm busybox sh -c 'echo first; sleep 2; echo second'")
        end = time.monotonic()
    finally:
        streams._Writer.write = real
    assert seen and seen[0] - start < (end - start) - 1.0


def test_headless_heartbeat_during_silent_work(shell, capsys, monkeypatch):
    from workbench.kernel_ext import progress

    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.5)
    monkeypatch.setattr(progress.pump, "__defaults__", (0.5,))
    run(shell, "%docker run --rm busybox sleep 2")
    assert "still running" in capsys.readouterr().err


def test_logs(shell, capsys):
    run(shell, "%docker run --name nb-logs busybox sh -c 'echo one; echo two'")
    try:
        capsys.readouterr()
        result, _ = run(shell, "%docker logs nb-logs")
        assert result.success and capsys.readouterr().out.split() == ["one", "two"]
    finally:
        run(shell, "%docker rm -f nb-logs")


@pytest.mark.filterwarnings("ignore:`Completer.complete` is pending deprecation:PendingDeprecationWarning")
def test_tab_completion(shell):
    run(shell, "%docker create --name nb-complete busybox true")
    try:
        def complete(line: str) -> list[str]:
            return shell.complete("", line, len(line))[1]
        assert {"images", "image"} <= set(complete("%docker im"))
        assert "busybox:latest" in complete("%docker run --rm busy")
        assert any(c.endswith("latest") for c in complete("%docker history busybox:la"))
        assert "nb-complete" in complete("%docker logs nb-com")
        assert "--rm" in complete("%docker run --r")
    finally:
        run(shell, "%docker rm -f nb-complete")


def test_python_function_and_headless_detection(shell, monkeypatch):
    from workbench.kernel_ext import docker, frontend

    df = docker("images busybox")
    assert list(df.repository) == ["busybox"]
    assert frontend.headless()                      # an InteractiveShell has no widget frontend
    monkeypatch.setenv("WORKBENCH_HEADLESS", "0")
    assert not frontend.headless()


def test_provenance_pin_and_verify(shell, engine, capsys):
    from workbench.kernel_ext import provenance
    from workbench.kernel_ext.failures import VerifyFailed
    from workbench.kernel_ext.session import current

    session = current()
    run(shell, "%docker tag busybox:latest nb-prov:1")
    run(shell, "%docker run --rm nb-prov:1 true")
    lock = provenance.load_lock(session.lock_path)
    busybox_id = engine.client().images.inspect("busybox").id
    assert lock["images"]["nb-prov:1"]["image_id"] == busybox_id
    result, df = run(shell, "%docker verify nb-prov:1")
    assert result.success and list(df.status) == ["ok"]
    result, pins = run(shell, "%docker pin")
    assert result.success and session.pinned
    assert provenance.pinned_reference(session, "nb-prov:1") == busybox_id
    run(shell, "%docker pin off")
    # the name now points at another image: verify must fail the cell
    engine.client().images.import_(b"\0" * 1024, repository="nb-prov:1")
    result, _ = run(shell, "%docker verify nb-prov:1")
    assert isinstance(result.error_in_exec, VerifyFailed)
    assert "changed" in capsys.readouterr().out


def test_registry_push_pull_with_progress(shell, registry, capsys, tmp_path):
    ref = f"{registry}/nb/busybox:1"
    run(shell, f"%docker tag busybox:latest {ref}")
    result, digest = run(shell, f"%docker push {ref}")
    assert result.success and digest.startswith("sha256:")
    out = capsys.readouterr().out
    assert f"pushed {ref}" in out and "\x1b[" not in out   # plain lines headless, no cursor motion
    _, tags = run(shell, f"%docker registry ls {registry}/nb/busybox")
    assert list(tags.tag) == ["1"]
    run(shell, f"%docker rmi {ref}")
    result, image = run(shell, f"%docker pull {ref}")
    assert result.success and any(d.endswith(digest) for d in image.repo_digests)
    out = capsys.readouterr().out
    assert f"pulled {ref}" in out
    from workbench.kernel_ext import provenance
    from workbench.kernel_ext.session import current

    entry = provenance.load_lock(current().lock_path)["images"][ref]
    assert entry["kind"] == "pull" and entry["repo_digest"].endswith(digest)


def test_registry_serve_in_the_background(shell, tmp_path):
    from tests.notebook.conftest import free_port

    addr = f"127.0.0.1:{free_port()}"
    shell.user_ns["reg_root"] = str(tmp_path / "reg")
    result, server = run(shell, f"%docker registry serve --root {{reg_root}} --addr {addr}")
    assert result.success and server.running
    server.stop()
    assert not server.running


def test_build_cell_streams_steps_and_marks_cache(shell, builder, capsys):
    cell = ("%%docker build -t nb-build:1\nFROM busybox:latest\nRUN echo built > /built.txt\n"
            "CMD [\"cat\", \"/built.txt\"]\n")
    result, image = run(shell, cell)
    assert result.success, result.error_in_exec
    out = capsys.readouterr().out
    assert "[1/3] FROM busybox:latest" in out and "ran" in out
    result, _ = run(shell, cell)
    out = capsys.readouterr().out
    assert "cached" in out and "built nb-build:1" in out
    assert image.repo_tags == ("nb-build:1",)


def test_build_steps_are_timed_live(shell, builder, capsys):
    """Steps arrive as the engine runs them: a step that sleeps is timed as taking that long."""
    import re

    result, _ = run(shell, "%%docker build --no-cache -t nb-slow:1\nFROM busybox:latest\nRUN sleep 1.2\nRUN true\n")
    assert result.success, result.error_in_exec
    out = capsys.readouterr().out
    seconds = float(re.search(r"\[2/3\] RUN sleep 1.2  … ran (\d+\.\d+)s", out).group(1))
    assert 1.0 <= seconds < 5, out


def test_build_failure_shows_the_line(shell, builder, capsys):
    from workbench.errors import BuildError

    result, _ = run(shell, "%%docker build -t nb-fail:1\nFROM busybox:latest\nRUN true\nRUN exit 7\nCMD [\"sh\"]\n")
    assert isinstance(result.error_in_exec, BuildError)
    assert result.error_in_exec.line == 3                  # the cell's own line numbers
    out = capsys.readouterr().out
    assert "Dockerfile line 3" in out and ">   3 | RUN exit 7" in out
    assert "[2/4] RUN true  … ran" in out and "build failed at step 3/4" in out


def test_parse_error_points_at_the_line_without_an_engine_round_trip(shell, capsys):
    from workbench.errors import BuildError

    result, _ = run(shell, "%%docker build -t nb-bad:1\nFROM busybox\nRUN true\nNOPE x\n")
    assert isinstance(result.error_in_exec, BuildError) and result.error_in_exec.line == 3
    assert ">   3 | NOPE x" in capsys.readouterr().out


@pytest.fixture(autouse=True)
def _lock_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.environ.setdefault("WORKBENCH_HEADLESS", "")


def test_pin_rewrites_from_lines_of_a_build_cell(shell, builder, engine, capsys):
    from workbench.kernel_ext.session import current

    session = current()
    run(shell, "%docker tag busybox:latest nb-pinbase:1")
    run(shell, "%docker run --rm nb-pinbase:1 true")            # recorded as used
    pinned_id = engine.client().images.inspect("nb-pinbase:1").id
    run(shell, "%docker pin")
    try:
        engine.client().images.import_(b"\0" * 1024, repository="nb-pinbase:1", changes=['CMD ["sh"]'])
        result, image = run(shell, "%%docker build -t nb-pinned:1\nFROM nb-pinbase:1\nRUN true\n")
        assert result.success, result.error_in_exec
        assert f"FROM {pinned_id}" in capsys.readouterr().out    # the moved tag was not used
        base_layers = engine.client().images.inspect(pinned_id).layers
        built_layers = engine.client().images.inspect("nb-pinned:1").layers
        assert built_layers[:len(base_layers)] == base_layers
    finally:
        session.pinned = False


def test_autostart_when_nothing_answers(kernel_env, tmp_path):
    """As root with runc present, loading the extension starts a detached engine and says so in one line."""
    from tests.helpers import forget_engine, mounts_under
    from workbench.engine.daemon import main_stop

    root, sock = tmp_path / "root", tmp_path / "auto.sock"
    env = dict(kernel_env, WORKBENCH_HOST=f"unix://{sock}", WORKBENCH_ROOT=str(root), WORKBENCH_AUTOSTART="1")
    code = ("from IPython.core.interactiveshell import InteractiveShell\nip = InteractiveShell.instance()\n"
            "ip.run_line_magic('load_ext', 'workbench')\nr = ip.run_cell('df = %docker ps -a')\n"
            "print('OK' if r.success and len(ip.user_ns['df']) == 0 else 'FAILED')")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                             timeout=120)
        lines = out.stdout.strip().splitlines()
        assert lines[0].startswith(f"workbench: no engine answered at unix://{sock}, so one was started"), out
        assert lines[-1] == "OK", out.stdout + out.stderr
    finally:
        main_stop(str(root))
        forget_engine(root)
        for m in sorted(mounts_under(tmp_path), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], check=False)
