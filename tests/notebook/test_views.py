"""`workbench.views`: DataFrames with real dtypes from the live engine, and layer analysis (files, wasted
bytes, diff) read from `GET /images/{name}/get`."""

from __future__ import annotations

import tempfile

import pandas as pd
import pytest

from tests.notebook.conftest import load_archive
from tests.notebook.images import WASTEFUL, image_archive
from workbench import views
from workbench.kernel_ext.layerfs import read_archive

WASTED = {"/data/big.bin": 1_000_000, "/etc/app.conf": 5, "/cache/a": 3}


def test_wasted_bytes_from_an_archive_without_an_engine():
    with tempfile.NamedTemporaryFile(suffix=".tar") as f:
        f.write(image_archive(WASTEFUL, "w:1"))
        f.flush()
        contents = read_archive(f.name)
    wasted = {e.path: contents.wasted_of(layer.index, e) for layer in contents.layers for e in layer.entries
              if contents.wasted_of(layer.index, e)}
    assert wasted == WASTED
    assert contents.fate(0, "/data/big.bin") == "removed"
    assert contents.fate(0, "/etc/app.conf") == "overwritten"
    assert contents.fate(0, "/cache/a") == "removed"          # hidden by the opaque directory above
    assert contents.fate(0, "/etc") == "kept"                 # a directory listed again merges
    assert sorted(contents.merged()) == ["/bin", "/bin/sh", "/bin/tool", "/cache", "/cache/b", "/data", "/etc",
                                         "/etc/app.conf", "/new.txt"]


def test_listings_have_real_dtypes(engine, busybox):
    client = engine.client()
    images = views.images(client)
    assert list(images.columns) == ["repository", "tag", "image_id", "created", "size"]
    assert images["size"].dtype == "int64"
    assert isinstance(images["created"].dtype, pd.DatetimeTZDtype)
    row = images[images.repository == "busybox"].iloc[0]
    assert row.tag == "latest" and row["size"] > 1_000_000
    hist = views.history("busybox", client)
    assert hist["size"].dtype == "int64" and len(hist) >= 1
    ctrs = views.containers(client)
    assert list(ctrs.columns) == ["container_id", "name", "image", "command", "created", "state", "status",
                                  "addresses", "ports"]
    assert images.attrs["workbench"]["bytes"] == ["size"]


def test_layers_files_and_efficiency(engine, wasteful):
    client = engine.client()
    layers = views.layers(wasteful, client)
    assert list(layers["layer"]) == [0, 1, 2]
    assert list(layers["created_by"]) == ["ADD base", "RUN rm big", "RUN cache"]
    assert list(layers["wasted"]) == [1_000_008, 0, 0]
    assert layers["size"].dtype == "int64" and layers["size"].iloc[0] == 1_000_028
    assert layers["digest"].str.startswith("sha256:").all()
    files = views.files(wasteful, client)
    assert set(files.columns) >= {"layer", "path", "size", "mode", "overwritten", "removed", "wasted"}
    big = files[(files.path == "/data/big.bin") & (files.layer == 0)].iloc[0]
    assert big.removed and not big.overwritten and big.wasted == 1_000_000 and big["mode"] == "-rw-r--r--"
    conf = files[(files.path == "/etc/app.conf")].set_index("layer")
    assert conf.loc[0, "overwritten"] and conf.loc[0, "wasted"] == 5 and conf.loc[1, "wasted"] == 0
    assert conf.loc[1, "change"] == "modified"
    assert files[files.type == "whiteout"].path.tolist() == ["/data/big.bin"]
    assert dict(files[files.wasted > 0].groupby("path")["wasted"].sum()) == WASTED
    summary = views.efficiency(wasteful, client)
    assert summary["wasted"] == sum(WASTED.values())
    assert summary["inefficient_files"][0] == ("/data/big.bin", 1, 1_000_000)
    assert 0 < summary["efficiency"] < 0.01


def test_diff_between_two_images(engine, wasteful):
    client = engine.client()
    changed = [WASTEFUL[0], [("etc/", None), ("etc/app.conf", b"a=1\nchanged\n"), ("bin/.wh.tool", None),
                             ("opt/", None), ("opt/x", b"x")]]
    load_archive(engine, image_archive(changed, "waste:2"))
    df = views.diff(wasteful, "waste:2", client)
    by_path = df.set_index("path")
    assert by_path.loc["/opt/x", "change"] == "added" and by_path.loc["/opt/x", "size_b"] == 1
    assert by_path.loc["/bin/tool", "change"] == "removed"
    assert by_path.loc["/etc/app.conf", "change"] == "changed"
    assert by_path.loc["/data/big.bin", "change"] == "added"   # deleted in waste:1, present in waste:2
    assert by_path.loc["/new.txt", "change"] == "removed"
    assert by_path.loc["/etc/app.conf", "delta"] == len(b"a=1\nchanged\n") - len(b"a=2\nb=3\n")
    assert "/bin/sh" not in by_path.index                      # unchanged entries are left out


def test_frames_render_fast_and_human(engine, busybox):
    from workbench.kernel_ext.display import frame_html, frame_text

    images = views.images(engine.client())
    html = frame_html(images)
    text = frame_text(images)
    assert 'class="wb-table wb-images"' in html and "MB" in html and "bytes" in html
    assert "REPOSITORY" in text and "MB" in text
    assert frame_html(pd.DataFrame({"a": [1]})) is None


@pytest.mark.parametrize("rows", [5, 500])
def test_big_frames_are_cut(rows):
    from workbench.kernel_ext.display import frame_html

    df = views.registry_frame("r:1", [f"repo{i}" for i in range(rows)])
    html = frame_html(df)
    assert html.count("<tr>") <= 62 and f"{rows} rows" in html
