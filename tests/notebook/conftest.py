"""Fixtures for the notebook layer: an IPython shell with the extension on the session engine, loaded
images with known layers, a local registry, and what a papermill kernel needs in its environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.notebook.images import WASTEFUL, image_archive

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def kernel_env(engine):
    """Environment for kernels papermill or JupyterLab start: this repo, this engine, no autostart.
    Set for one test module at a time and restored after it, so nothing leaks into other suites."""
    saved = dict(os.environ)
    os.environ.update({"WORKBENCH_HOST": engine.host, "WORKBENCH_AUTOSTART": "0",
                       "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), saved.get("PYTHONPATH")])),
                       "PATH": os.pathsep.join([str(VENV_BIN), saved.get("PATH", "")])})
    try:
        yield dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def shell(engine, busybox, kernel_env, tmp_path_factory):
    """An IPython InteractiveShell with `%load_ext workbench` done against the session engine."""
    from IPython.core.interactiveshell import InteractiveShell

    os.environ["WORKBENCH_LOCK"] = str(tmp_path_factory.mktemp("lock") / "workbench.lock")
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "workbench")
    yield ip
    ip.run_line_magic("unload_ext", "workbench")
    os.environ.pop("WORKBENCH_LOCK", None)


def load_archive(engine, data: bytes) -> None:
    r = engine.api.post("/images/load", content=data, headers={"Content-Type": "application/x-tar"},
                        params={"quiet": 1})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="session")
def wasteful(engine) -> str:
    """`waste:1`: 1 MB written then deleted, a file rewritten, a directory made opaque (see images.py)."""
    load_archive(engine, image_archive(WASTEFUL, "waste:1", created_by=["ADD base", "RUN rm big", "RUN cache"]))
    return "waste:1"


def _probe(engine, method: str, path: str) -> bool:
    r = engine.api.request(method, path)
    return not (r.status_code in (404, 405) and ("page not found" in r.text or "not allowed" in r.text))


@pytest.fixture(scope="session")
def builder(engine) -> None:
    """Skip unless the engine has its builder (`POST /build`)."""
    if not _probe(engine, "POST", "/build"):
        pytest.skip("waits on the builder: the engine answers 404 for POST /build")


@pytest.fixture(scope="session")
def registry(engine, tmp_path_factory):
    """A `workbench registry serve` on a free loopback port; yields HOST:PORT."""
    if not _probe(engine, "POST", "/images/x/push"):
        pytest.skip("waits on push/pull in the engine")
    tmp = tmp_path_factory.mktemp("registry")
    addr = f"127.0.0.1:{free_port()}"
    log = open(tmp / "registry.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli.main", "registry", "serve", "--root",
                             str(tmp / "root"), "--addr", addr], stdout=log, stderr=log,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", int(addr.rsplit(":", 1)[1])), 0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"registry did not start: {(tmp / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.05)
    try:
        yield addr
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def run(shell, cell: str):
    """Run a cell; return (result, value of the last expression)."""
    result = shell.run_cell(cell)
    return result, result.result
