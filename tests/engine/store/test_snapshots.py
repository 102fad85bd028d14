"""The overlay snapshotter with real tars and real overlay mounts (root only)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.engine.store.layers import apply_layer, changes, diff_to_tar
from workbench.engine.store.snapshots import OverlaySnapshotter
from workbench.errors import Conflict, InvalidArgument, NotFound
from workbench.oci.image import chain_ids



@pytest.fixture(autouse=True)
def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root (overlay mounts, chown)")


def make_tar(*entries: tuple[str, bytes | None]) -> bytes:
    """(name, data) → file; (name/, None) → dir; data None without slash → whiteout-style empty file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            ti = tarfile.TarInfo(name.rstrip("/"))
            ti.mtime = 1_600_000_000
            if name.endswith("/"):
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data or b""), 0o644
                tf.addfile(ti, io.BytesIO(data or b""))
    return buf.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Stack:
    """Creates a chain of layers in a snapshotter and remembers the chain IDs."""

    def __init__(self, sn: OverlaySnapshotter, tars: list[bytes]) -> None:
        self.diff_ids = [digest(t) for t in tars]
        self.chain = chain_ids(self.diff_ids)
        for i, t in enumerate(tars):
            sn.create_layer(self.chain[i], self.chain[i - 1] if i else None, io.BytesIO(t),
                            diff_id=self.diff_ids[i])

    @property
    def top(self) -> str:
        return self.chain[-1]


@pytest.fixture
def sn(tmp_path: Path) -> OverlaySnapshotter:
    return OverlaySnapshotter(tmp_path / "root")


@pytest.fixture
def mounts(sn: OverlaySnapshotter) -> Iterator[list[Path]]:
    """Targets mounted by a test; unmounted (and checked gone) afterwards, even on failure."""
    targets: list[Path] = []
    yield targets
    for t in reversed(targets):
        sn.unmount(t)
    mounted = Path("/proc/self/mounts").read_text()
    assert not any(f" {t} " in mounted for t in targets)


def mount(sn: OverlaySnapshotter, mounts: list[Path], base: Path, chain: str | None,
          *, writable: bool = True) -> Path:
    target, upper, work = base / "merged", base / "upper", base / "work"
    target.mkdir(parents=True)
    mounts.append(target)
    sn.mount(target, upper if writable else None, work if writable else None, chain)
    return target


def listing(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath, n)
            out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() and not p.is_symlink() else None
    return out


LAYERS = [
    make_tar(("a.txt", b"a1"), ("b.txt", b"b1"), ("d/", None), ("d/x", b"x"), ("d/y", b"y"),
             ("o/", None), ("o/1", b"1"), ("o/2", b"2"), ("g/", None), ("g/deep", b"deep")),
    make_tar((".wh.a.txt", None), ("d/", None), ("d/.wh.x", None), ("o/", None), ("o/.wh..wh..opq", None),
             ("o/3", b"3"), ("new.txt", b"n"), (".wh.g", None)),
    make_tar(("a.txt", b"again"), ("g/", None), ("d/", None), ("d/z", b"z")),
]
MERGED = {"a.txt": b"again", "b.txt": b"b1", "d": None, "d/y": b"y", "d/z": b"z", "o": None,
          "o/3": b"3", "new.txt": b"n", "g": None}


def test_three_layers_whiteouts_and_opaque_through_a_real_mount(
        sn: OverlaySnapshotter, mounts: list[Path], tmp_path: Path) -> None:
    stack = Stack(sn, LAYERS)
    assert [p.parent.name for p in sn.lowerdirs(stack.top)] == [c[7:] for c in reversed(stack.chain)]
    merged = mount(sn, mounts, tmp_path / "c1", stack.top)
    assert listing(merged) == MERGED
    flat = tmp_path / "flat"
    flat.mkdir()
    for t in LAYERS:
        apply_layer(io.BytesIO(t), flat, mode="flatten")
    assert listing(flat) == MERGED  # flatten and overlay agree
    view = mount(sn, mounts, tmp_path / "view", stack.top, writable=False)
    assert listing(view) == MERGED
    with pytest.raises(OSError):
        (view / "nope").write_text("read-only")


def test_diff_round_trip_through_a_fourth_layer(sn: OverlaySnapshotter, mounts: list[Path],
                                                tmp_path: Path) -> None:
    stack = Stack(sn, LAYERS)
    merged = mount(sn, mounts, tmp_path / "c1", stack.top)
    (merged / "b.txt").unlink()
    for p in (merged / "o").iterdir():
        p.unlink()
    (merged / "o").rmdir()
    (merged / "o").mkdir()  # recreated: overlay marks it opaque
    (merged / "o" / "fresh").write_text("fresh")
    (merged / "d" / "y").write_text("y2")
    (merged / "n" / "m").mkdir(parents=True)
    (merged / "n" / "m" / "f").write_text("deep")
    os.link(merged / "n" / "m" / "f", merged / "n" / "hl")
    expected = listing(merged)
    upper = tmp_path / "c1" / "upper"
    assert os.getxattr(upper / "o", "trusted.overlay.opaque") == b"y"
    kinds = dict(changes(upper, sn.lowerdirs(stack.top)))
    assert kinds["/b.txt"] == 2 and kinds["/n"] == 1 and kinds["/d/y"] == 0 and kinds["/o"] == 0
    out = io.BytesIO()
    diff_to_tar(upper, out, epoch=1_700_000_000)
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(out.getvalue()))]
    assert ".wh.b.txt" in names and "o/.wh..wh..opq" in names
    tars = [*LAYERS, out.getvalue()]
    stack4 = Stack(sn, tars)
    assert stack4.chain[:3] == stack.chain  # the first three are shared, not re-extracted
    again = mount(sn, mounts, tmp_path / "c2", stack4.top)
    assert listing(again) == expected
    assert (again / "n" / "hl").stat().st_ino == (again / "n" / "m" / "f").stat().st_ino


def test_bad_tar_leaves_nothing(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    good = Stack(sn, LAYERS[:1])
    before = sorted(p.name for p in (sn.root / "snapshots").iterdir())
    links = sorted(os.listdir(sn.root / "l"))
    bad = make_tar(("ok", b"fine"), ("../escape", b"x"))
    with pytest.raises(InvalidArgument):
        sn.create_layer(digest(bad), None, io.BytesIO(bad))
    truncated = LAYERS[0][:700]
    with pytest.raises(InvalidArgument):
        sn.create_layer(digest(truncated), None, io.BytesIO(truncated))
    with pytest.raises(InvalidArgument, match="diff_id"):  # content does not match the diff_id given
        sn.create_layer(digest(b"other"), None, io.BytesIO(LAYERS[1]), diff_id=digest(b"other"))
    with pytest.raises(InvalidArgument, match="chain ID"):
        sn.create_layer(digest(b"x"), good.top, io.BytesIO(LAYERS[1]), diff_id=digest(LAYERS[1]))
    assert sorted(p.name for p in (sn.root / "snapshots").iterdir()) == before
    assert sorted(os.listdir(sn.root / "l")) == links
    assert not sn.exists(digest(bad)) and [s.chain_id for s in sn.list()] == [good.top]


def test_compressed_input_parent_rules_and_remove(sn: OverlaySnapshotter) -> None:
    base = digest(LAYERS[0])
    size = sn.create_layer(base, None, io.BytesIO(gzip.compress(LAYERS[0])), diff_id=base)
    assert size == sum(len(v) for v in (b"a1", b"b1", b"x", b"y", b"1", b"2", b"deep"))
    assert sn.usage(base)[1] == 11  # 7 files, 3 dirs and fs/ itself
    child = chain_ids([base, digest(LAYERS[1])])[1]
    with pytest.raises(NotFound):
        sn.create_layer(child, digest(b"missing parent"), io.BytesIO(LAYERS[1]))
    sn.create_layer(child, base, io.BytesIO(LAYERS[1]))
    with pytest.raises(Conflict):
        sn.remove(base)
    sn.remove(child)
    sn.remove(child)  # idempotent
    sn.remove(base)
    assert sn.list() == [] and os.listdir(sn.root / "l") == []
    with pytest.raises(NotFound):
        sn.lowerdirs(base)
    with pytest.raises(InvalidArgument):
        sn.exists("not-a-digest")


class Exploding(io.RawIOBase):
    def read(self, n: int = -1) -> bytes:
        raise AssertionError("an existing snapshot must not read its tar again")


def test_create_is_idempotent_and_concurrent_creates_extract_once(sn: OverlaySnapshotter) -> None:
    tar = make_tar(*[(f"f{i}", os.urandom(20_000)) for i in range(200)])
    chain = digest(tar)
    reads: list[int] = []

    class Slow(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            reads.append(threading.get_ident())
            return super().read(min(n if n and n > 0 else 4096, 4096))

    results: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(sn.create_layer(chain, None, Slow(tar), diff_id=chain))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1 and len(results) == 6
    assert len(set(reads)) == 1  # one thread extracted, the others waited and found it done
    assert sn.create_layer(chain, None, Exploding()) == results[0]  # type: ignore[arg-type]
    assert len(sn.list()) == 1 and not list((sn.root / "snapshots").glob(".tmp-*"))


def test_async_create(sn: OverlaySnapshotter) -> None:
    chain = digest(LAYERS[0])

    async def main() -> list[int]:
        return list(await asyncio.gather(*[sn.create_layer_async(chain, None, io.BytesIO(LAYERS[0]))
                                           for _ in range(3)]))

    sizes = asyncio.run(main())
    assert len(set(sizes)) == 1 and sn.exists(chain)


def test_scratch_mount_has_an_empty_lowerdir(sn: OverlaySnapshotter, mounts: list[Path],
                                             tmp_path: Path) -> None:
    merged = mount(sn, mounts, tmp_path / "scratch", None)
    assert os.listdir(merged) == []
    (merged / "hello").write_text("hi")
    assert (tmp_path / "scratch" / "upper" / "hello").read_text() == "hi"
    assert os.listdir(sn.root / "empty") == []


def test_130_layer_mount(sn: OverlaySnapshotter, mounts: list[Path], tmp_path: Path) -> None:
    n = 130
    tars = [make_tar((f"layer-{i:03d}", str(i).encode()), ("shared", str(i).encode()),
                     *([(f".wh.layer-{i - 1:03d}", None)] if i % 10 == 0 and i else []))
            for i in range(n)]
    stack = Stack(sn, tars)
    lowers = sn.lowerdirs(stack.top)
    assert len(lowers) == n
    assert len(",".join(str(p) for p in lowers)) > 4096  # absolute paths would not fit in one page
    merged = mount(sn, mounts, tmp_path / "big", stack.top)
    names = set(os.listdir(merged))
    assert (merged / "shared").read_text() == str(n - 1)
    assert len(names) == n + 1 - len([i for i in range(10, n, 10)])
    assert "layer-009" not in names and "layer-010" in names and "layer-129" in names
    assert os.getcwd() != str(sn.root / "l")  # the relative mount did not move the process cwd
    (merged / "layer-000").write_text("changed")
    assert stat.S_ISREG((tmp_path / "big" / "upper" / "layer-000").lstat().st_mode)


def test_commit_dir_moves_an_upper_dir_into_place(sn: OverlaySnapshotter, mounts: list[Path],
                                                  tmp_path: Path) -> None:
    stack = Stack(sn, LAYERS)
    merged = mount(sn, mounts, tmp_path / "c1", stack.top)
    (merged / "b.txt").unlink()  # a whiteout
    for p in (merged / "o").iterdir():
        p.unlink()
    (merged / "o").rmdir()
    (merged / "o").mkdir()  # an opaque dir
    (merged / "o" / "fresh").write_text("fresh")
    (merged / "d" / "y").write_text("y2")
    (merged / "n").mkdir()
    (merged / "n" / "f").write_text("12345")
    os.link(merged / "n" / "f", merged / "n" / "hl")
    expected = listing(merged)
    sn.unmount(merged)
    mounts.remove(merged)
    upper = tmp_path / "c1" / "upper"
    assert stat.S_ISCHR((upper / "b.txt").lstat().st_mode)
    assert os.getxattr(upper / "o", "trusted.overlay.opaque") == b"y"
    out = io.BytesIO()
    diff_to_tar(upper, out)
    diff_id = digest(out.getvalue())
    chain = chain_ids([*stack.diff_ids, diff_id])[-1]

    assert sn.commit_dir(chain, stack.top, upper) == len("y2") + len("fresh") + len("12345")
    assert not upper.exists() and sn.exists(chain)
    assert not list(sn._snaps.glob(".tmp-*"))
    assert sn.lowerdirs(chain)[1:] == sn.lowerdirs(stack.top)
    view = mount(sn, mounts, tmp_path / "view", chain, writable=False)
    assert listing(view) == expected and "b.txt" not in expected and expected["o/fresh"] == b"fresh"
    assert sorted(os.listdir(view / "o")) == ["fresh"]  # the opaque dir hides o/3 below it
    assert (view / "n" / "hl").stat().st_ino == (view / "n" / "f").stat().st_ino

    # the same layer extracted from its tar is the same snapshot, file for file
    other = OverlaySnapshotter(tmp_path / "other")
    Stack(other, [*LAYERS, out.getvalue()])
    assert listing(other.lowerdirs(chain)[0]) == listing(sn.lowerdirs(chain)[0])
    assert [i.size for i in other.list() if i.chain_id == chain] == [i.size for i in sn.list() if i.chain_id == chain]

    # idempotent: an existing snapshot is kept and the new upper left alone
    again = tmp_path / "again"
    again.mkdir()
    (again / "x").write_text("x")
    assert sn.commit_dir(chain, stack.top, again) == 12
    assert (again / "x").read_text() == "x"
    # an unknown parent
    with pytest.raises(NotFound):
        sn.commit_dir(digest(b"child"), digest(b"nope"), again)
    assert (again / "x").exists()


def test_commit_dir_from_another_filesystem_is_declined(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.fail("needs /dev/shm on a filesystem of its own")
    upper = shm / f"wb-test-upper-{os.getpid()}"
    upper.mkdir()
    try:
        (upper / "f").write_text("f")
        assert sn.commit_dir(digest(b"layer"), None, upper) is None
        assert (upper / "f").read_text() == "f"
        assert not sn.exists(digest(b"layer")) and not list(sn._snaps.glob(".tmp-*"))
    finally:
        shutil.rmtree(upper)


def test_layers_unpack_staged_out_of_order_and_commit_in_chain_order(sn: OverlaySnapshotter) -> None:
    """What a pull does: every layer unpacks at once, staged as its snapshot before its parent
    exists (records and short link already written); the commits in chain order are renames.
    A staged layer that lost the race to an existing snapshot, or was never committed, leaves
    neither a directory nor a link behind; one left by a crash is gone after `recover()`."""
    diff_ids = [digest(t) for t in LAYERS]
    chain = chain_ids(diff_ids)
    staged = [sn.unpack(io.BytesIO(t), chain_id=chain[i], parent=chain[i - 1] if i else None)
              for i, t in reversed(list(enumerate(LAYERS)))][::-1]
    links = {p.name for p in sn._links.iterdir()}
    assert len(links) == len(LAYERS) and not any((sn._links / name).exists() for name in links)  # dangling
    with pytest.raises(NotFound):
        sn.commit_unpacked(staged[1])                      # its parent is not there yet
    for layer in staged:
        assert sn.commit_unpacked(layer) == layer.size
        layer.discard()                                    # after a commit: nothing to remove
    assert all(sn.exists(c) for c in chain) and all((sn._links / name).exists() for name in links)
    assert [p.name for p in sn.lowerdirs(chain[-1])] == ["fs"] * len(LAYERS)
    assert not list(sn._snaps.glob(".tmp-*"))

    again = sn.unpack(io.BytesIO(LAYERS[0]), chain_id=chain[0], parent=None)
    assert sn.commit_unpacked(again) == again.size         # the existing snapshot is kept
    again.discard()
    assert {p.name for p in sn._links.iterdir()} == links and not list(sn._snaps.glob(".tmp-*"))

    left = sn.unpack(io.BytesIO(make_tar(("z", b"z"))), chain_id=digest(b"crash"), parent=chain[-1])
    twice = [sn.unpack(io.BytesIO(t), chain_id=digest(b"twice"), parent=None) for t in (LAYERS[0], LAYERS[0])]
    sn.commit_unpacked(twice[0])           # two pulls staged one chain; the loser crashes before discard
    assert left.link is not None and left.link.is_symlink() and twice[1].link is not None
    assert twice[1].link.exists()          # not dangling: it names the winner's snapshot
    sn.recover()                                           # as at the next daemon start
    assert not left.fs.exists() and not left.link.is_symlink() and not twice[1].link.is_symlink()
    assert {p.name for p in sn._links.iterdir()} == links | {twice[0].link.name}
    assert sn.exists(chain[-1]) and (sn.lowerdirs(digest(b"twice"))[0] / "a.txt").exists()
