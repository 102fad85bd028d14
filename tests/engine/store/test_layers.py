"""Layer tars on real files: safe apply (every escape), metadata, whiteouts, diff → tar, compression."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from workbench.engine.store.compression import (
    LayerWriter,
    detect_compression,
    open_decompressed,
    write_layer,
)
from workbench.engine.services.image_io import TeeReader
from workbench.engine.store.layers import ChangeKind, apply_layer, changes, diff_to_tar, dir_to_tar
from workbench.errors import InvalidArgument



@pytest.fixture(autouse=True)
def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root (chown, mknod, trusted xattrs)")


def entry(name: str, data: bytes | None = None, *, type_: bytes = tarfile.REGTYPE, link: str = "",
          mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: int = 1_600_000_000,
          xattrs: dict[str, bytes] | None = None, dev: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.uid, ti.gid, ti.mtime = type_, link, mode, uid, gid, mtime
    ti.devmajor, ti.devminor = dev
    for k, v in (xattrs or {}).items():
        ti.pax_headers["SCHILY.xattr." + k] = v.decode("utf-8", "surrogateescape")
    if type_ == tarfile.DIRTYPE:
        ti.mode = mode if mode != 0o644 else 0o755
    data = data or b""
    ti.size = len(data) if type_ == tarfile.REGTYPE else 0
    return ti, data


def d(name: str, **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, type_=tarfile.DIRTYPE, **kw)  # type: ignore[arg-type]


def sym(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, type_=tarfile.SYMTYPE, link=target, mode=0o777)


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, type_=tarfile.LNKTYPE, link=target)


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def tree(root: Path) -> dict[str, tuple]:
    """A comparable picture of a tree: type, mode, owner, size, content, link, rdev per path."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            rel = str(p.relative_to(root))
            content = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
            link = os.readlink(p) if p.is_symlink() else None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        content, link, st.st_rdev if stat.S_ISCHR(st.st_mode) else None)
    return out


@pytest.fixture
def place(tmp_path: Path) -> tuple[Path, Path]:
    """dest, and a sentinel dir beside it holding one file nothing may touch."""
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("untouched")
    return dest, outside


def assert_untouched(tmp_path: Path, outside: Path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "outside"]
    assert [p.name for p in outside.iterdir()] == ["secret"]
    assert (outside / "secret").read_text() == "untouched"
    assert not Path("/etc/workbench-test-escape").exists()


ESCAPES = {
    "dotdot": [entry("../outside/evil", b"x")],
    "dotdot-inside": [d("a"), entry("a/../../outside/evil", b"x")],
    "absolute-dotdot": [entry("/../outside/evil", b"x")],
    "symlink-then-file-abs": [sym("link", "/etc"), entry("link/workbench-test-escape", b"x")],
    "symlink-then-file-outside": [sym("link", "OUTSIDE"), entry("link/evil", b"x")],
    "symlink-dir-escape": [d("a"), sym("a/up", "../../outside"), entry("a/up/evil", b"x")],
    "symlink-chain": [sym("s1", "s2"), sym("s2", "../outside"), entry("s1/evil", b"x")],
    "symlink-then-dir": [sym("link", "../outside"), d("link/sub")],
    "hardlink-dotdot": [hard("h", "../outside/secret")],
    "hardlink-absolute": [hard("h", "/etc/passwd")],
    "hardlink-through-symlink": [sym("l", "OUTSIDE"), hard("h", "l/secret")],
    "hardlink-not-yet": [hard("h", "later"), entry("later", b"x")],
    "whiteout-through-symlink": [sym("l", "OUTSIDE"), entry("l/.wh.secret")],
    "opaque-through-symlink": [sym("l", "OUTSIDE"), entry("l/.wh..wh..opq")],
}


@pytest.mark.parametrize("mode", ["overlay", "flatten"])
@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_escape_is_rejected_and_writes_nothing_outside(tmp_path: Path, place: tuple[Path, Path],
                                                        case: str, mode: str) -> None:
    dest, outside = place
    fixed = []
    for ti, data in ESCAPES[case]:
        ti = ti.replace(linkname=ti.linkname.replace("OUTSIDE", str(outside)))
        fixed.append((ti, data))
    with pytest.raises(InvalidArgument):
        apply_layer(io.BytesIO(make_tar(*fixed)), dest, mode=mode)  # type: ignore[arg-type]
    assert_untouched(tmp_path, outside)


def test_devices_refused_unless_allowed(tmp_path: Path, place: tuple[Path, Path]) -> None:
    dest, outside = place
    data = make_tar(entry("null", type_=tarfile.CHRTYPE, dev=(1, 3), mode=0o666))
    with pytest.raises(InvalidArgument, match="device"):
        apply_layer(io.BytesIO(data), dest, allow_devices=False)
    blk = make_tar(entry("sda", type_=tarfile.BLKTYPE, dev=(8, 0)))
    with pytest.raises(InvalidArgument, match="device"):
        apply_layer(io.BytesIO(blk), dest, allow_devices=False)
    assert_untouched(tmp_path, outside)
    (dest / "null").write_text("kept")  # a refused entry is refused before its path is touched
    with pytest.raises(InvalidArgument, match="device"):
        apply_layer(io.BytesIO(data), dest, mode="flatten", allow_devices=False)
    assert (dest / "null").read_text() == "kept"
    apply_layer(io.BytesIO(data), dest, allow_devices=True)
    assert os.major((dest / "null").lstat().st_rdev) == 1


def test_absolute_names_are_stripped_into_dest(tmp_path: Path, place: tuple[Path, Path]) -> None:
    dest, outside = place
    apply_layer(io.BytesIO(make_tar(entry("/abs.txt", b"a"), entry("//etc/workbench-x", b"b"))), dest)
    assert (dest / "abs.txt").read_bytes() == b"a"
    assert (dest / "etc" / "workbench-x").read_bytes() == b"b"
    assert_untouched(tmp_path, outside)


def test_flatten_follows_existing_symlinks_only_inside_dest(tmp_path: Path,
                                                            place: tuple[Path, Path]) -> None:
    dest, outside = place
    (dest / "usr" / "lib").mkdir(parents=True)
    (dest / "lib").symlink_to("/usr/lib")  # absolute: means dest/usr/lib in the image
    (dest / "up").symlink_to("../../../../outside")  # climbs above /: stops at dest
    (dest / "f").symlink_to(outside / "secret")  # final component: replaced, not written through
    tar = make_tar(entry("lib/x", b"x"), entry("up/y", b"y"), entry("f", b"new"))
    apply_layer(io.BytesIO(tar), dest, mode="flatten")
    assert (dest / "usr" / "lib" / "x").read_bytes() == b"x"
    assert (dest / "outside" / "y").read_bytes() == b"y"
    assert not (dest / "f").is_symlink() and (dest / "f").read_bytes() == b"new"
    assert_untouched(tmp_path, outside)


def test_bad_archives(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    good = make_tar(entry("a", b"x" * 5000), entry("b", b"y"))
    for bad in (b"not a tar at all" * 64, good[:1100], good[:600]):
        with pytest.raises(InvalidArgument):
            apply_layer(io.BytesIO(bad), dest)
    assert apply_layer(io.BytesIO(b""), dest).files == 0  # an empty stream is an empty layer
    with pytest.raises(InvalidArgument, match="mode"):
        apply_layer(io.BytesIO(good), dest, mode="merge")  # type: ignore[arg-type]


class _Dribble:
    """A reader that returns at most `step` bytes per read, as a network pipe may."""

    def __init__(self, data: bytes, step: int) -> None:
        self._f, self._step = io.BytesIO(data), step

    def read(self, n: int = -1) -> bytes:
        return self._f.read(min(self._step, n) if n and n > 0 else self._step)


@pytest.mark.parametrize("step", [1 << 20, 4099, 300])
def test_big_files_between_small_ones_through_short_reads(tmp_path: Path, step: int) -> None:
    # big files take the direct path past tarfile's buffering; sizes off the 512-byte grid check
    # that the padding, the read-ahead tarfile already holds and the next header all line up
    big1, big2 = os.urandom(70_001), os.urandom((3 << 20) + 3)
    tar = make_tar(entry("small", b"s" * 100), entry("big1", big1), d("dir"), entry("dir/big2", big2),
                   hard("dir/link", "big1"), entry("tail", b"t" * 513))
    dest = tmp_path / f"d{step}"
    dest.mkdir()
    stats = apply_layer(_Dribble(tar, step), dest)
    assert (dest / "big1").read_bytes() == big1 and (dest / "dir/big2").read_bytes() == big2
    assert (dest / "dir/link").stat().st_ino == (dest / "big1").stat().st_ino
    assert (dest / "small").read_bytes() == b"s" * 100 and (dest / "tail").read_bytes() == b"t" * 513
    assert stats.bytes == 100 + len(big1) + len(big2) + 513
    cut = tmp_path / f"cut{step}"
    cut.mkdir()
    with pytest.raises(InvalidArgument, match="big2|end of data|truncated|unexpected"):
        apply_layer(_Dribble(tar[: len(tar) // 2], step), cut)


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_sparse_members_from_gnu_tar(tmp_path: Path, fmt: str) -> None:
    # a sparse member's size is the file's, but the archive holds only its data blocks: it must
    # not take the direct copy path (which reads size bytes) and still extract byte for byte
    src = tmp_path / "src"
    src.mkdir()
    data = bytearray(3_300_000)
    data[102_400:602_400] = os.urandom(500_000)
    data[-10:] = b"0123456789"
    with open(src / "holes.bin", "wb") as f:       # real holes, found with SEEK_HOLE by tar
        f.truncate(len(data))
        f.seek(102_400)
        f.write(data[102_400:602_400])
        f.seek(len(data) - 10)
        f.write(data[-10:])
    (src / "after.txt").write_text("after the sparse file\n")
    archive = tmp_path / f"{fmt}.tar"
    subprocess.run(["tar", "--sparse", f"--format={fmt}", "-cf", str(archive), "-C", str(src),
                    "holes.bin", "after.txt"], check=True)
    assert archive.stat().st_size < 1_500_000                     # really stored sparse
    dest = tmp_path / f"out-{fmt}"
    dest.mkdir()
    with open(archive, "rb") as f:
        apply_layer(f, dest)
    assert (dest / "holes.bin").read_bytes() == bytes(data)
    assert (dest / "after.txt").read_text() == "after the sparse file\n"


def test_metadata_is_preserved(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    cap = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    big = os.urandom(3 << 20) + b"tail"
    tar = make_tar(
        d("etc", mode=0o750, uid=7, gid=8, mtime=1_500_000_000),
        entry("etc/suid", b"#!", mode=0o4755, uid=1000, gid=1000, mtime=1_400_000_000,
              xattrs={"user.note": b"hello", "security.capability": cap,
                      "trusted.overlay.redirect": b"/nope"}),
        entry("etc/big", big, mode=0o600),
        hard("etc/suid-link", "etc/suid"),
        sym("etc/sl", "/etc/suid"),
        entry("fifo", type_=tarfile.FIFOTYPE, mode=0o640),
        entry("tty", type_=tarfile.CHRTYPE, dev=(5, 0), mode=0o666, gid=5),
        entry("loop", type_=tarfile.BLKTYPE, dev=(7, 1), mode=0o660),
    )
    stats = apply_layer(io.BytesIO(tar), dest)
    assert stats.files == 8 and stats.bytes == len(big) + 2
    etc = (dest / "etc").lstat()
    assert (stat.S_IMODE(etc.st_mode), etc.st_uid, etc.st_gid, etc.st_mtime) == (0o750, 7, 8, 1_500_000_000)
    s = (dest / "etc" / "suid").lstat()
    assert (stat.S_IMODE(s.st_mode), s.st_uid, s.st_mtime, s.st_nlink) == (0o4755, 1000, 1_400_000_000, 2)
    assert os.getxattr(dest / "etc" / "suid", "user.note") == b"hello"
    assert os.getxattr(dest / "etc" / "suid", "security.capability") == cap
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "etc" / "suid")
    assert (dest / "etc" / "suid-link").lstat().st_ino == s.st_ino
    assert (dest / "etc" / "big").read_bytes() == big
    assert os.readlink(dest / "etc" / "sl") == "/etc/suid"
    assert stat.S_ISFIFO((dest / "fifo").lstat().st_mode)
    tty = (dest / "tty").lstat()
    assert stat.S_ISCHR(tty.st_mode) and (os.major(tty.st_rdev), os.minor(tty.st_rdev)) == (5, 0)
    assert stat.S_ISBLK((dest / "loop").lstat().st_mode)


def test_pax_long_names_and_binary_names(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    long = "/".join([f"segment-{i:02d}" for i in range(20)]) + "/file"
    weird = os.fsdecode(b"caf\xe9-latin1")
    apply_layer(io.BytesIO(make_tar(entry(long, b"l"), entry(weird, b"w"))), dest)
    assert (dest / long).read_bytes() == b"l"
    assert (dest / weird).read_bytes() == b"w"
    out = io.BytesIO()
    dir_to_tar(dest, out)
    again = tmp_path / "again"
    again.mkdir()
    apply_layer(io.BytesIO(out.getvalue()), again)
    assert tree(again) == tree(dest)


LAYERS = [
    make_tar(entry("a.txt", b"a1"), entry("b.txt", b"b1"), d("d"), entry("d/x", b"x"), entry("d/y", b"y"),
             d("o"), entry("o/1", b"1"), entry("o/2", b"2"), d("g"), entry("g/deep", b"deep")),
    make_tar(entry(".wh.a.txt"), d("d"), entry("d/.wh.x"), d("o"), entry("o/.wh..wh..opq"),
             entry("o/3", b"3"), entry("new.txt", b"n"), entry(".wh.g"), entry(".wh..wh.plnk")),
    make_tar(entry("a.txt", b"again"), d("g"), d("d"), entry("d/z", b"z")),
]
EXPECTED = {"a.txt": b"again", "b.txt": b"b1", "d/y": b"y", "d/z": b"z", "o/3": b"3", "new.txt": b"n"}


def files_of(root: Path) -> dict[str, bytes | None]:
    return {k: v[4] for k, v in tree(root).items()}


def test_whiteouts_overlay_form(tmp_path: Path) -> None:
    layer = tmp_path / "l2"
    layer.mkdir()
    apply_layer(io.BytesIO(LAYERS[1]), layer, mode="overlay")
    wh = (layer / "a.txt").lstat()
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert stat.S_ISCHR((layer / "d" / "x").lstat().st_mode)
    assert stat.S_ISCHR((layer / "g").lstat().st_mode)
    assert os.getxattr(layer / "o", "trusted.overlay.opaque") == b"y"
    assert not (layer / ".wh..wh.plnk").exists() and not (layer / "plnk").exists()


def test_whiteouts_flatten_form(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for layer in LAYERS:
        apply_layer(io.BytesIO(layer), flat, mode="flatten")
    got = {k: v for k, v in files_of(flat).items() if v is not None}
    assert got == EXPECTED
    assert sorted(os.listdir(flat / "g")) == [] and sorted(os.listdir(flat / "o")) == ["3"]


def test_opaque_in_flatten_keeps_what_the_same_layer_wrote_before_it(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    (flat / "o").mkdir(parents=True)
    (flat / "o" / "old").write_text("old")
    apply_layer(io.BytesIO(make_tar(d("o"), entry("o/new", b"n"), d("o/sub"), entry("o/sub/k", b"k"),
                                    entry("o/.wh..wh..opq"))), flat, mode="flatten")
    assert sorted(os.listdir(flat / "o")) == ["new", "sub"] and (flat / "o/sub/k").exists()


def test_diff_to_tar_of_overlay_whiteouts(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "o").mkdir(parents=True)
    (upper / "o" / "f").write_text("f")
    os.setxattr(upper / "o", "trusted.overlay.opaque", b"y")
    os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))
    os.link(upper / "o" / "f", upper / "hl")
    out = io.BytesIO()
    diff_to_tar(upper, out, epoch=0)
    members = [(m.name, m.type, m.linkname) for m in tarfile.open(fileobj=io.BytesIO(out.getvalue()))]
    assert members == [(".wh.gone", tarfile.REGTYPE, ""), ("hl", tarfile.REGTYPE, ""),
                       ("o", tarfile.DIRTYPE, ""), ("o/.wh..wh..opq", tarfile.REGTYPE, ""),
                       ("o/f", tarfile.LNKTYPE, "hl")]
    for m in tarfile.open(fileobj=io.BytesIO(out.getvalue())):
        assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for k in m.pax_headers)
        assert m.uname == m.gname == "" and m.mtime == 0


def _build(root: Path, order: list[str], mtime: int) -> None:
    for name in order:
        p = root / name
        if name.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(name * 3)
            os.setxattr(p, "user.b", b"2")
            os.setxattr(p, "user.a", b"1")
    (root / "ln").symlink_to("x/y")
    for p in [root, *root.rglob("*")]:
        os.utime(p, (mtime + 7, mtime), follow_symlinks=False)


def test_epoch_gives_byte_identical_tars(tmp_path: Path) -> None:
    names = ["x/", "x/y", "x/z", "b", "a/deep/er/file", "é"]
    one, two = tmp_path / "one", tmp_path / "two"
    _build(one, names, 1_700_000_000)
    _build(two, list(reversed(names)), 1_800_000_000)
    digests = set()
    for root in (one, two):
        out = io.BytesIO()
        w = LayerWriter(out, "gzip")
        diff_to_tar(root, w, epoch=1_600_000_000)  # type: ignore[arg-type]
        digests.add(w.close().digest)
    assert len(digests) == 1
    raw = [io.BytesIO(), io.BytesIO()]
    diff_to_tar(one, raw[0])
    diff_to_tar(two, raw[1])
    assert raw[0].getvalue() != raw[1].getvalue()  # without epoch the mtimes show
    os.chown(two / "b", 1234, 1234)
    again = [io.BytesIO(), io.BytesIO()]
    diff_to_tar(one, again[0], epoch=1_600_000_000)
    diff_to_tar(two, again[1], epoch=1_600_000_000)
    assert again[0].getvalue() != again[1].getvalue()  # ownership is content, never normalised


def test_dir_to_tar_round_trip_with_prefix(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _build(src, ["x/", "x/y", "big"], 1_700_000_000)
    (src / "big").write_bytes(os.urandom(2 << 20))
    os.mkfifo(src / "fifo")
    out = io.BytesIO()
    n = dir_to_tar(src, out, prefix="pre")
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(out.getvalue()))]
    assert names[0] == "pre" and all(x.startswith("pre/") for x in names[1:]) and n == len(names)
    dst = tmp_path / "dst"
    dst.mkdir()
    apply_layer(io.BytesIO(out.getvalue()), dst, mode="flatten")
    assert tree(dst / "pre") == tree(src)
    assert os.getxattr(dst / "pre" / "x" / "y", "user.a") == b"1"


def test_changes_kinds(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for p in ("etc/", "etc/hosts", "var/", "var/log/", "var/log/old", "keep/", "keep/same"):
        (lower / p).mkdir(parents=True) if p.endswith("/") else (lower / p).write_text("x")
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "hosts").write_text("changed")
    (upper / "etc" / "new").write_text("new")
    (upper / "var" / "log").mkdir(parents=True)
    os.mknod(upper / "var" / "log" / "old", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "tmpfile").write_text("t")
    for p in ("var", "var/log"):  # copied up untouched: same mode, size, mtime as below
        st = (lower / p).stat()
        os.utime(upper / p, ns=(st.st_atime_ns, st.st_mtime_ns))
    got = changes(upper, [lower])
    assert sorted(got) == sorted([
        ("/etc", ChangeKind.MODIFIED), ("/etc/hosts", ChangeKind.MODIFIED), ("/etc/new", ChangeKind.ADDED),
        ("/var/log", ChangeKind.MODIFIED), ("/var/log/old", ChangeKind.DELETED),
        ("/tmpfile", ChangeKind.ADDED)])
    assert ChangeKind.MODIFIED == 0 and ChangeKind.ADDED == 1 and ChangeKind.DELETED == 2


@pytest.mark.parametrize("compression", ["gzip", "zstd", ""])
def test_compression_round_trip_and_one_pass_digests(compression: str) -> None:
    payload = make_tar(entry("a", os.urandom(1 << 20)), entry("b", b"z" * (3 << 20)))
    out = io.BytesIO()
    info = write_layer(io.BytesIO(payload), out, compression)
    blob = out.getvalue()
    assert info.digest == "sha256:" + hashlib.sha256(blob).hexdigest() and info.size == len(blob)
    assert info.diff_id == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert info.uncompressed_size == len(payload)
    assert open_decompressed(io.BytesIO(blob)).read() == payload
    again = io.BytesIO()
    write_layer(iter([payload[:1000], payload[1000:]]), again, compression)
    assert again.getvalue() == blob  # reproducible, whatever the chunking
    if compression == "gzip":
        assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # mtime 0, no name
        assert gzip.decompress(blob) == payload


class _Trickle(io.RawIOBase):
    """A source that hands out at most `step` bytes per `readinto`, as a socket may."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def, override]
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def test_short_reads_reach_the_decompressor_unbuffered() -> None:
    """`open_decompressed` reads a compressed source through `readinto` (the decompressor's own
    buffer is filled straight from it) and still copes with reads as short as a socket's,
    across gzip headers with a file name and several members."""
    payload = make_tar(entry("f", os.urandom(300_000)), entry("g", b"text " * 50_000))
    named = io.BytesIO()
    with gzip.GzipFile("layer.tar", "wb", fileobj=named, mtime=1) as gz:
        gz.write(payload[:100_000])
    blob = named.getvalue() + gzip.compress(payload[100_000:])
    for step in (1, 7, 4096):
        assert open_decompressed(_Trickle(blob, step)).read() == payload

    class ReadOnly(io.RawIOBase):          # a raw stream with `read` alone: io.RawIOBase's readinto only raises
        def __init__(self, data: bytes) -> None:
            self._src = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._src.read(min(n, 1000) if n > 0 else 1000)

    assert open_decompressed(ReadOnly(blob)).read() == payload
    tee, seen = TeeReader(ReadOnly(payload), []), bytearray()
    buf = bytearray(4096)
    while n := tee.readinto(buf):
        seen += buf[:n]
    assert bytes(seen) == payload


def test_tee_reader_gives_every_byte_to_its_sinks_once_in_order() -> None:
    """`TeeReader` (the pull's hashing and blob-writing tap): bytes peeked are handed to the sinks
    when they are read, not before; `readinto` hands them a view of the caller's buffer; and with
    `peek` a plain tar passes through `open_decompressed` as the tee itself, unwrapped."""
    data = make_tar(entry("a", os.urandom(200_000)))
    seen = bytearray()
    tee = TeeReader(_Trickle(data, 5000), [seen.extend])
    assert tee.peek(10)[:10] == data[:10] and not seen
    assert open_decompressed(tee) is tee
    first = tee.read(3)
    buf = bytearray(64 << 10)
    n = tee.readinto(buf)                    # the rest of the peeked bytes first
    got = bytearray(first + buf[:n])
    while n := tee.readinto(buf):
        got += buf[:n]
    assert bytes(got) == data == bytes(seen) and tee.count == len(data)
    assert tee.read() == b"" and tee.readinto(buf) == 0


def test_open_decompressed_sniffs_every_codec(tmp_path: Path) -> None:
    payload = make_tar(entry("f", b"hello" * 1000))
    for blob in (gzip.compress(payload) + gzip.compress(b""), bz2.compress(payload),
                 lzma.compress(payload), payload):
        dest = tmp_path / f"d{len(os.listdir(tmp_path))}"
        dest.mkdir()
        assert open_decompressed(io.BytesIO(blob)).read() == payload
        apply_layer(open_decompressed(io.BytesIO(blob)), dest)
        assert (dest / "f").read_bytes() == b"hello" * 1000
    assert [detect_compression(b) for b in (b"\x1f\x8b", b"\x28\xb5\x2f\xfd", bz2.compress(b""),
                                            b"BZh9-a-file-name", b"ustar")] == ["gzip", "zstd", "bzip2", "", ""]
    bzh = make_tar(entry("BZh91AY&SY-looks-compressed", b"plain"))  # a plain tar that starts "BZh"
    assert detect_compression(bzh) == "bzip2"  # the magic alone cannot tell; sniffing is best effort
    named = make_tar(entry("BZh9.txt", b"plain"))
    assert open_decompressed(io.BytesIO(named)).read() == named
    with pytest.raises(InvalidArgument):
        write_layer(io.BytesIO(b""), io.BytesIO(), "lz4")
    corrupt = bytearray(gzip.compress(payload))
    corrupt[20:40] = bytes(20)
    dest = tmp_path / "corrupt"
    dest.mkdir()
    with pytest.raises(InvalidArgument):
        apply_layer(open_decompressed(io.BytesIO(bytes(corrupt))), dest)
