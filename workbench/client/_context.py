"""Build contexts: a directory → a tar stream, with `.dockerignore` applied as the docker CLI does.

Patterns follow moby's patternmatcher: Go `filepath.Match` syntax plus `**`, `!` exceptions, the last
matching pattern wins, and a file is excluded when the pattern matches it *or any parent directory*.
The Dockerfile and `.dockerignore` are always sent (the CLI adds exceptions for them); a Dockerfile
from outside the context is injected as `.dockerfile.<random>` and listed in `.dockerignore`, so the
daemon's `COPY .` does not pick it up.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import stat
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InvalidArgument

__all__ = ["BuildContext", "DockerIgnore", "directory_context", "dockerfile_context"]

_SPOOL = 32 * 1024 * 1024


def _clean(pattern: str) -> str:
    """Go's filepath.Clean on a slash path, minus a leading `/`."""
    parts: list[str] = []
    for part in pattern.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts) or "."


def _regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            close = pattern.find("]", i + 1)
            if close == -1:
                raise InvalidArgument(f"syntax error in .dockerignore pattern: {pattern}")
            body = pattern[i + 1:close]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body + "]")
            i = close
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out))


@dataclass(frozen=True, slots=True)
class _Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


class DockerIgnore:
    """Compiled `.dockerignore` patterns."""

    def __init__(self, patterns: Iterable[str]) -> None:
        compiled: list[_Pattern] = []
        for raw in patterns:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            cleaned = _clean(line)
            compiled.append(_Pattern(cleaned, exclusion, _regex(cleaned)))
        self.patterns = compiled

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        return cls(text.splitlines())

    @property
    def has_exclusions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def may_include_below(self, directory: str) -> bool:
        """Whether an exception (`!pattern`) could bring back something inside an excluded directory."""
        prefix = directory + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether the slash path `path` (relative to the context) is left out."""
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = bool(pattern.regex.match(path))
            if not hit:
                hit = any(pattern.regex.match("/".join(parents[:i + 1])) for i in range(len(parents)))
            if hit:
                matched = not pattern.exclusion
        return matched


@dataclass
class BuildContext:
    """A tar ready to send (spooled to disk when large) and the Dockerfile name inside it."""

    fileobj: tempfile.SpooledTemporaryFile[bytes]
    dockerfile: str | None

    def close(self) -> None:
        self.fileobj.close()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644, mtime: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, mtime
    tar.addfile(info, io.BytesIO(data))


def _tarinfo(tar: tarfile.TarFile, full: Path, arcname: str) -> tarfile.TarInfo | None:
    info = tar.gettarinfo(str(full), arcname)
    if not (info.isreg() or info.isdir() or info.issym()):
        return None  # sockets, fifos and devices do not belong in a build context
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def directory_context(root: str | os.PathLike[str], *, dockerfile: str | None = None,
                      dockerfile_text: str | bytes | None = None) -> BuildContext:
    """Tar `root` for `POST /build`, applying its `.dockerignore`.

    Args:
        dockerfile: path of the Dockerfile, relative to `root` or absolute; one outside `root`
            is injected into the tar under a random name.
        dockerfile_text: Dockerfile content to inject instead of reading a file.
    """
    base = Path(root)
    if not base.is_dir():
        raise InvalidArgument(f"unable to prepare context: path {str(root)!r} not found")
    ignore_path = base / ".dockerignore"
    ignore_text = ignore_path.read_text() if ignore_path.is_file() else ""
    injected: tuple[str, bytes] | None = None
    rel_dockerfile = "Dockerfile"
    if dockerfile_text is not None:
        data = dockerfile_text.encode() if isinstance(dockerfile_text, str) else dockerfile_text
        injected = (f".dockerfile.{secrets.token_hex(10)}", data)
    elif dockerfile:
        path = Path(dockerfile) if os.path.isabs(dockerfile) else base / dockerfile
        try:
            rel_dockerfile = path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            try:
                injected = (f".dockerfile.{secrets.token_hex(10)}", path.read_bytes())
            except OSError as err:
                raise InvalidArgument(f"unable to read Dockerfile {dockerfile}: {err.strerror}") from err
    if injected:
        rel_dockerfile = injected[0]
        ignore_text = ignore_text + ("\n" if ignore_text and not ignore_text.endswith("\n") else "") \
            + injected[0] + "\n"
    ignore = DockerIgnore([*ignore_text.splitlines(), f"!{rel_dockerfile}", "!.dockerignore"])
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL)
    with tarfile.open(fileobj=spool, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, full in _walk(base, ignore):
            if rel == ".dockerignore" and injected:
                continue
            if ignore.excluded(rel):
                continue
            info = _tarinfo(tar, full, rel)
            if info is None:
                continue
            if info.isreg():
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
        if injected:
            _add_bytes(tar, ".dockerignore", ignore_text.encode())
            _add_bytes(tar, injected[0], injected[1])
    spool.seek(0)
    return BuildContext(spool, rel_dockerfile)


def _walk(base: Path, ignore: DockerIgnore) -> Iterable[tuple[str, Path]]:
    """Context entries in sorted order; an excluded directory is pruned unless `!` rules exist."""
    stack: list[tuple[str, Path]] = [("", base)]
    while stack:
        prefix, directory = stack.pop()
        try:
            names = sorted(os.listdir(directory))
        except OSError as err:
            raise InvalidArgument(f"error checking context: {err.strerror}: {directory}") from err
        subdirs: list[tuple[str, Path]] = []
        for name in names:
            rel = f"{prefix}{name}"
            full = directory / name
            try:
                is_dir = stat.S_ISDIR(full.lstat().st_mode)
            except OSError:
                continue
            if is_dir:
                if ignore.excluded(rel) and not ignore.may_include_below(rel):
                    continue
                yield rel, full
                subdirs.append((rel + "/", full))
            else:
                yield rel, full
        stack.extend(reversed(subdirs))


def dockerfile_context(dockerfile_text: str | bytes) -> BuildContext:
    """A context holding only a Dockerfile (`docker build - < Dockerfile`)."""
    data = dockerfile_text.encode() if isinstance(dockerfile_text, str) else dockerfile_text
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL)
    with tarfile.open(fileobj=spool, mode="w|") as tar:
        _add_bytes(tar, "Dockerfile", data)
    spool.seek(0)
    return BuildContext(spool, "Dockerfile")
