"""COPY and ADD into a mounted container root, with the classic builder's rules. Blocking: call it
from a worker thread.

Destinations (moby `performCopyForInfo`): a directory source copies its *contents* into the
destination, which is created; a file goes to `<dest>/<name>` when the destination ends in `/` (or
is `.`) or already is a directory, else to `<dest>` itself; several sources need a directory
destination. Missing parents are created 0755, owned like the copied files. Every container path
resolves with the mounted root as `/` (`secure_join`), so a symlink in the image never leads out
of it; an entry being replaced is removed first and files are created `O_EXCL|O_NOFOLLOW`.

Copied entries keep their mode bits (unless `--chmod`) and mtimes and are owned by root, or by
`--chown` resolved in the image's /etc/passwd and /etc/group the way moby's parseChownFlag does
(one name means the same name for the group). ADD unpacks a local tar (plain, gzip, bzip2, xz)
with `store.layers.apply_layer`, keeping the archive's ownership, and downloads URLs (mode 0600,
mtime from `Last-Modified`).
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from workbench.engine.build.context import Source
from workbench.engine.build.plan import InlineFile
from workbench.engine.store.compression import detect_compression, open_decompressed
from workbench.engine.store.layers import apply_layer
from workbench.engine.store.paths import secure_join
from workbench.errors import BuildError

__all__ = ["Copier", "Download", "download", "is_archive", "is_url", "parse_chmod", "parse_chown"]

_CHUNK = 1 << 20


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://"))


def _passwd_lookup(root: Path, rel: str, name: str, what: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        text = secure_join(root, rel).read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    kind = "uid for user" if what == "user" else "gid for group"
    raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't find {kind} "
                     f"{name}: no such {what}: {name}")


def parse_chown(root: Path, spec: str) -> tuple[int, int]:
    """`--chown` → (uid, gid), names resolved in the image at `root` (0:0 when empty)."""
    if not spec:
        return 0, 0
    parts = spec.split(":")
    if len(parts) > 2:
        raise BuildError(f"invalid chown string format: {spec}")
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return (_passwd_lookup(root, "etc/passwd", user, "user"),
            _passwd_lookup(root, "etc/group", group, "group"))


def parse_chmod(spec: str) -> int | None:
    """`--chmod` as an octal mode (`755`, `0644`); None when not given."""
    if not spec:
        return None
    try:
        mode = int(spec, 8)
    except ValueError:
        raise BuildError(f"invalid chmod parameter {spec!r}: only octal modes are supported") from None
    if not 0 <= mode <= 0o7777:
        raise BuildError(f"invalid chmod parameter {spec!r}: mode out of range")
    return mode


def is_archive(path: Path) -> bool:
    """Whether a local ADD source is a tar (possibly compressed) that ADD unpacks."""
    try:
        with open(path, "rb") as f:
            head = f.read(10)
            if detect_compression(head) in ("gzip", "bzip2", "xz"):
                f.seek(0)
                block = open_decompressed(f).read(512)
            else:
                f.seek(0)
                block = f.read(512)
    except (OSError, EOFError, ValueError):
        return False
    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.TarError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Download:
    """An ADD URL fetched into the build's work dir."""

    url: str
    path: Path
    name: str              # file name for a directory destination
    digest: str
    mtime: float | None


def download(url: str, dest: Path, *, checksum: str = "", timeout: float = 300.0) -> Download:
    """Fetch `url` to `dest` (streamed), hashing it; verify `--checksum` when given.

    Raises:
        BuildError: HTTP errors, network errors, a checksum mismatch, no usable file name.
    """
    import httpx

    h = hashlib.sha256()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as resp:
            if resp.status_code >= 400:
                raise BuildError(f"ADD failed: error downloading {url}: HTTP {resp.status_code}")
            with open(dest, "wb") as f:
                for chunk in resp.iter_bytes(_CHUNK):
                    h.update(chunk)
                    f.write(chunk)
            modified = resp.headers.get("Last-Modified")
            disposition = resp.headers.get("Content-Disposition", "")
    except httpx.HTTPError as err:
        raise BuildError(f"ADD failed: error downloading {url}: {err}") from err
    digest = "sha256:" + h.hexdigest()
    if checksum and checksum != digest:
        raise BuildError(f"ADD failed: digest mismatch for {url}: expected {checksum}, got {digest}")
    mtime = None
    if modified:
        with contextlib.suppress(TypeError, ValueError):
            mtime = email.utils.parsedate_to_datetime(modified).timestamp()
    name = posixpath.basename(urlparse(url).path.rstrip("/"))
    if "filename=" in disposition:
        name = disposition.split("filename=", 1)[1].strip().strip('"') or name
    return Download(url, dest, posixpath.basename(name), digest, mtime)


class Copier:
    """Copies sources into the container root `root` (mounted read-write) for one COPY/ADD."""

    def __init__(self, root: Path, *, cmd: str = "COPY", chown: str = "", chmod: str = "") -> None:
        self.root = Path(root)
        self.cmd = cmd
        self.uid, self.gid = parse_chown(self.root, chown)
        self.mode = parse_chmod(chmod)

    # -- destinations ----------------------------------------------------------------------
    def dest_is_dir(self, dest: str, count: int) -> bool:
        """Whether `dest` (a container path) takes several sources / names a directory."""
        slash = dest.endswith("/") or dest.endswith("/.") or dest in (".", "/")
        if count > 1 and not slash and not self._is_dir(dest):
            raise BuildError(f"When using {self.cmd} with more than one source file, the destination "
                             f"must be a directory and end with a /")
        return slash or self._is_dir(dest)

    def _is_dir(self, cpath: str) -> bool:
        return secure_join(self.root, cpath).is_dir()

    def mkdirs(self, cpath: str) -> Path:
        """Create `cpath` and its missing parents (0755, owned like the copy); return the host path."""
        parts = [p for p in cpath.split("/") if p not in ("", ".")]
        host = self.root
        for n in range(len(parts)):
            host = secure_join(self.root, "/".join(parts[: n + 1]))
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                os.mkdir(host, 0o755)
                os.chown(host, self.uid, self.gid)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise BuildError(f"{self.cmd} failed: mkdir /{'/'.join(parts[: n + 1])}: not a directory")
        return host

    def _target(self, dest: str, name: str, into_dir: bool) -> Path:
        """Host path of the file a single source lands at."""
        if into_dir:
            return self.mkdirs(dest) / name
        parent, _, base = dest.rstrip("/").rpartition("/")
        return self.mkdirs(parent) / base

    # -- copying ---------------------------------------------------------------------------
    def copy_source(self, src: Source, dest: str, into_dir: bool) -> None:
        """Copy one source found in a `SourceTree`."""
        if src.is_dir:
            self.copy_tree(src.path, self.mkdirs(dest))
            return
        target = self._target(dest, src.name, into_dir)
        self._copy_entry(str(src.path), os.stat(src.path), target)

    def add_archive(self, path: Path, dest: str) -> None:
        """ADD of a local tar: unpack it into the directory `dest` (ownership from the archive)."""
        host = self.mkdirs(dest)
        with open(path, "rb") as f:
            apply_layer(open_decompressed(f), host, mode="flatten", allow_devices=False)

    def add_download(self, dl: Download, dest: str, into_dir: bool) -> None:
        if into_dir and not dl.name:
            raise BuildError(f"cannot determine filename for source {dl.url}")
        target = self._target(dest, dl.name, into_dir)
        st = os.stat(dl.path)
        self._copy_file(str(dl.path), st, target, mode=0o600)
        if dl.mtime is not None:
            os.utime(target, (dl.mtime, dl.mtime), follow_symlinks=False)

    def write_inline(self, doc: InlineFile, dest: str, into_dir: bool) -> None:
        """A heredoc source (`COPY <<EOF /path`)."""
        target = self._target(dest, doc.path, into_dir)
        self._replace(target, is_dir=False)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, doc.data.encode())
            os.fchown(fd, self.uid, self.gid)
            os.fchmod(fd, self.mode if self.mode is not None else doc.mode)
        finally:
            os.close(fd)

    def copy_tree(self, src_dir: Path, dest_dir: Path) -> None:
        """Copy the contents of `src_dir` into the existing directory `dest_dir` (never following
        symlinks below it); directory mtimes are restored after their contents are written."""
        dirs: list[tuple[Path, os.stat_result]] = []
        stack = [(str(src_dir), dest_dir)]
        while stack:
            src, dst = stack.pop()
            with os.scandir(src) as it:
                entries = sorted(it, key=lambda e: e.name)
            for e in entries:
                st = e.stat(follow_symlinks=False)
                target = dst / e.name
                if stat.S_ISDIR(st.st_mode):
                    self._make_dir(target, st)
                    dirs.append((target, st))
                    stack.append((e.path, target))
                else:
                    self._copy_entry(e.path, st, target)
        for target, st in reversed(dirs):
            os.utime(target, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)

    def _make_dir(self, target: Path, st: os.stat_result) -> None:
        try:
            cur = os.lstat(target)
        except FileNotFoundError:
            cur = None
        if cur is not None and not stat.S_ISDIR(cur.st_mode):
            self._replace(target, is_dir=True)
            cur = None
        if cur is None:
            os.mkdir(target, 0o700)
        os.chown(target, self.uid, self.gid, follow_symlinks=False)
        os.chmod(target, self.mode if self.mode is not None else stat.S_IMODE(st.st_mode),
                 follow_symlinks=False)

    def _copy_entry(self, src: str, st: os.stat_result, target: Path) -> None:
        if stat.S_ISREG(st.st_mode):
            self._copy_file(src, st, target)
        elif stat.S_ISLNK(st.st_mode):
            self._replace(target, is_dir=False)
            os.symlink(os.readlink(src), target)
            os.chown(target, self.uid, self.gid, follow_symlinks=False)
            os.utime(target, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)
        elif stat.S_ISFIFO(st.st_mode):
            self._replace(target, is_dir=False)
            os.mkfifo(target, stat.S_IMODE(st.st_mode))
            os.chown(target, self.uid, self.gid, follow_symlinks=False)
        # sockets and devices are not copied

    def _copy_file(self, src: str, st: os.stat_result, target: Path, *, mode: int | None = None) -> None:
        self._replace(target, is_dir=False)
        fd_in = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                _copy_fd(fd_in, fd, st.st_size)
                os.fchown(fd, self.uid, self.gid)
                want = self.mode if self.mode is not None else \
                    (mode if mode is not None else stat.S_IMODE(st.st_mode))
                os.fchmod(fd, want)
                os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(fd)
        finally:
            os.close(fd_in)

    def _replace(self, target: Path, *, is_dir: bool) -> None:
        """Remove what is at `target` (never following a symlink) unless both are directories."""
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if is_dir:
                return
            shutil.rmtree(target)
        else:
            os.unlink(target)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _copy_fd(fd_in: int, fd_out: int, size: int) -> None:
    """In-kernel copy (sendfile), falling back to read/write."""
    offset = 0
    try:
        while offset < size:
            n = os.sendfile(fd_out, fd_in, offset, min(size - offset, 1 << 30))
            if n == 0:
                break
            offset += n
        return
    except OSError:
        if offset:
            raise
    while chunk := os.read(fd_in, _CHUNK):
        _write_all(fd_out, chunk)
