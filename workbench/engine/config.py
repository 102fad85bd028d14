"""Daemon configuration and the paths under its root."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ROOT = "/var/lib/workbench"
DEFAULT_SOCKET = "/run/workbench/engine.sock"
DEFAULT_HOST = "unix://" + DEFAULT_SOCKET


@dataclass(frozen=True)
class DaemonConfig:
    root: Path = Path(DEFAULT_ROOT)
    hosts: tuple[str, ...] = (DEFAULT_HOST,)
    registry_addr: str | None = None
    registry_htpasswd: str | None = None   # Basic auth for the registry the daemon serves
    runtime: str | None = None           # "runc" / "crun" / None = pick
    insecure_registries: tuple[str, ...] = ()
    log_level: str = "info"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """Short per-root tag: keeps names of host-global objects (bridges, cgroups) distinct per daemon."""
        return hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:6]

    # Paths -----------------------------------------------------------------------------------
    @property
    def content_dir(self) -> Path:
        return self.root / "content"

    @property
    def db_path(self) -> Path:
        return self.root / "metadata.db"

    @property
    def snapshots_dir(self) -> Path:
        return self.root / "snapshots"

    @property
    def containers_dir(self) -> Path:
        return self.root / "containers"

    @property
    def volumes_dir(self) -> Path:
        return self.root / "volumes"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def run_dir(self) -> Path:
        """Runtime state that must not outlive a reboot (runc state, netns) — still under root so
        that two daemons on two roots never share it."""
        return self.root / "run"

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    @property
    def pidfile(self) -> Path:
        return self.root / "engine.pid"

    @property
    def logfile(self) -> Path:
        return self.root / "engine.log"

    def unix_sockets(self) -> list[str]:
        return [h.removeprefix("unix://") for h in self.hosts if h.startswith("unix://")]

    def ensure_dirs(self) -> None:
        for d in (self.root, self.content_dir, self.snapshots_dir, self.containers_dir,
                  self.volumes_dir, self.tmp_dir, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
