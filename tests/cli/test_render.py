"""Rendering: docker's sizes, times, tables, templates and progress, without an engine."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime

import pytest

from workbench.cli import tables
from workbench.cli.commands import Outcome
from workbench.cli.gotemplate import Template
from workbench.cli.parser import parse
from workbench.cli.progress import ProgressPrinter
from workbench.cli.render import Output, error_text, render
from workbench.client import ContainerSummary, ImageSummary, LogFrame, ProgressEvent
from workbench.client._wire import error_from_body
from workbench.errors import NotFound


def _out(tty: bool = False) -> tuple[Output, io.StringIO, io.StringIO, io.BytesIO]:
    out, err, raw = io.StringIO(), io.StringIO(), io.BytesIO()
    return Output(out=out, err=err, binary=raw, tty=tty, err_tty=tty), out, err, raw


@pytest.mark.parametrize("n,text", [(0, "0B"), (999, "999B"), (1000, "1kB"), (1984132, "1.98MB"),
                                    (4_261_000, "4.26MB"), (999_999, "1MB"), (1.5e9, "1.5GB"), (119_000, "119kB")])
def test_human_size_like_docker(n, text):
    assert tables.human_size(n) == text


def test_ago():
    now = time.time()
    at = datetime.fromtimestamp(now - 125, UTC)
    assert tables.ago(at, now) == "2 minutes ago"
    assert tables.ago(datetime.fromtimestamp(now, UTC), now) == "Less than a second ago"
    assert tables.ago(datetime(1, 1, 1, tzinfo=UTC)) == ""


def test_table_aligns_like_tabwriter():
    lines = tables.table(["REPOSITORY", "TAG", "IMAGE ID"], [["busybox", "latest", "453239aec4c7"]])
    assert lines == ["REPOSITORY   TAG       IMAGE ID", "busybox      latest    453239aec4c7"]


def _image(tags, created=0, size=1984132, digests=()):
    return ImageSummary.from_wire({"Id": "sha256:" + "4532" * 16, "RepoTags": list(tags), "Created": created,
                                   "Size": size, "RepoDigests": list(digests)})


def test_images_table_quiet_and_digests():
    imgs = [_image(["busybox:latest", "bb:1"], created=int(time.time()) - 120),
            _image([], created=1, digests=())]
    o, out, _, _ = _out()
    render("image_ls", parse(["images"]), imgs, o)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:3] == ["busybox", "latest", "453245324532"] and "2 minutes ago" in lines[1]
    assert lines[3].startswith("<none>       <none>")
    o, out, _, _ = _out()
    render("image_ls", parse(["images", "-q"]), imgs, o)
    assert out.getvalue() == "453245324532\n"
    o, out, _, _ = _out()
    digest = "sha256:" + "f" * 64
    render("image_ls", parse(["images", "--digests"]), [_image(["r/app:1"], digests=[f"r/app@{digest}"])], o)
    assert digest in out.getvalue().splitlines()[1]


def _container(**over):
    doc = {"Id": "a7469391ca2c" + "0" * 52, "Names": ["/web"], "Image": "busybox", "ImageID": "sha256:x",
           "Command": "sh -c 'while true; do sleep 1; done'", "Created": int(time.time()) - 3,
           "State": "running", "Status": "Up 2 seconds",
           "Ports": [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"}]}
    doc.update(over)
    return ContainerSummary.from_wire(doc)


def test_ps_table_columns_like_docker():
    o, out, _, _ = _out()
    render("container_ls", parse(["ps"]), [_container()], o)
    header, row = out.getvalue().splitlines()
    columns = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert [c for c in columns if c in header] == columns
    for title, cell in (("IMAGE", "busybox"), ("COMMAND", '"sh'), ("STATUS", "Up 2"), ("PORTS", "127.0.0.1"),
                        ("NAMES", "web")):
        assert header.index(title) == row.index(cell)
    assert row.startswith("a7469391ca2c   busybox   \"sh -c 'while true; …\"")
    assert "127.0.0.1:18080->80/tcp" in row and row.endswith("web") and "3 seconds ago" in row


def test_ps_format_template_and_table():
    o, out, _, _ = _out()
    render("container_ls", parse(["ps", "--format", "{{.Names}}: {{.Status}}"]), [_container()], o)
    assert out.getvalue() == "web: Up 2 seconds\n"
    o, out, _, _ = _out()
    render("container_ls", parse(["ps", "--format", "table {{.ID}}\t{{.Names}}"]), [_container()], o)
    assert out.getvalue().splitlines() == ["CONTAINER ID   NAMES", "a7469391ca2c   web"]


def test_inspect_json_and_format():
    doc = {"Id": "x", "State": {"Running": True, "Status": "running"}, "Config": {"Cmd": ["sh"], "Env": None}}
    o, out, _, _ = _out()
    render("inspect", parse(["inspect", "x"]), [doc], o)
    assert out.getvalue().startswith('[\n    {\n        "Id": "x"')
    o, out, _, _ = _out()
    render("inspect", parse(["inspect", "-f", "{{.State.Running}} {{json .Config.Cmd}} {{.Config.Env}}", "x"]),
           [doc], o)
    assert out.getvalue() == 'true ["sh"] <no value>\n'


def test_templates():
    t = Template("{{range .Items}}{{.Name}}={{index .Labels \"k\"}};{{end}}{{if .On}}on{{else}}off{{end}}")
    data = {"Items": [{"Name": "a", "Labels": {"k": "1"}}, {"Name": "b", "Labels": {}}], "On": False}
    assert t.render(data) == "a=1;b=<no value>;off"
    assert Template("{{join .L \",\"}} {{len .L}} {{upper .S}}").render({"L": ["x", "y"], "S": "ab"}) == "x,y 2 AB"
    assert Template("{{.M}}").render({"M": {"b": 1, "a": True}}) == "map[a:true b:1]"


def test_outcomes_print_names_and_errors():
    o, out, err, _ = _out()
    code = render("container_rm", parse(["rm", "a", "b"]),
                  [Outcome("a"), Outcome("b", error=error_from_body(404, b'{"message":"No such container: b"}'))], o)
    assert code == 1 and out.getvalue() == "a\n"
    assert err.getvalue() == "Error response from daemon: No such container: b\n"


def test_error_text_prefix_only_for_daemon_errors():
    assert error_text(NotFound("local")) == "local"
    assert error_text(error_from_body(409, b'{"message":"conflict"}')) == "Error response from daemon: conflict"


def test_logs_frames_go_to_their_streams():
    class Stream(list):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            pass

    o, out, err, raw = _out()
    render("container_logs", parse(["logs", "c"]), Stream([LogFrame(1, b"out\n"), LogFrame(2, b"err\n")]), o)
    assert raw.getvalue() == b"out\n"


def test_progress_plain_lines_when_not_a_terminal():
    buf = io.StringIO()
    p = ProgressPrinter(buf, tty=False)
    p.feed([ProgressEvent(status="Pulling from library/busybox", id="latest"),
            ProgressEvent(status="Downloading", id="abc", current=1, total=10),
            ProgressEvent(status="Downloading", id="abc", current=5, total=10),
            ProgressEvent(status="Pull complete", id="abc"),
            ProgressEvent(status="Digest: sha256:x"), ProgressEvent(aux={"Tag": "1"})])
    assert buf.getvalue().splitlines() == ["latest: Pulling from library/busybox", "abc: Downloading",
                                           "abc: Pull complete", "Digest: sha256:x"]


def test_progress_bars_redraw_in_place_on_a_terminal():
    buf = io.StringIO()
    p = ProgressPrinter(buf, tty=True)
    p.feed([ProgressEvent(status="Downloading", id="l1", current=1, total=4),
            ProgressEvent(status="Waiting", id="l2"),
            ProgressEvent(status="Downloading", id="l1", current=4, total=4)])
    text = buf.getvalue()
    assert text.startswith("l1: Downloading [============>")
    assert "\x1b[2A\r\x1b[2Kl1: Downloading [==================================================]" in text


def test_build_stream_lines_are_written_verbatim():
    buf = io.StringIO()
    ProgressPrinter(buf, tty=False).feed([ProgressEvent(stream="Step 1/2 : FROM busybox\n"),
                                          ProgressEvent(stream=" ---> 123\n")])
    assert buf.getvalue() == "Step 1/2 : FROM busybox\n ---> 123\n"


def test_full_reference():
    assert tables.full_reference("busybox") == "docker.io/library/busybox:latest"
    assert tables.full_reference("127.0.0.1:5000/a:1") == "127.0.0.1:5000/a:1"


def test_ps_image_column_shortens_ids_and_digests():
    from_id = _container(Image="sha256:" + "ab" * 32, ImageID="sha256:" + "ab" * 32)
    from_digest = _container(Image="reg/app@sha256:" + "f" * 64, ImageID="sha256:x")
    o, out, _, _ = _out()
    render("container_ls", parse(["ps", "--format", "{{.Image}}"]), [from_id, from_digest], o)
    assert out.getvalue().split() == ["abababababab", "reg/app"]


def test_system_df_like_docker():
    from workbench.client import DiskUsage

    df = DiskUsage.from_wire({
        "LayersSize": 3968000,
        "Images": [{"Id": "sha256:a", "Size": 1984000, "VirtualSize": 1984000, "SharedSize": 0, "Containers": 1},
                   {"Id": "sha256:b", "Size": 1984000, "VirtualSize": 1984000, "SharedSize": 0, "Containers": 0}],
        "Containers": [{"Id": "c1", "State": "running", "SizeRw": 100},
                       {"Id": "c2", "State": "exited", "SizeRw": 50}],
        "Volumes": [{"Name": "v", "UsageData": {"Size": 1000, "RefCount": 0}}],
        "BuildCache": [],
    })
    o, out, _, _ = _out()
    render("system_df", parse(["system", "df"]), df, o)
    assert out.getvalue().splitlines() == [
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE",
        "Images          2         1         3.968MB   1.984MB (50%)",
        "Containers      2         1         150B      50B (33%)",
        "Local Volumes   1         0         1kB       1kB (100%)",
        "Build Cache     0         0         0B        0B",
    ]
