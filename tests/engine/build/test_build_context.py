"""The daemon side of build contexts, without a daemon: extraction that hashes as it streams, the
docker CLI's unpadded tail, .dockerignore pruning, source lookup with globs and symlinks."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from workbench.engine.build.context import SourceTree, apply_dockerignore, extract_context, read_dockerfile
from workbench.errors import BuildError, InvalidArgument


class Chunked:
    def __init__(self, data: bytes, size: int) -> None:
        self.buf, self.size = io.BytesIO(data), size

    def read(self, n: int = -1) -> bytes:
        return self.buf.read(min(n, self.size) if n and n > 0 else self.size)


def tar(entries: list[tuple[str, bytes | None, bytes, str]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data, kind, link in entries:
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = kind, link
            ti.size = len(data or b"")
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


REG, LNK, SYM, DIR = tarfile.REGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.DIRTYPE


@pytest.mark.parametrize("chunk", [1, 7, 512, 4096, 1 << 20])
@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_digests_while_extracting(tmp_path, chunk, fmt):
    body = tar([("d/" + "n" * 150, b"long name", REG, ""), ("a", b"first", REG, ""), ("a", b"second", REG, ""),
                ("empty", b"", REG, ""), ("h", b"soon replaced", REG, ""), ("h", None, LNK, "a"),
                ("./x/./y", b"y" * 70000, REG, ""), ("s", None, SYM, "a")], fmt)
    digests = extract_context(Chunked(body, chunk), tmp_path)
    assert set(digests) == {"d/" + "n" * 150, "a", "empty", "x/y"}
    for name, (digest, size) in digests.items():
        data = (tmp_path / name).read_bytes()
        assert digest == "sha256:" + hashlib.sha256(data).hexdigest() and size == len(data)
    tree = SourceTree(tmp_path, known=digests)
    assert tree.digest(tmp_path / "x" / "y") == digests["x/y"][0]
    assert tree.digest(tmp_path / "h") == "sha256:" + hashlib.sha256(b"second").hexdigest()


def test_unpadded_tail_is_completed_but_truncation_is_not(tmp_path):
    body = tar([("Dockerfile", b"FROM scratch\n", REG, ""), ("last", b"tail", REG, "")])
    end = body.rfind(b"tail") + 4
    (tmp_path / "ok").mkdir()
    digests = extract_context(Chunked(body[:end], 100), tmp_path / "ok")
    assert (tmp_path / "ok" / "last").read_bytes() == b"tail" and "last" in digests
    (tmp_path / "bad").mkdir()
    with pytest.raises(InvalidArgument):
        extract_context(Chunked(body[:end - 2], 100), tmp_path / "bad")
    assert extract_context(io.BytesIO(b""), tmp_path / "bad") == {}


def test_dockerignore_pruning_and_dockerfile_lookup(tmp_path):
    for name in ("a.txt", "b.md", "keep/x.md", "skip/y", "skip/keep.me", "Dockerfile", "dockerfile"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / ".dockerignore").write_text("*.md\nskip\n!skip/keep.me\nDockerfile\n")
    assert read_dockerfile(tmp_path, None) == ("Dockerfile", b"Dockerfile")
    apply_dockerignore(tmp_path)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == [".dockerignore", "a.txt", "dockerfile", "keep", "keep/x.md", "skip", "skip/keep.me"]
    assert read_dockerfile(tmp_path, None) == ("dockerfile", b"dockerfile")  # lower-case fallback
    with pytest.raises(BuildError, match="Cannot locate specified Dockerfile: nope"):
        read_dockerfile(tmp_path, "nope")


def test_find_globs_symlinks_and_escapes(tmp_path):
    for name in ("src/a.py", "src/b.py", "src/c.txt", "src/sub/d.py", "[lit]"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    os.symlink("/src", tmp_path / "abs")
    os.symlink("../../../src/a.py", tmp_path / "up")
    tree = SourceTree(tmp_path)
    assert [s.rel for s in tree.find("src/*.py")] == ["src/a.py", "src/b.py"]
    assert [s.rel for s in tree.find("*/[ab].py")] == ["src/a.py", "src/b.py"]
    assert [s.rel for s in tree.find("s?c/*/*.py")] == ["src/sub/d.py"]
    assert [s.rel for s in tree.find("\\[lit]")] == ["[lit]"]
    assert tree.find("abs")[0].path == tmp_path / "src" and tree.find("abs")[0].is_dir
    assert tree.find("up")[0].path == tmp_path / "src" / "a.py" and tree.find("up")[0].name == "up"
    assert tree.find("../../src/c.txt")[0].path == tmp_path / "src" / "c.txt"
    with pytest.raises(BuildError, match="no source files were specified"):
        tree.find("*.zip")
    with pytest.raises(BuildError, match="file not found in build context"):
        tree.find("missing")
    dir_hash = tree.source_hash(tree.find("src")[0])
    (tmp_path / "src" / "c.txt").touch()
    os.utime(tmp_path / "src" / "c.txt", (1, 1))
    assert SourceTree(tmp_path).source_hash(SourceTree(tmp_path).find("src")[0]) == dir_hash  # mtime-free
