"""Build contexts on the daemon side: extract safely, apply `.dockerignore`, find and hash sources.

A context arrives as a tar (plain, gzip, bzip2, xz or zstd, sniffed by magic bytes) and is
extracted with `store.layers.apply_layer` in flatten mode into a private directory: names are
cleaned, nothing can land outside it, device nodes are refused. Then `.dockerignore` is applied
here too, as moby does for the Dockerfile and `.dockerignore` themselves and as clients other than
the docker CLI need for everything else: every path it excludes is removed, so `COPY .` never sees
it (the CLI lists a Dockerfile it injected from outside the context, `.dockerfile.<random>`, there).

Sources (`SourceTree`, for the context and for the root of a `--from` image alike) follow the
classic builder: a path is cleaned as if rooted (`../x` and `/x` are `x`), symlinks along it,
the last one included, resolve with the tree as `/` (`store.paths.secure_join`), and a source with
Go `filepath.Match` wildcards (`*`, `?`, `[...]`, `\\`) expands, component by component, to every
matching path in lexical order. Content hashes (`SourceEntry` rows, as `plan.source_hash` wants
them) are computed once per file and remembered for the life of the tree.
"""

from __future__ import annotations

import functools
import hashlib
import os
import posixpath
import queue
import re
import shutil
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from workbench.engine.build.dockerignore import DockerIgnore
from workbench.engine.build.plan import SourceEntry, source_hash
from workbench.engine.store.compression import open_decompressed
from workbench.engine.store.layers import apply_layer
from workbench.engine.store.paths import secure_join
from workbench.errors import BuildError

__all__ = ["DEFAULT_DOCKERFILE", "ContextStream", "Source", "SourceTree", "apply_dockerignore",
           "extract_context", "has_wildcards", "read_dockerfile"]

DEFAULT_DOCKERFILE = "Dockerfile"
_CHUNK = 1 << 20
_WILDCARDS = re.compile(r"[*?\[\\]")


def extract_context(body: BinaryIO, dest: Path) -> dict[str, tuple[str, int]]:
    """Extract a (possibly compressed) context tar into the existing directory `dest`.

    Returns the content digests of the regular files, hashed as they streamed past
    ({cleaned path: ("sha256:<hex>", size)}), for `SourceTree(known=...)`. An empty body is an
    empty context.

    Raises:
        InvalidArgument: a malformed or unsafe archive (`store.layers.apply_layer`'s checks).
    """
    stream = ContextStream(open_decompressed(body))
    try:
        apply_layer(stream, dest, mode="flatten", allow_devices=False)
    finally:
        digests = stream.close()
    return digests


def _header_size(block: bytes) -> int:
    field = block[124:136]
    if field[0] & 0x80:                       # base-256 (GNU) for sizes over 8 GiB
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _ustar_name(block: bytes) -> str:
    name = block[0:100].split(b"\0", 1)[0]
    if block[257:262] == b"ustar":
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    while data:
        length, _, _ = data.partition(b" ")
        try:
            n = int(length)
        except ValueError:
            break
        record, data = data[:n], data[n:]
        key, _, value = record[len(length) + 1:].rstrip(b"\n").partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
    return out


def _member_path(name: str) -> str:
    return posixpath.normpath(name.lstrip("/"))


_REGULAR = (b"0", b"\0", b"7")
_MAX_META = 1 << 20


class _Hashing:
    """Hashes file contents in a thread of its own, in stream order (a bounded queue of chunks,
    so a slow hash slows the reader instead of filling memory); `close()` returns the digests."""

    _POP, _DONE = object(), object()

    def __init__(self) -> None:
        self.digests: dict[str, tuple[str, int]] = {}
        self._q: queue.Queue[tuple[Any, Any]] = queue.Queue(maxsize=64)
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while True:
            what, arg = self._q.get()
            if what is None:
                return
            if what is self._POP:
                self.digests.pop(arg, None)
            elif what is self._DONE:
                name, h, size = arg
                self.digests[name] = ("sha256:" + h.hexdigest(), size)
            else:
                what.update(arg)

    def _put(self, item: tuple[Any, Any]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="context-hash", daemon=True)
            self._thread.start()
        self._q.put(item)

    def update(self, h: Any, data: memoryview) -> None:
        self._put((h, data))

    def done(self, name: str, h: Any, size: int) -> None:
        self._put((self._DONE, (name, h, size)))

    def pop(self, name: str) -> None:
        self._put((self._POP, name))

    def close(self) -> dict[str, tuple[str, int]]:
        if self._thread is not None:
            self._q.put((None, None))
            self._thread.join()
            self._thread = None
        return self.digests


class ContextStream:
    """Reads a context tar through for `apply_layer`, hashing every regular file's content as it
    passes (in another thread; `close()` returns the digests) and completing a stream that stops
    right after the last member's data.

    The docker CLI sends such streams when `-f` names a Dockerfile outside the context (its
    ReplaceFileTarWrapper closes the pipe before the tar writer's Close flushes the padding and
    the end-of-archive blocks) and Go's tar reader accepts them. A stream that stops inside a
    header or inside a member's data is left as it is, so it still fails as truncated.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._hashing = _Hashing()
        self._pos = 0                 # bytes passed through
        self._next = 0                # offset of the next header block
        self._data_end = 0            # end of the current member's data
        self._hdr = bytearray()       # a header block split across reads
        self._ended = False           # a zero block was seen: the archive's own end
        self._tail: bytes | None = None
        self._sink: Any = None        # where the current member's data goes
        self._member: tuple[str, bytes, Any, int] | None = None   # (name, type, hasher/buffer, size)
        self._pax: dict[str, str] = {}
        self._longname = ""

    def read(self, n: int = -1) -> bytes:
        if self._tail is None:
            data = self._raw.read(n if n and n > 0 else _CHUNK)
            if data:
                self._scan(data)
                return data
            self._tail = self._completion()
        out, self._tail = (self._tail, b"") if n is None or n < 0 else (self._tail[:n], self._tail[n:])
        return out

    def _scan(self, data: bytes) -> None:
        view = memoryview(data)
        start, end = self._pos, self._pos + len(data)
        i = start
        while i < end and not self._ended:
            if i < self._data_end:
                j = min(end, self._data_end)
                if self._sink is not None:
                    self._sink(view[i - start:j - start])
                i = j
                if i == self._data_end:
                    self._finish_member()
            elif i < self._next:
                i = min(end, self._next)                 # padding after the data
            else:
                j = min(end, self._next + 512)
                self._hdr += view[i - start:j - start]
                i = j
                if len(self._hdr) == 512:
                    block = bytes(self._hdr)
                    self._hdr.clear()
                    self._header(block)
        self._pos = end

    def _header(self, block: bytes) -> None:
        if block == bytes(512):
            self._ended = True
            return
        try:
            size = _header_size(block)
        except ValueError:
            self._ended = True                          # not a tar header: the tar reader reports it
            return
        kind = block[156:157]
        self._data_end = self._next + 512 + size
        self._next += 512 + (size + 511) // 512 * 512
        self._sink = None
        if kind in (b"x", b"L"):
            buf = bytearray()
            self._member = ("", kind, buf, size)
            self._sink = buf.extend if size <= _MAX_META else None
        elif kind == b"g":
            self._member = None
        else:
            name = _member_path(self._longname or self._pax.get("path") or _ustar_name(block))
            self._pax, self._longname = {}, ""
            self._hashing.pop(name)
            if kind in _REGULAR:
                h = hashlib.sha256()
                self._member = (name, kind, h, size)
                self._sink = functools.partial(self._hashing.update, h)
            else:
                self._member = None
        if size == 0:
            self._finish_member()

    def _finish_member(self) -> None:
        member, self._member, self._sink = self._member, None, None
        if member is None:
            return
        name, kind, acc, size = member
        if kind == b"x":
            self._pax = _pax_records(bytes(acc))
        elif kind == b"L":
            self._longname = bytes(acc).rstrip(b"\0").decode("utf-8", "surrogateescape")
        else:
            self._hashing.done(name, acc, size)

    def close(self) -> dict[str, tuple[str, int]]:
        """Wait for the hashing to finish; {path: (digest, size)} of the regular files."""
        return self._hashing.close()

    def _completion(self) -> bytes:
        if self._ended or self._hdr or self._pos < self._data_end or self._pos == 0:
            return b""
        return bytes(self._next - self._pos) + bytes(1024)


def read_dockerfile(root: Path, name: str | None) -> tuple[str, bytes]:
    """The Dockerfile's path in the context (cleaned) and its bytes.

    A missing `Dockerfile` falls back to `dockerfile`, as the classic builder does.

    Raises:
        BuildError: `Cannot locate specified Dockerfile: <name>`.
    """
    rel = _clean(name or DEFAULT_DOCKERFILE)
    candidates = [rel] + (["dockerfile"] if rel == DEFAULT_DOCKERFILE else [])
    for cand in candidates:
        path = secure_join(root, cand)
        try:
            if path.is_file():
                return cand, path.read_bytes()
        except OSError:
            continue
    raise BuildError(f"Cannot locate specified Dockerfile: {name or DEFAULT_DOCKERFILE}")


def apply_dockerignore(root: Path) -> int:
    """Remove every context path `.dockerignore` excludes (the file itself too when it is listed);
    return how many entries were removed. No `.dockerignore`, nothing to do."""
    try:
        text = (root / ".dockerignore").read_bytes()
    except FileNotFoundError:
        return 0
    except IsADirectoryError:
        return 0
    ignore = DockerIgnore.from_text(text)
    if not ignore.patterns:
        return 0
    return _prune(ignore, str(root), "")


def _keeps_children(ignore: DockerIgnore, rel: str) -> bool:
    prefix = rel + "/"
    return any(p.exclusion and (p.text + "/").startswith(prefix) for p in ignore.patterns)


def _prune(ignore: DockerIgnore, top: str, rel: str) -> int:
    removed = 0
    with os.scandir(os.path.join(top, rel) if rel else top) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        path = f"{rel}/{entry.name}" if rel else entry.name
        is_dir = entry.is_dir(follow_symlinks=False)
        if not ignore.ignored(path, is_dir):
            if is_dir:
                removed += _prune(ignore, top, path)
            continue
        if is_dir and ignore.has_exclusions and _keeps_children(ignore, path):
            removed += _prune(ignore, top, path)
            continue
        if is_dir:
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
        removed += 1
    return removed


def has_wildcards(path: str) -> bool:
    return _WILDCARDS.search(path) is not None


def _clean(path: str) -> str:
    """A source path as the classic builder cleans it: rooted, `..` stopping at the root."""
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
    return "/".join(parts)


def _component_regex(pattern: str) -> re.Pattern[str]:
    """One path component of a Go filepath.Match pattern as a regular expression."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i < len(pattern):
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            close = pattern.find("]", i + 1 if pattern[i:i + 1] == "^" else i)
            if close == -1:
                raise BuildError(f"syntax error in pattern: {pattern}")
            body = pattern[i:close]
            neg = body.startswith("^")
            if neg:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append(f"[{'^' if neg else ''}{body}]")
            i = close + 1
        else:
            out.append(re.escape(ch))
    try:
        return re.compile("".join(out) + r"\Z", re.DOTALL)
    except re.error as err:
        raise BuildError(f"syntax error in pattern: {pattern}") from err


@dataclass(frozen=True, slots=True)
class Source:
    """One source path found in a tree: `rel` as matched (cleaned), `path` on the host with every
    symlink resolved inside the tree, `name` the base name it is copied under."""

    rel: str
    path: Path
    name: str
    is_dir: bool


class SourceTree:
    """A directory seen as `/`: the extracted context, or the mounted root of a `--from` image."""

    def __init__(self, root: Path, *, what: str = "build context",
                 known: Mapping[str, tuple[str, int]] | None = None) -> None:
        self.root = Path(root)
        self.what = what
        self._prefix = str(self.root) + "/"
        self._known = known or {}
        self._digests: dict[tuple[int, int, int, int], str] = {}

    # -- finding ---------------------------------------------------------------------------
    def find(self, pattern: str, *, cmd: str = "COPY") -> list[Source]:
        """The sources `pattern` names: one path, or every match of a wildcard pattern.

        Raises:
            BuildError: nothing matches (Docker's wording).
        """
        rel = _clean(pattern)
        if not has_wildcards(rel):
            path = secure_join(self.root, rel)
            try:
                st = os.stat(path)
            except OSError:
                raise BuildError(f"{cmd} failed: file not found in {self.what} or excluded by "
                                 f".dockerignore: stat {rel or '.'}: file does not exist") from None
            return [Source(rel, path, rel.rpartition("/")[2], stat.S_ISDIR(st.st_mode))]
        found = [Source(r, p, r.rpartition("/")[2], d) for r, p, d in self._glob(rel)]
        if not found:
            raise BuildError(f"{cmd} failed: no source files were specified")
        return found

    def _glob(self, pattern: str) -> Iterator[tuple[str, Path, bool]]:
        """Matches in walk order. Like the classic builder's filepath.Walk, only real directories
        are descended into; a match that is a symlink is then followed (inside the tree)."""
        parts = pattern.split("/")
        level: list[str] = [""]
        for n, comp in enumerate(parts):
            last = n == len(parts) - 1
            rx = _component_regex(comp) if has_wildcards(comp) else None
            nxt: list[str] = []
            for base in level:
                parent = os.path.join(self.root, base)
                if rx is None:
                    names = [comp] if comp and os.path.lexists(os.path.join(parent, comp)) else []
                else:
                    try:
                        names = sorted(n for n in os.listdir(parent) if rx.match(n))
                    except OSError:
                        continue
                for name in names:
                    rel = f"{base}/{name}" if base else name
                    if last or stat.S_ISDIR(os.lstat(os.path.join(self.root, rel)).st_mode):
                        nxt.append(rel)
            level = nxt
        for rel in level:
            path = secure_join(self.root, rel)
            try:
                st = os.stat(path)
            except OSError:
                continue
            yield rel, path, stat.S_ISDIR(st.st_mode)

    # -- hashing ---------------------------------------------------------------------------
    def digest(self, path: str | Path, st: os.stat_result | None = None) -> str:
        """sha256 of a regular file's content: as hashed during extraction (`known`), else read
        now and remembered by (dev, inode, size, mtime)."""
        st = st or os.stat(path)
        full = str(path)
        if full.startswith(self._prefix):
            seen = self._known.get(full[len(self._prefix):])
            if seen is not None and seen[1] == st.st_size:
                return seen[0]
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        hit = self._digests.get(key)
        if hit is None:
            h = hashlib.sha256()
            with open(path, "rb", buffering=0) as f:
                if st.st_size <= _CHUNK:
                    h.update(f.read())
                else:
                    buf = bytearray(_CHUNK)
                    view = memoryview(buf)
                    while n := f.readinto(buf):
                        h.update(view[:n])
            hit = self._digests[key] = "sha256:" + h.hexdigest()
        return hit

    def entries(self, src: Source) -> list[SourceEntry]:
        """The `SourceEntry` rows of one source: the file, or the directory and all beneath it
        (symlinks inside a directory are recorded, never followed)."""
        st = os.stat(src.path)
        if not src.is_dir:
            return [self._entry(src.name, str(src.path), st)]
        out = [SourceEntry("", st.st_mode)]
        stack = [(str(src.path), "")]
        while stack:
            top, rel = stack.pop()
            with os.scandir(top) as it:
                for e in it:
                    sub = f"{rel}/{e.name}" if rel else e.name
                    est = e.stat(follow_symlinks=False)
                    out.append(self._entry(sub, e.path, est))
                    if stat.S_ISDIR(est.st_mode):
                        stack.append((e.path, sub))
        return out

    def _entry(self, rel: str, full: str, st: os.stat_result) -> SourceEntry:
        if stat.S_ISREG(st.st_mode):
            return SourceEntry(rel, st.st_mode, digest=self.digest(full, st))
        if stat.S_ISLNK(st.st_mode):
            return SourceEntry(rel, st.st_mode, link=os.readlink(full))
        return SourceEntry(rel, st.st_mode)

    def source_hash(self, src: Source) -> str:
        """`file:<hex>` or `dir:<hex>`, as history and cache keys show a source."""
        return source_hash(self.entries(src), is_dir=src.is_dir)
