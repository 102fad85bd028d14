""".dockerignore with Docker's semantics (moby/patternmatcher and its ignorefile reader).

Reading (`read_patterns`): a line starting with `#` is a comment (only at column 0), blanks are
trimmed, empty lines skipped, `!` marks an exception, each pattern is cleaned like Go's
filepath.Clean and a leading `/` is dropped, so `/a/../b/` and `b` are the same pattern.

Matching (`DockerIgnore.ignored`): patterns are Go filepath.Match patterns turned into
regular expressions the way patternmatcher does it: `*` and `?` never match `/`, `[...]` are
character classes (`^` negates; `!` is an ordinary character), `\\` escapes, and `**` matches any
number of directories (also none). A path is matched when the pattern matches it or any of its
parent directories; patterns apply in order and the last one that matches decides, so
`!keep.txt` after `*.txt` brings `keep.txt` back.

Walking (`DockerIgnore.walk`) is what the docker CLI does when it sends a context: an excluded
directory is skipped unless an exception pattern starts with that directory's path, in which
case it is walked (without being listed itself) so the re-included children are found. Symbolic
links are listed, never followed. The Dockerfile and `.dockerignore` are always sent.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from workbench.errors import InvalidArgument

__all__ = ["DockerIgnore", "Pattern", "go_clean", "read_patterns"]

_BAD_PATTERN = "syntax error in pattern"


def go_clean(path: str) -> str:
    """Go's path.Clean for slash-separated paths ("" → ".", "a//b/../c/" → "a/c")."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(comp)
    out = "/".join(parts)
    return ("/" + out) if rooted else (out or ".")


def read_patterns(text: str | bytes) -> list[str]:
    """The patterns of a .dockerignore file, as moby's ignorefile.ReadAll returns them."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    out: list[str] = []
    for n, line in enumerate(text.split("\n")):
        if n == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


def _check_go_pattern(p: str) -> None:
    """Raise InvalidArgument where Go's filepath.Match reports ErrBadPattern."""
    def esc(i: int) -> int:
        if i >= len(p) or p[i] in "-]":
            raise InvalidArgument(_BAD_PATTERN)
        if p[i] == "\\":
            i += 1
            if i >= len(p):
                raise InvalidArgument(_BAD_PATTERN)
        i += 1
        if i >= len(p):
            raise InvalidArgument(_BAD_PATTERN)
        return i

    i = 0
    while i < len(p):
        c = p[i]
        if c == "\\":
            if i + 1 >= len(p):
                raise InvalidArgument(_BAD_PATTERN)
            i += 2
        elif c == "[":
            i += 1
            if i < len(p) and p[i] == "^":
                i += 1
            nrange = 0
            while True:
                if i < len(p) and p[i] == "]" and nrange > 0:
                    i += 1
                    break
                i = esc(i)
                if p[i] == "-":
                    i = esc(i + 1)
                nrange += 1
        else:
            i += 1


@dataclass(frozen=True, slots=True)
class Pattern:
    """One cleaned pattern; `exclusion` is True for `!pattern` (an exception)."""

    text: str
    exclusion: bool
    kind: str                       # "exact" | "prefix" | "suffix" | "regexp"
    regex: re.Pattern[str] | None

    @classmethod
    def compile(cls, raw: str) -> Pattern:
        p = go_clean(raw.strip())
        exclusion = p.startswith("!")
        if exclusion:
            if len(p) == 1:
                raise InvalidArgument('illegal exclusion pattern: "!"')
            p = p[1:]
        _check_go_pattern(p)
        kind, regex = _translate(p)
        return cls(p, exclusion, kind, regex)

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None


_REGEX_ESCAPE = frozenset(".+()|{}$")


def _translate(p: str) -> tuple[str, re.Pattern[str] | None]:
    out, kind, i, n = ["^"], "exact", 0, 0
    while i < len(p):
        ch = p[i]
        i += 1
        if ch == "*":
            if i < len(p) and p[i] == "*":
                i += 1
                if i < len(p) and p[i] == "/":
                    i += 1
                if i >= len(p):
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regexp"
                else:
                    out.append("(.*/)?")
                    kind = "regexp"
                if n == 0:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            out.append("[^/]")
            kind = "regexp"
        elif ch in _REGEX_ESCAPE:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < len(p):
                out.append("\\" + p[i])
                i += 1
                kind = "regexp"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regexp"
        else:
            out.append(ch)
        n += 1
    if kind != "regexp":
        return kind, None
    out.append("$")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return kind, re.compile("".join(out))
    except re.error:
        raise InvalidArgument(_BAD_PATTERN) from None


class DockerIgnore:
    """A compiled .dockerignore.

    Args:
        patterns: pattern lines as `read_patterns` returns them (or written by hand).

    Raises:
        InvalidArgument: a malformed pattern (`syntax error in pattern`) or a lone `!`.
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(Pattern.compile(p) for p in patterns if p.strip())
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    @classmethod
    def from_text(cls, text: str | bytes) -> DockerIgnore:
        return cls(read_patterns(text))

    def ignored(self, path: str, is_dir: bool = False) -> bool:
        """True if the context path (relative, `/`-separated) is excluded.

        `is_dir` does not change the answer (Docker cleans a trailing `/` off every pattern);
        it is accepted so callers can pass what they know.
        """
        path = go_clean(path.lstrip("/")) if path not in ("", "/") else "."
        if path == ".":
            return False
        parent = path.rpartition("/")[0]
        parents = parent.split("/") if parent else []
        matched = False
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            hit = pat.match(path)
            if not hit:
                hit = any(pat.match("/".join(parents[: i + 1])) for i in range(len(parents)))
            if hit:
                matched = not pat.exclusion
        return matched

    def _keeps_children(self, directory: str) -> bool:
        prefix = directory + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)

    def with_build_files(self, dockerfile: str = "Dockerfile") -> DockerIgnore:
        """This matcher plus the exceptions the docker CLI adds so that `.dockerignore` and
        the Dockerfile are always sent, even when a pattern excludes them."""
        extra = []
        for name in (".dockerignore", go_clean(dockerfile.replace(os.sep, "/"))):
            if self.ignored(name):
                extra.append(Pattern.compile("!" + name))
        if not extra:
            return self
        out = DockerIgnore()
        out.patterns = self.patterns + tuple(extra)
        out.has_exclusions = True
        return out

    def hidden_build_files(self, dockerfile: str = "Dockerfile") -> frozenset[str]:
        """The build files a daemon removes from a received context before COPY can see them:
        `.dockerignore` always, the Dockerfile when a pattern excludes it (moby's
        removeDockerfile)."""
        name = go_clean(dockerfile.lstrip("/"))
        return frozenset({".dockerignore"} | ({name} if self.ignored(name) else set()))

    def walk(self, root: str | os.PathLike[str], *, dockerfile: str = "Dockerfile") -> Iterator[str]:
        """Yield the context paths to send, relative and `/`-separated, parents before children,
        each directory's entries in byte order. Symlinks are yielded, never followed."""
        matcher = self.with_build_files(dockerfile)
        yield from matcher._walk(os.fspath(root), "")

    def _walk(self, top: str, rel: str) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(os.path.join(top, rel) if rel else top),
                             key=lambda e: e.name.encode("utf-8", "surrogateescape"))
        except OSError as err:
            raise InvalidArgument(f"cannot read build context {rel or '.'}: {err}") from err
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            is_dir = stat.S_ISDIR(entry.stat(follow_symlinks=False).st_mode)
            if not self.ignored(path, is_dir):
                yield path
                if is_dir:
                    yield from self._walk(top, path)
            elif is_dir and self.has_exclusions and self._keeps_children(path):
                yield from self._walk(top, path)
