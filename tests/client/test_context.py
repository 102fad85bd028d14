"""Build contexts: .dockerignore semantics as moby's patternmatcher, and the Dockerfile rules."""

from __future__ import annotations

import tarfile

import pytest

from workbench.client import DockerIgnore
from workbench.client._context import directory_context, dockerfile_context


@pytest.mark.parametrize("patterns,path,excluded", [
    (["*.log"], "a.log", True),
    (["*.log"], "dir/a.log", False),          # `*` does not cross `/`
    (["**/*.log"], "dir/sub/a.log", True),
    (["**/*.log"], "a.log", True),
    (["build"], "build/x/y.o", True),         # a parent directory match excludes what is below
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["!README.md", "*.md"], "README.md", True),  # the last match wins
    (["doc/?.txt"], "doc/a.txt", True),
    (["doc/?.txt"], "doc/ab.txt", False),
    (["/abs/path"], "abs/path", True),
    (["./x/../y"], "y", True),
    (["[a-c].txt"], "b.txt", True),
    (["[^a-c].txt"], "b.txt", False),         # Go's filepath.Match negates with `^`
    (["[!a-c].txt"], "b.txt", True),          # ... and `!` is a literal member of the class
    (["# comment", ""], "# comment", False),
    (["a/**"], "a/b/c", True),
])
def test_dockerignore_matching(patterns, path, excluded):
    assert DockerIgnore.from_text("\n".join(patterns)).ignored(path) is excluded


def _names(ctx) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=ctx.fileobj) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None) for m in tar}


def test_directory_context_applies_ignore_but_always_sends_dockerfile(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("Dockerfile\n.dockerignore\nnode_modules\nsrc/*.tmp\n*.log\n")
    (tmp_path / "node_modules" / "pkg").mkdir(parents=True)
    (tmp_path / "node_modules" / "pkg" / "big.js").write_text("x")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("print(1)")
    (tmp_path / "src" / "junk.tmp").write_text("j")
    (tmp_path / "src" / "kept.log").write_text("`*.log` is anchored at the root, as in docker")
    ctx = directory_context(tmp_path)
    names = _names(ctx)
    assert sorted(names) == [".dockerignore", "Dockerfile", "src", "src/app.py", "src/kept.log"]
    assert ctx.dockerfile == "Dockerfile"


def test_exception_inside_an_excluded_directory_is_kept(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "vendor" / "keep").mkdir(parents=True)
    (tmp_path / "vendor" / "keep" / "x").write_text("x")
    (tmp_path / "vendor" / "drop").write_text("d")
    (tmp_path / ".dockerignore").write_text("vendor\n!vendor/keep\n")
    names = _names(directory_context(tmp_path))
    assert "vendor/keep/x" in names and "vendor/drop" not in names


def test_dockerfile_outside_the_context_is_injected_and_ignored_by_copy(tmp_path):
    ctx_dir = tmp_path / "ctx"
    ctx_dir.mkdir()
    (ctx_dir / "a.txt").write_text("a")
    (ctx_dir / ".dockerignore").write_text("*.bak")
    outside = tmp_path / "Dockerfile.dev"
    outside.write_text("FROM busybox\n")
    ctx = directory_context(ctx_dir, dockerfile=str(outside))
    names = _names(ctx)
    assert ctx.dockerfile.startswith(".dockerfile.") and names[ctx.dockerfile] == b"FROM busybox\n"
    assert names[".dockerignore"].decode().splitlines() == ["*.bak", ctx.dockerfile]


def test_dockerfile_inside_the_context_by_relative_path(tmp_path):
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text("FROM busybox\n")
    ctx = directory_context(tmp_path, dockerfile="docker/Dockerfile")
    assert ctx.dockerfile == "docker/Dockerfile" and "docker/Dockerfile" in _names(ctx)


def test_entries_are_owned_by_root_and_sorted(tmp_path):
    for name in ("b", "a", "c"):
        (tmp_path / name).write_text(name)
    with tarfile.open(fileobj=directory_context(tmp_path).fileobj) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a", "b", "c"]
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" for m in members)


def test_dockerfile_only_context():
    assert _names(dockerfile_context("FROM busybox\n")) == {"Dockerfile": b"FROM busybox\n"}
