"""Widget models: what the dashboard, log tail, layer explorer, registry browser and progress bars hold,
and what their buttons do, against the live engine (no browser: the models are the contract)."""

from __future__ import annotations

import time

import pytest

from workbench.kernel_ext import widgets
from workbench.kernel_ext.progress import BuildTracker, TransferTracker
from workbench.oci.streams import ProgressEvent


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_dashboard_tabs_table_and_buttons(engine, busybox):
    client = engine.client()
    cid = client.containers.create("busybox", ["sleep", "30"], name="nb-dash").id
    try:
        dash = widgets.dashboard(client, refresh=0.2)
        assert dash.tabs.titles == ("Containers", "Images")
        assert 'class="wb-table wb-containers"' in dash.containers_html.value
        assert "nb-dash" in dash.containers_html.value
        assert "busybox" in dash.images_html.value
        assert cid in [v for _, v in dash.container_select.options]
        assert [b.description for b in dash.buttons.values()] == ["start", "stop", "remove", "logs"]
        dash.container_select.value = cid
        dash.buttons["start"].click()
        assert client.containers.inspect(cid).state.running
        assert "running" in dash.containers_html.value
        dash.buttons["logs"].click()
        assert dash.detail.children                          # a log tail opened under the table
        dash.buttons["stop"].click()
        assert not client.containers.inspect(cid).state.running
        dash.buttons["remove"].click()
        assert "nb-dash" not in dash.containers_html.value
        assert "Containers" in dash.text() and "busybox" in dash.text()
        # auto refresh picks up a container made behind its back
        dash.shown()
        client.containers.create("busybox", ["true"], name="nb-dash-2")
        assert _wait(lambda: "nb-dash-2" in dash.containers_html.value, 5)
        dash.close()
    finally:
        for name in ("nb-dash", "nb-dash-2"):
            try:
                client.containers.remove(name, force=True)
            except Exception:
                pass


def test_dashboard_image_tab_opens_the_layer_explorer(engine, wasteful):
    dash = widgets.dashboard(engine.client(), auto=False)
    dash.image_select.value = wasteful
    dash.image_buttons["layers"].click()
    assert dash.image_detail.children
    dash.close()


def test_log_tail_feed_filter_and_export():
    tail = widgets.LogTail.__new__(widgets.LogTail)
    import ipywidgets as w
    from collections import deque

    tail.lines, tail._partial, tail._drawn, tail.interval = deque(maxlen=10), {1: "", 2: ""}, 0.0, 0.0
    tail.filter, tail.pause, tail.output = w.Text(value=""), w.ToggleButton(value=False), w.HTML("")
    tail.feed(1, "alpha\nbe")
    tail.feed(1, "ta\n")
    tail.feed(2, "gamma error\n")
    assert [x[2] for x in tail.lines] == ["alpha", "beta", "gamma error"]
    tail.filter.value = "error|alpha"
    tail.render(force=True)
    assert "alpha" in tail.output.value and "beta" not in tail.output.value
    assert 'color:#c33">gamma error' in tail.output.value       # stderr in red
    df = tail.to_frame()
    assert list(df.stream) == ["stdout", "stdout", "stderr"]


def test_log_tail_follows_a_container(engine, busybox):
    client = engine.client()
    cid = client.containers.create("busybox", ["sh", "-c", "echo one; echo two; sleep 1; echo three"],
                                   name="nb-tail").id
    try:
        client.containers.start(cid)
        tail = widgets.log_tail("nb-tail", client, interval=0.0)
        tail.start()
        assert _wait(lambda: [x[2] for x in tail.lines] == ["one", "two", "three"], 15), list(tail.lines)
        assert tail.done.wait(15)
        assert "three" in tail.output.value
    finally:
        client.containers.remove(cid, force=True)


def test_layer_explorer(engine, wasteful):
    ex = widgets.layer_explorer(wasteful, engine.client())
    assert len(ex.layer_select.options) == 3
    assert ex.layer_select.value == 2                      # the top layer first
    assert "1MB wasted" in ex.header.value or "1.00MB wasted" in ex.header.value
    ex.layer_select.value = 0
    assert "/data/big.bin" in ex.files_html.value and "wb-wasted" in ex.files_html.value
    ex.only_wasted.value = True
    assert len(ex.selected_files()) == 3 and "/bin/tool" not in ex.files_html.value
    assert "efficiency" in ex.text()


def test_registry_browser_pages_tags(engine, busybox, registry):
    client = engine.client()
    for tag in ("a", "b", "c"):
        ref = f"{registry}/browse/me:{tag}"
        client.images.tag("busybox:latest", ref)
        with client.images.push(ref) as progress:
            progress.drain()
    rb = widgets.registry_browser(registry, client, page_size=2)
    assert "browse/me" in rb.repositories.options
    rb.repositories.value = "browse/me"
    assert list(rb.tags.options) == ["a", "b"] and not rb.next_button.disabled and rb.prev_button.disabled
    rb.next_button.click()
    assert list(rb.tags.options) == ["c"] and rb.next_button.disabled
    rb.prev_button.click()
    assert list(rb.tags.options) == ["a", "b"]
    rb.tags.value = "b"
    assert rb.reference == f"{registry}/browse/me:b" and not rb.pull_button.disabled
    client.images.remove(rb.reference)
    rb.pull_button.click()
    assert rb.progress.children and "pulled" in rb.status.value
    assert client.images.inspect(rb.reference).id


def test_build_progress_widget_from_a_stream():
    view = widgets.BuildProgress("build t:1", show=False, interval=0.0)
    tracker = BuildTracker(view)
    for text in ["Step 1/3 : FROM busybox\n", " ---> abcdef123456\n", "Step 2/3 : RUN echo hi\n",
                 " ---> Using cache\n", " ---> 0123456789ab\n", "Step 3/3 : RUN make\n",
                 " ---> Running in 111111111111\n", "compiling\n"]:
        tracker.feed(ProgressEvent(stream=text))
    assert "✔ cached" in view.steps_html.value and "⏳ running" in view.steps_html.value
    assert "compiling" in view.log_html.value
    view.failed(tracker.current, "exit 2", "<div>Dockerfile line 3</div>")
    assert "✘ failed" in view.steps_html.value and "line 3" in view.error_html.value
    assert [s.mark for s in tracker.steps[:2]] == ["base", "cached"]


def test_transfer_progress_bars():
    view = widgets.TransferProgress(show=False, interval=0.0)
    tracker = TransferTracker(view, "pull", "r/x:1")
    tracker.feed(ProgressEvent(status="Pulling from r/x", id="1"))
    tracker.feed(ProgressEvent(status="Downloading", id="aaa", current=50, total=200))
    tracker.feed(ProgressEvent(status="Downloading", id="bbb", current=10, total=10))
    tracker.feed(ProgressEvent(status="Pull complete", id="bbb"))
    bars = {b.children[0].description: b.children[0] for b in view.rows.children}
    assert bars["aaa"].value == pytest.approx(0.25) and bars["bbb"].value == 1.0
    assert bars["bbb"].bar_style == "success"
    tracker.finish()
    assert "pulled r/x:1" in view.header.value


def test_registry_browser_uses_the_login_config(engine, busybox, shell, tmp_path):
    """A registry with basic auth: `%docker --config DIR login` stores the credentials, push uses them, and
    the browser lists the private registry with them (and cannot without)."""
    from IPython.core.interactiveshell import InteractiveShell  # noqa: F401 - the shell fixture made it

    from tests.notebook.conftest import free_port, run
    from workbench.client import Client
    from workbench.engine.registry.auth import make_htpasswd_line
    from workbench.kernel_ext.background import serve_registry

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(make_htpasswd_line("nbuser", "s3cret") + "\n")
    addr = f"127.0.0.1:{free_port()}"
    import argparse

    server = serve_registry(argparse.Namespace(root=str(tmp_path / "reg"), addr=addr, htpasswd=str(htpasswd),
                                               read_only=False))
    try:
        conf = tmp_path / "conf"
        result, _ = run(shell, f"%docker --config {conf} login -u nbuser -p s3cret {addr}")
        assert result.success, result.error_in_exec
        assert "nbuser" not in (conf / "config.json").read_text()          # base64, as docker stores it
        run(shell, f"%docker tag busybox:latest {addr}/private/bb:1")
        result, _ = run(shell, f"%docker --config {conf} push {addr}/private/bb:1")
        assert result.success, result.error_in_exec
        rb = widgets.registry_browser(addr, Client(engine.host, config_dir=conf))
        assert list(rb.repositories.options) == ["private/bb"] and "as nbuser" in rb.auth_label.value
        anonymous = widgets.registry_browser(addr, Client(engine.host, config_dir=tmp_path / "empty"))
        assert not anonymous.repositories.options and "cannot list" in anonymous.status.value
    finally:
        server.stop()


def test_dashboard_shows_addresses_and_published_ports_as_links(engine, busybox):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    client = engine.client()
    cid = client.containers.create("busybox", ["sleep", "30"], name="nb-dash-ports",
                                   ports={"80/tcp": ("127.0.0.1", port)}).id
    try:
        client.containers.start(cid)
        address = client.containers.inspect(cid).attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        dash = widgets.dashboard(client, refresh=0)
        html = dash.containers_html.value
        assert f"bridge {address}" in html
        assert f'<a href="http://127.0.0.1:{port}/"' in html and f"127.0.0.1:{port}-&gt;80/tcp" in html
        dash.close()
    finally:
        client.containers.remove(cid, force=True)
