"""Verbs that move files: `build` (context in) and `cp` (either way)."""

from __future__ import annotations

import argparse
import io
import os
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from workbench.client import Client
from workbench.errors import InvalidArgument, NotFound

__all__ = ["Copied", "build", "copy", "split_container_path"]

_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"(\xb5/\xfd")


def _is_archive(head: bytes) -> bool:
    return head.startswith(_ARCHIVE_MAGIC) or head[257:262] == b"ustar"


def _kv(items: list[str], *, from_env: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            if from_env and key in os.environ:
                value = os.environ[key]
            elif from_env:
                continue
        out[key] = value
    return out


def build(client: Client, args: argparse.Namespace) -> Any:
    """`build PATH|-`: a directory context (with `.dockerignore`), a tar on stdin, or a Dockerfile on stdin."""
    from workbench.oci.units import parse_bytes

    context: Any = args.context
    dockerfile: str | None = args.file
    dockerfile_text: bytes | None = None
    stdin: IO[bytes] | None = getattr(args, "stdin", None)
    if context == "-" or dockerfile == "-":
        if stdin is None:
            raise InvalidArgument("no standard input to read the build context from")
        data = stdin.read()
        if context == "-":
            if dockerfile == "-":
                raise InvalidArgument("invalid argument: can't use stdin for both build context and dockerfile")
            if _is_archive(data):
                context = data
            else:
                context, dockerfile_text, dockerfile = None, data, None
        else:
            dockerfile_text, dockerfile = data, None
    elif "://" in context or context.startswith("git@"):
        raise InvalidArgument(f"unable to prepare context: remote contexts are not supported: {context}")
    if isinstance(context, str):
        if not os.path.exists(context):
            raise InvalidArgument(f"unable to prepare context: path \"{context}\" not found")
        if dockerfile and os.path.isdir(context):
            dockerfile = os.path.abspath(dockerfile)  # -f is relative to the current directory
    hosts = dict(h.split(":", 1) if ":" in h else (h, "") for h in args.add_host)
    return client.build(context, tags=args.tag, dockerfile=dockerfile, dockerfile_text=dockerfile_text,
                        buildargs=_kv(args.build_arg, from_env=True) or None, target=args.target,
                        nocache=args.no_cache, labels=_kv(args.label) or None, quiet=args.quiet,
                        pull=args.pull, rm=args.rm, forcerm=args.force_rm, cache_from=args.cache_from,
                        network_mode=args.network, extra_hosts=hosts or None,
                        shm_size=parse_bytes(args.shm_size) if args.shm_size else None,
                        memory=parse_bytes(args.memory) if args.memory else None, platform=args.platform)


# -- cp ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Copied:
    """A finished `cp`: bytes moved, and where."""

    size: int
    source: str
    dest: str


def split_container_path(arg: str) -> tuple[str | None, str]:
    """`ctr:/path` → ("ctr", "/path"); a local path (absolute, `./x`, or without `:`) → (None, path)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    container, _, path = arg.partition(":")
    return container, path


def copy(client: Client, args: argparse.Namespace) -> Any:
    """`cp SRC DEST` where exactly one side is `CONTAINER:PATH`; `-` streams a tar on stdin/stdout."""
    src_ctr, src = split_container_path(args.source)
    dst_ctr, dst = split_container_path(args.dest)
    if (src_ctr is None) == (dst_ctr is None):
        raise InvalidArgument("copying between containers, or between two local paths, is not supported; "
                              "one side must be CONTAINER:PATH")
    if src_ctr is not None:
        return _copy_out(client, src_ctr, src, dst, args)
    assert dst_ctr is not None
    return _copy_in(client, src, dst_ctr, dst, args)


def _copy_out(client: Client, ctr: str, src: str, dst: str, args: argparse.Namespace) -> Any:
    stream = client.containers.get_archive(ctr, src)
    if dst == "-":
        return stream  # the tar as it is, for stdout
    target = Path(dst)
    rename = None
    if target.is_dir():
        into = target
    else:
        if not target.parent.is_dir():
            stream.close()
            raise InvalidArgument(f"destination directory {str(target.parent)!r} does not exist")
        into, rename = target.parent, target.name
    top = stream.stat.name or posixpath.basename(src.rstrip("/")) or "."
    size = 0
    with stream, tarfile.open(fileobj=_Chunks(stream), mode="r|*") as tar:
        for member in tar:
            if rename is not None:
                if member.name == top:
                    member.name = rename
                elif member.name.startswith(top + "/"):
                    member.name = rename + member.name[len(top):]
            if not args.archive:
                member.uid, member.gid = os.getuid(), os.getgid()
            size += member.size
            tar.extract(member, into, set_attrs=True, filter="tar" if not args.archive else "fully_trusted")
    return Copied(size, f"{ctr}:{src}", dst)


def _copy_in(client: Client, src: str, ctr: str, dst: str, args: argparse.Namespace) -> Copied:
    if src == "-":
        stdin = getattr(args, "stdin", None)
        if stdin is None:
            raise InvalidArgument("no standard input to read the archive from")
        data = stdin.read()
        client.containers.put_archive(ctr, dst, data, no_overwrite_dir_non_dir=True)
        return Copied(len(data), "-", f"{ctr}:{dst}")
    source = Path(src)
    if not source.exists() and not source.is_symlink():
        raise InvalidArgument(f"stat {src}: no such file or directory")
    try:
        stat = client.containers.stat_path(ctr, dst)
        into_dir = stat.is_dir
    except NotFound:
        into_dir = False
    if into_dir:
        extract_dir, name = dst, source.name if source.name not in ("", ".") else "."
    else:
        extract_dir = posixpath.dirname(dst.rstrip("/")) or "/"
        name = posixpath.basename(dst.rstrip("/"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(source), arcname=name, filter=None if args.archive else _owned_by_root,
                recursive=True)
    data = buf.getvalue()
    client.containers.put_archive(ctr, extract_dir, data, no_overwrite_dir_non_dir=True,
                                  copy_uid_gid=args.archive)
    return Copied(sum(m.size for m in tarfile.open(fileobj=io.BytesIO(data))), src, f"{ctr}:{dst}")


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _Chunks(io.RawIOBase):
    """A readable file over an iterator of byte chunks (for tarfile's stream mode)."""

    def __init__(self, chunks: Any) -> None:
        self._it = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
