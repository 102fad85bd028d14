""".dockerignore: moby/patternmatcher matching, the ignorefile reader, and the CLI's context walk.

The matching table is moby/patternmatcher's TestMatches; the walks run on real directories.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.engine.build.dockerignore import DockerIgnore, go_clean, read_patterns
from workbench.errors import InvalidArgument

MATCHES = [
    ("**", "file", True), ("**", "file/", True), ("**/", "file", True), ("**/", "file/", True),
    ("**", "dir/file", True), ("**/", "dir/file", True), ("**", "dir/file/", True),
    ("**/", "dir/file/", True), ("**/**", "dir/file", True), ("**/**", "dir/file/", True),
    ("dir/**", "dir/file", True), ("dir/**", "dir/file/", True), ("dir/**", "dir/dir2/file", True),
    ("dir/**", "dir/dir2/file/", True), ("**/dir", "dir", True), ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True), ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True), ("**/dir2/**", "dir/dir2/dir3/file/", True),
    ("**file", "file", True), ("**file", "dir/file", True), ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True), ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True), ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True), ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True), ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False), ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True), ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True), ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False), ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True), ("a[b-d]e", "ae", False), ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False), ("a[^b-d]e", "aze", True), (".*", ".foo", True), (".*", "foo", False),
    ("abc.def", "abcdef", False), ("abc.def", "abc.def", True), ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True), ("abc?def", "abcdef", False), ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True), ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True), ("abc/**", "abc", False), ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True), ("**/.foo", ".foo", True), ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True), ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    # Go filepath.Match: * and ? stop at /, [!x] is not a negation, \ escapes
    ("*", "a/b", True),                 # the parent "a" matches
    ("*/b", "a/b", True), ("*b", "a/b", False), ("a?b", "a/b", False),
    ("[!a]x", "!x", True), ("[!a]x", "bx", False), ("\\*x", "*x", True), ("\\*x", "ax", False),
    ("foo", "foo/bar/baz", True), ("foo/bar", "foo", False), ("/foo", "foo", True),
    ("./foo/../bar", "bar", True),
]


@pytest.mark.parametrize("pattern,path,want", MATCHES)
def test_patternmatcher_table(pattern, path, want):
    assert DockerIgnore(read_patterns(pattern)).ignored(path) is want


def test_last_match_wins_and_exceptions():
    di = DockerIgnore(["*.md", "!README*.md", "README-secret.md"])
    assert di.ignored("CHANGES.md")
    assert not di.ignored("README.md")
    assert di.ignored("README-secret.md")
    di = DockerIgnore(["*.md", "README-secret.md", "!README*.md"])
    assert not di.ignored("README-secret.md")


def test_docker_reference_examples():
    di = DockerIgnore.from_text("# comment\n*/temp*\n*/*/temp*\ntemp?\n")
    assert di.ignored("somedir/temporary.txt")
    assert di.ignored("somedir/temp")
    assert di.ignored("somedir/subdir/temporary.txt")
    assert di.ignored("tempa")
    assert not di.ignored("temp")
    assert not di.ignored("a/b/c/temp")
    assert not di.ignored("# comment")


def test_excluded_directory_excludes_children_unless_excepted():
    di = DockerIgnore(["docs", "!docs/keep.txt"])
    assert di.ignored("docs") and di.ignored("docs/a.txt") and di.ignored("docs/sub/keep.txt")
    assert not di.ignored("docs/keep.txt")


def test_root_and_empty_paths_are_never_ignored():
    di = DockerIgnore(["**"])
    assert not di.ignored(".") and not di.ignored("") and not di.ignored("/")


def test_read_patterns_like_ignorefile():
    text = ("\ufefftest1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n"
            "! /inverted/abs/path\n!\n! \n  # not a comment\n  spaced  \nx/../y/./z/\n")
    assert read_patterns(text) == ["test1", "test2", "a/file/here", "lastfile",
                                   "!inverted/abs/path", "!", "!", "# not a comment", "spaced",
                                   "y/z"]
    assert read_patterns(b"a\r\nb\n") == ["a", "b"]


@pytest.mark.parametrize("bad", ["[", "a[", "[]a]", "[a-]", "[-a]", "a\\", "[a", "[^]"])
def test_malformed_patterns(bad):
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        DockerIgnore([bad])


def test_lone_exclamation_is_illegal():
    with pytest.raises(InvalidArgument, match='illegal exclusion pattern: "!"'):
        DockerIgnore.from_text("!\n")


@pytest.mark.parametrize("raw,clean", [
    ("", "."), ("a//b", "a/b"), ("a/./b/", "a/b"), ("a/../..", ".."), ("/../a", "/a"),
    ("./", "."), ("a/b/../../c", "c"), ("//x", "/x"),
])
def test_go_clean(raw, clean):
    assert go_clean(raw) == clean


# --------------------------------------------------------------------------- walking a context


def _tree(root: Path, files: list[str]) -> None:
    for rel in files:
        p = root / rel
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(rel)


def test_walk_without_ignore_file(tmp_path):
    _tree(tmp_path, ["Dockerfile", "b.txt", "a/x", "a/y/z", "empty/"])
    assert list(DockerIgnore().walk(tmp_path)) == [
        "Dockerfile", "a", "a/x", "a/y", "a/y/z", "b.txt", "empty"]


def test_walk_skips_excluded_and_keeps_exceptions(tmp_path):
    _tree(tmp_path, ["Dockerfile", ".dockerignore", "app.py", "node_modules/m/index.js",
                     "docs/a.md", "docs/keep.txt", "docs/sub/keep.txt", "x.log", "logs/keep.log"])
    di = DockerIgnore(["node_modules", "docs", "!docs/keep.txt", "*.log", "!logs/keep.log"])
    assert list(di.walk(tmp_path)) == [
        ".dockerignore", "Dockerfile", "app.py", "docs/keep.txt", "logs", "logs/keep.log"]


def test_walk_wildcard_exception_does_not_reopen_excluded_dirs(tmp_path):
    # Docker's known limitation (moby#30018): only exceptions that start with the directory's
    # path make the walk enter an excluded directory.
    _tree(tmp_path, ["Dockerfile", "build/out/README.md", "build/x.o", "README.md"])
    di = DockerIgnore(["build", "!**/README.md"])
    assert list(di.walk(tmp_path)) == ["Dockerfile", "README.md"]


def test_walk_always_sends_dockerfile_and_dockerignore(tmp_path):
    _tree(tmp_path, [".dockerignore", "Dockerfile", "docker/app.Dockerfile", "src/main.c"])
    di = DockerIgnore(["*", "!src"])
    assert list(di.walk(tmp_path)) == [".dockerignore", "Dockerfile", "src", "src/main.c"]
    assert list(di.walk(tmp_path, dockerfile="docker/app.Dockerfile")) == [
        ".dockerignore", "docker/app.Dockerfile", "src", "src/main.c"]


def test_walk_lists_symlinks_without_following_them(tmp_path):
    outside = tmp_path / "outside"
    _tree(outside, ["secret/key", "file"])
    ctx = tmp_path / "ctx"
    _tree(ctx, ["Dockerfile", "real/f"])
    os.symlink(outside / "secret", ctx / "link_dir")
    os.symlink("/etc/passwd", ctx / "abs_link")
    os.symlink("../outside/file", ctx / "rel_link")
    assert list(DockerIgnore().walk(ctx)) == [
        "Dockerfile", "abs_link", "link_dir", "real", "real/f", "rel_link"]


def test_walk_byte_order_and_hidden_files(tmp_path):
    _tree(tmp_path, ["B", "a", "_u", ".h", "Z/1"])
    assert list(DockerIgnore().walk(tmp_path)) == [".h", "B", "Z", "Z/1", "_u", "a"]


def test_hidden_build_files_on_the_daemon_side():
    assert DockerIgnore().hidden_build_files() == {".dockerignore"}
    assert DockerIgnore(["Dockerfile"]).hidden_build_files() == {".dockerignore", "Dockerfile"}
    assert DockerIgnore(["build"]).hidden_build_files("build/Dockerfile") == {
        ".dockerignore", "build/Dockerfile"}


def test_walk_of_a_missing_context_is_an_error(tmp_path):
    with pytest.raises(InvalidArgument, match="cannot read build context"):
        list(DockerIgnore().walk(tmp_path / "nope"))
