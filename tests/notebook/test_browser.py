"""The real thing: JupyterLab on loopback, headless Chromium (Debian's, driven by playwright with its
executable path, no browser download) opens 01-getting-started, runs all cells, finds the dashboard's
container table, and saves a screenshot under the test's output folder."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.notebook.conftest import NOTEBOOKS, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture
def lab(tmp_path, kernel_env, monkeypatch):
    """`jupyter lab` serving a copy of 01-getting-started on a free loopback port; yields (url, token)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required: apt-get install -y chromium")
    monkeypatch.delenv("WORKBENCH_LOCK", raising=False)
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(NOTEBOOKS / "01-getting-started.ipynb", root)
    port, token = free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyter.log", "ab")
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "jconfig"), JUPYTER_RUNTIME_DIR=str(tmp_path / "jrun"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"), HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
                             "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
                             f"--ServerApp.root_dir={root}"],
                            stdout=log, stderr=log, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"jupyter lab did not start:\n{(tmp_path / 'jupyter.log').read_text()[-3000:]}")
            time.sleep(0.2)
    # Start the notebook's kernel session up front, so Lab attaches to it instead of asking which kernel.
    request = urllib.request.Request(f"{url}/api/sessions", method="POST", headers={
        "Authorization": f"token {token}", "Content-Type": "application/json"}, data=json.dumps({
            "path": "01-getting-started.ipynb", "name": "01-getting-started.ipynb", "type": "notebook",
            "kernel": {"name": "python3"}}).encode())
    urllib.request.urlopen(request, timeout=60).read()
    try:
        yield url, token, root
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_lab_runs_getting_started_and_shows_the_dashboard(engine, busybox, builder, lab, tmp_path):
    from playwright.sync_api import sync_playwright

    url, token, root = lab
    shot = tmp_path / "01-getting-started.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/01-getting-started.ipynb?token={token}")
            page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
            table = page.locator("table.wb-containers")
            for attempt in range(3):   # under load Lab can swallow a Run All (notebook still settling)
                _run_all(page)
                try:
                    table.first.wait_for(timeout=60_000)
                    break
                except Exception:
                    # a Run All sent while Lab swapped kernels leaves every cell unrun: try again;
                    # a cell that did run means a real failure
                    ran = page.locator(".jp-InputPrompt", has_text=re.compile(r"\[[0-9]+\]")).count()
                    if ran or attempt == 2:
                        raise
            page.locator("table.wb-containers td", has_text="wb-getting-started").first.wait_for(timeout=60_000)
            _wait_kernel_idle(page, timeout=120)
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] "
                                  ":text('Error')").count()
            page.locator(".jp-CodeCell", has_text="%%docker build").first.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "01-build-cell.png"))
            table.first.scroll_into_view_if_needed()
            page.screenshot(path=str(shot), full_page=True)
            tabs = page.locator(".lm-TabBar-tabLabel", has_text="Containers").count()
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert shot.exists() and shot.stat().st_size > 10_000
    assert tabs >= 1, "the dashboard's Containers tab is missing"
    assert errors == 0, "a cell failed in JupyterLab"
    lock = root / "workbench.lock"
    assert lock.exists(), "the build was not recorded beside the notebook"
    print(f"screenshot: {shot}")


def _run_all(page) -> None:
    """Wait for the kernel to be up and idle (answering Lab's "Select Kernel" dialog when it asks),
    then Run > Run All Cells (again if nothing started)."""
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    deadline = time.monotonic() + 90
    since = None        # idle for 2 s in a row: Lab may start a kernel of its own and drop the first
    while since is None or time.monotonic() - since < 2:
        _answer_dialog(page)
        if idle.count() and idle.first.is_visible():
            since = since or time.monotonic()
        else:
            since = None
        if time.monotonic() > deadline:
            raise AssertionError("the kernel did not become idle")
        time.sleep(0.3)
    for _ in range(5):
        _answer_dialog(page)
        try:
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click(timeout=5_000)
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click(timeout=5_000)
        except Exception:  # a dialog came up in between: answer it and try again
            page.keyboard.press("Escape")
            continue
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _answer_dialog(page)   # Lab may ask for the kernel only once Run All needs it
            if page.locator(".jp-InputPrompt", has_text=re.compile(r"\[[0-9*]+\]")).count():
                return
            time.sleep(0.3)
    raise AssertionError("Run All Cells did not start any cell")


def _answer_dialog(page) -> None:
    """Accept Lab's "Select Kernel" dialog (the notebook's own kernel) if it is up."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and dialog.first.is_visible():
        dialog.locator("button", has_text="Select").first.click()
        time.sleep(0.5)


def _wait_kernel_idle(page, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = page.evaluate("() => !!document.querySelector('.jp-Notebook-ExecutionIndicator"
                             "[data-status=\"busy\"], .jp-mod-busy')")
        if not busy:
            return
        time.sleep(0.5)
