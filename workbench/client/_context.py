"""Build contexts: a directory → a tar stream, with `.dockerignore` applied as the docker CLI does.

Patterns follow moby's patternmatcher (workbench.engine.build.dockerignore, shared with the daemon):
Go `filepath.Match` syntax plus `**`, `!` exceptions, the last matching pattern wins.
The Dockerfile and `.dockerignore` are always sent (the CLI adds exceptions for them); a Dockerfile
from outside the context is injected as `.dockerfile.<random>` and listed in `.dockerignore`, so the
daemon's `COPY .` does not pick it up.
"""

from __future__ import annotations

import io
import os
import secrets
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.engine.build.dockerignore import DockerIgnore  # pure: the daemon applies the same rules
from workbench.errors import InvalidArgument

__all__ = ["BuildContext", "DockerIgnore", "directory_context", "dockerfile_context"]

_SPOOL = 32 * 1024 * 1024


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
    ignore = DockerIgnore.from_text(ignore_text)
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL)
    with tarfile.open(fileobj=spool, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in ignore.walk(base, dockerfile=rel_dockerfile):
            if rel == ".dockerignore" and injected:
                continue
            full = base / rel
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


def dockerfile_context(dockerfile_text: str | bytes) -> BuildContext:
    """A context holding only a Dockerfile (`docker build - < Dockerfile`)."""
    data = dockerfile_text.encode() if isinstance(dockerfile_text, str) else dockerfile_text
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL)
    with tarfile.open(fileobj=spool, mode="w|") as tar:
        _add_bytes(tar, "Dockerfile", data)
    spool.seek(0)
    return BuildContext(spool, "Dockerfile")
