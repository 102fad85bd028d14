"""The build cache on real builds: full hits, precise invalidation, nocache, and restarts."""

from __future__ import annotations

from tests.engine.build.build_support import BUSYBOX_DF, Entry, build, remove_image, run_logs

DF = BUSYBOX_DF + """\
ARG MODE=a
ENV STAGE=one
COPY first.txt /first.txt
RUN echo "run $MODE" > /run.txt
COPY second/ /second/
RUN ls /second > /listing
CMD ["cat", "/run.txt"]
"""
FILES = {"first.txt": "1\n", "second": Entry(kind="dir"), "second/a": "a\n", "second/b": "b\n"}


def steps(b) -> list[bool]:
    """For each step after FROM: True when it was a cache hit."""
    lines = b.text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Step ")][1:]
    return [lines[i + 1] == " ---> Using cache" for i in starts]


def test_rebuild_is_fully_cached_and_identical(engine, busybox):
    first = build(engine, FILES, dockerfile=DF, nocache=True)
    again = build(engine, FILES, dockerfile=DF)
    assert steps(again) == [True] * 7 and again.check() == first.check()
    assert "Running in" not in again.text
    remove_image(engine, first.image_id)


def test_touching_one_copied_file_invalidates_from_that_step(engine, busybox):
    base = build(engine, FILES, dockerfile=DF).check()
    changed = dict(FILES, **{"second/b": "changed\n"})
    b = build(engine, changed, dockerfile=DF)
    assert steps(b) == [True, True, True, True, False, False, False]
    mtime_only = dict(FILES, **{"second/a": Entry(b"a\n", mtime=1_800_000_000)})
    assert steps(build(engine, mtime_only, dockerfile=DF)) == [True] * 7  # content hash, not mtime
    mode = dict(FILES, **{"first.txt": Entry(b"1\n", mode=0o600)})
    assert steps(build(engine, mode, dockerfile=DF)) == [True, True, False, False, False, False, False]
    for image in (base, b.image_id):
        remove_image(engine, image)


def test_build_args_invalidate_only_steps_that_use_them(engine, busybox):
    a = build(engine, FILES, dockerfile=DF, buildargs={"MODE": "a"})
    b = build(engine, FILES, dockerfile=DF, buildargs={"MODE": "b"})
    # ARG itself is config-only and unchanged text; the first RUN uses MODE, so it and later steps miss
    assert steps(b)[:3] == [True, True, True] and steps(b)[3] is False
    assert run_logs(engine, b.check(), None) == (0, "run b\n")
    unrelated = build(engine, FILES, dockerfile=DF, buildargs={"MODE": "a", "OTHER": "x"})
    assert steps(unrelated) == [True] * 7
    for image in (a.image_id, b.image_id):
        remove_image(engine, image)


def test_nocache_rebuilds_every_step(engine, busybox):
    build(engine, FILES, dockerfile=DF).check()
    b = build(engine, FILES, dockerfile=DF, nocache=True)
    assert steps(b) == [False] * 7 and b.text.count("Running in") == 2
    remove_image(engine, b.image_id)


def test_cache_survives_a_daemon_restart(engine, busybox):
    df = BUSYBOX_DF + "RUN echo restart-cache > /r\n"
    first = build(engine, dockerfile=df).check()
    engine.restart()
    again = build(engine, dockerfile=df)
    assert steps(again) == [True] and again.check() == first
    engine.restart(kill=True)
    assert steps(build(engine, dockerfile=df)) == [True]
    remove_image(engine, first)


def test_removed_images_are_not_cache_hits(engine, busybox):
    df = BUSYBOX_DF + "RUN echo gone > /g\n"
    first = build(engine, dockerfile=df).check()
    remove_image(engine, first)
    again = build(engine, dockerfile=df)
    assert steps(again) == [False]
    remove_image(engine, again.image_id)
