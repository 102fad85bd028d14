"""Reproducible builds: with SOURCE_DATE_EPOCH, two clean builds give byte-identical images, on the
same root (nocache, images removed in between) and on two daemons with different roots."""

from __future__ import annotations

import io
import tarfile

import pytest

from tests.conftest import own_engine
from tests.engine.build.build_support import BUSYBOX_DF, Entry, build, image_config, remove_image, saved

EPOCH = 1_600_000_000


def archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        ti = tarfile.TarInfo("inner/file")
        data = b"inside a tar\n"
        ti.size, ti.mtime = len(data), 1_900_000_000
        t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


FILES = {"old.txt": Entry(b"old\n", mtime=1_000_000_000), "new.txt": Entry(b"new\n", mtime=1_900_000_000),
         "dir": Entry(kind="dir", mtime=1_950_000_000), "dir/f": "f\n", "pkg.tgz": archive()}
SCRATCH_DF = "FROM scratch\nCOPY old.txt new.txt /files/\nCOPY dir /dir\nADD pkg.tgz /opt/\nENV A=1\n" \
             "COPY <<EOF /inline\nhello\nEOF\n"


def digests(engine, ref):
    doc = image_config(engine, ref)
    return doc["Id"], doc["Descriptor"]["digest"], doc["RootFS"]["Layers"]


def test_two_clean_builds_on_one_root_are_identical(engine, busybox):
    df = BUSYBOX_DF + "RUN mkdir -p /app && echo made > /app/out && touch /tmp/stamp\nCOPY new.txt /app/\n" \
                      "WORKDIR /work\nLABEL built=yes\n"
    args = {"SOURCE_DATE_EPOCH": str(EPOCH)}
    first = build(engine, FILES, dockerfile=df, nocache=True, buildargs=args)
    one = digests(engine, first.check())
    assert "[Warning]" not in first.text  # SOURCE_DATE_EPOCH counts as consumed
    config, layers, _ = saved(engine, one[0])
    assert config["created"] == "2020-09-13T12:26:40Z"
    assert all(h["created"] == "2020-09-13T12:26:40Z" for h in config["history"][-4:])
    for layer in layers[1:]:
        assert all(m.mtime <= EPOCH for m in layer.members.values())
        assert all(m.uname == "" and m.gname == "" for m in layer.members.values())
    remove_image(engine, one[0])
    two = digests(engine, build(engine, FILES, dockerfile=df, nocache=True, buildargs=args).check())
    assert two == one
    plain = build(engine, FILES, dockerfile=df, nocache=True).check()
    assert plain != one[0]  # without the epoch, `created` differs
    for image in (two[0], plain):
        remove_image(engine, image)


@pytest.fixture
def second_engine():
    """Another daemon on its own root, with SOURCE_DATE_EPOCH in its environment."""
    with own_engine("wbt2-", {"SOURCE_DATE_EPOCH": str(EPOCH)}) as handle:
        yield handle


def test_two_roots_give_byte_identical_images(engine, second_engine):
    here = build(engine, FILES, dockerfile=SCRATCH_DF, nocache=True,
                 buildargs={"SOURCE_DATE_EPOCH": str(EPOCH)}).check()
    there = build(second_engine, FILES, dockerfile=SCRATCH_DF).check()   # epoch from the daemon's env
    assert digests(engine, here) == digests(second_engine, there)
    _, _, raw_here = saved(engine, here)
    _, _, raw_there = saved(second_engine, there)
    assert raw_here == raw_there
    remove_image(engine, here)
