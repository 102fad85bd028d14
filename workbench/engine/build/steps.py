"""What COPY/ADD, WORKDIR and `RUN --mount` need beyond the plan (blocking; run in threads).

- `CopySources.collect` finds an instruction's sources (context or `--from` paths and globs, ADD
  URLs downloaded, heredocs) and hashes each as the history and the cache key show it.
- `do_copy` writes them into the mounted root with `copy.Copier`.
- `make_workdir` creates WORKDIR's directory when the image lacks it (then the step has a layer).
- `run_mounts` turns `RUN --mount` specs (BuildKit syntax) into runtime mounts: `bind` (from the
  context, a stage or an image; read-only), `cache` (a directory kept across builds) and `tmpfs`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.engine.build.context import Source, SourceTree
from workbench.engine.build.copy import Copier, Download, download, is_archive, is_url
from workbench.engine.build.plan import CopyAction, InlineFile, SourceEntry, source_hash
from workbench.engine.store.paths import mkdir_in, secure_join
from workbench.errors import BuildError, WorkbenchError

__all__ = ["CopySources", "do_copy", "make_workdir", "parse_mount", "run_mounts"]

Mount = tuple[str, str, str, list[str]]


@dataclass
class CopySources:
    """Everything one COPY/ADD copies, and the hash of each source in order."""

    sources: list[Source]
    downloads: list[Download]
    inline: tuple[InlineFile, ...]
    hashes: list[str]

    @classmethod
    def collect(cls, tree: SourceTree, action: CopyAction, scratch: Path) -> CopySources:
        cmd = action.cmd
        if action.excludes:
            raise BuildError(f"{cmd} --exclude is not supported by this builder")
        if action.parents:
            raise BuildError(f"{cmd} --parents is not supported by this builder")
        scratch.mkdir(parents=True, exist_ok=True)
        out = cls([], [], action.inline, [])
        for n, src in enumerate(action.sources):
            if is_url(src):
                if cmd != "ADD":
                    raise BuildError(f"source can't be a URL for {cmd}")
                dl = download(src, scratch / f"download-{n}", checksum=action.checksum)
                out.downloads.append(dl)
                out.hashes.append(source_hash([SourceEntry(dl.name, 0o100600, digest=dl.digest)],
                                              is_dir=False))
                continue
            if cmd == "ADD" and (src.startswith("git@") or src.endswith(".git")):
                raise BuildError(f"ADD of a git repository is not supported by this builder: {src}")
            if action.checksum and cmd == "ADD":
                raise BuildError("checksum can't be specified for non-HTTP(S) sources")
            for found in tree.find(src, cmd=cmd):
                out.sources.append(found)
                out.hashes.append(tree.source_hash(found))
        for doc in action.inline:
            digest = "sha256:" + hashlib.sha256(doc.data.encode()).hexdigest()
            out.hashes.append(source_hash([SourceEntry(doc.path, 0o100000 | doc.mode, digest=digest)],
                                          is_dir=False))
        return out


def do_copy(rootfs: Path, action: CopyAction, sources: CopySources) -> None:
    """Copy an instruction's sources into the mounted root `rootfs`.

    Raises:
        BuildError: Docker's destination and ownership errors, or the copy failing.
    """
    copier = Copier(rootfs, cmd=action.cmd, chown=action.chown, chmod=action.chmod)
    dest = action.dest_path
    count = len(sources.sources) + len(sources.downloads) + len(sources.inline)
    try:
        into_dir = copier.dest_is_dir(dest, count)
        for src in sources.sources:
            if action.cmd == "ADD" and not src.is_dir and is_archive(src.path):
                copier.add_archive(src.path, dest)
            else:
                copier.copy_source(src, dest, into_dir)
        for dl in sources.downloads:
            copier.add_download(dl, dest, into_dir)
        for doc in sources.inline:
            copier.write_inline(doc, dest, into_dir)
    except WorkbenchError:
        raise
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        raise BuildError(f"{action.cmd} failed: {err.strerror or err}{where}") from err


def make_workdir(rootfs: Path, path: str) -> bool:
    """Create WORKDIR's directory (owned by root) if missing; True when something was created."""
    target = secure_join(rootfs, path)
    if target.is_dir():
        return False
    if target.exists() or target.is_symlink():
        raise BuildError(f"mkdir {path}: not a directory")
    try:
        mkdir_in(rootfs, path)
    except OSError as err:
        raise BuildError(f"mkdir {path}: {err.strerror or err}") from err
    return True


def parse_mount(spec: str) -> dict[str, str]:
    """`type=bind,source=a,target=/b,ro` → {"type": "bind", "source": "a", "target": "/b", "ro": "true"}."""
    out: dict[str, str] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        key = {"src": "source", "dst": "target", "destination": "target", "readonly": "ro"}.get(key, key)
        out[key] = value.strip() if eq else "true"
    return out


def run_mounts(specs: Sequence[str], context: SourceTree, cache_root: Path,
               root_of: Callable[[str], Path]) -> list[Mount]:
    """Runtime mounts for `RUN --mount` specs.

    Args:
        root_of: the root directory of a `from=` stage or image (mounted read-only by the caller).

    Raises:
        BuildError: an unsupported type, a missing target, a source that does not exist.
    """
    mounts: list[Mount] = []
    for spec in specs:
        m = parse_mount(spec)
        kind = m.get("type", "bind")
        target = m.get("target", "")
        if not target:
            raise BuildError(f"--mount={spec}: target is required")
        if not target.startswith("/"):
            target = "/" + target
        if kind == "bind":
            root = root_of(m["from"]) if m.get("from") else context.root
            source = secure_join(root, m.get("source", "").lstrip("/"))
            if not source.exists():
                raise BuildError(f"--mount={spec}: source {m.get('source', '/')} does not exist")
            mounts.append((str(source), target, "bind", ["rbind", "ro"]))
        elif kind == "cache":
            ident = m.get("id") or target
            path = cache_root / hashlib.sha256(ident.encode()).hexdigest()[:32]
            path.mkdir(parents=True, exist_ok=True, mode=0o755)
            mounts.append((str(path), target, "bind", ["rbind", "ro" if m.get("ro") == "true" else "rw"]))
        elif kind == "tmpfs":
            opts = ["nosuid", "nodev", "mode=1777"]
            if m.get("size"):
                opts.append(f"size={m['size']}")
            mounts.append(("tmpfs", target, "tmpfs", opts))
        else:
            raise BuildError(f"RUN --mount=type={kind} is not supported by this builder")
    return mounts
