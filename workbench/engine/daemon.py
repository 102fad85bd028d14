"""The composition root: config → stores → services → HTTP app; sockets, pidfile, signals, recovery.

Nothing else in the engine builds a store or a service. `main_start`, `main_stop` and `main_status`
back `workbench engine start|stop|status`; `python -m workbench.engine.daemon` runs the daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import http.client
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.engine.config import DEFAULT_HOST, DEFAULT_ROOT, DaemonConfig

log = logging.getLogger("workbench.daemon")


@dataclass
class Engine:
    """Everything the daemon built, for the HTTP layer and for tests that drive services directly."""

    config: DaemonConfig
    md: Any
    content: Any
    snapshots: Any
    images: Any
    image_io: Any
    runtime: Any
    containers: Any
    runner: Any
    networks: Any
    volumes: Any
    system: Any
    extra: dict[str, Any]


def build_engine(config: DaemonConfig) -> Engine:
    from workbench.engine.runtime import Runtime
    from workbench.engine.services.container_ops import ContainerRunner
    from workbench.engine.services.containers import ContainerService
    from workbench.engine.services.image_io import ImageIO
    from workbench.engine.services.images import ImageService
    from workbench.engine.services.system import SystemService
    from workbench.engine.store.content import ContentStore
    from workbench.engine.store.metadata import Metadata
    from workbench.engine.store.snapshots import OverlaySnapshotter

    config.ensure_dirs()
    md = Metadata(config.db_path)
    engine_id = md.get_kv("engine_id")
    if engine_id is None:
        engine_id = secrets.token_hex(16).upper()
        md.set_kv("engine_id", engine_id)
    content = ContentStore(config.content_dir)
    snapshots = OverlaySnapshotter(config.snapshots_dir)
    snapshots.recover()  # temp dirs a crash left behind
    images = ImageService(md, content, snapshots)
    image_io = ImageIO(images, config.tmp_dir)
    runtime = Runtime(config.run_dir / "runtime", config.runtime)
    containers = ContainerService(md, images, config.containers_dir)
    networks, volumes = _optional_network_services(config, md, containers)
    runner = ContainerRunner(containers, runtime=runtime, snapshots=snapshots, layers=image_io.layers,
                             networks=networks, volumes=volumes)
    extras: dict[str, Any] = {}
    if volumes is not None and hasattr(volumes, "df_entries"):
        extras["_volumes_df"] = volumes.df_entries
    system = SystemService(config, engine_id, images, containers, getattr(runtime, "name", "runc"))
    system.extras = {k: v for k, v in extras.items()}
    return Engine(config, md, content, snapshots, images, image_io, runtime, containers, runner, networks,
                  volumes, system, {})


def _optional_network_services(config: DaemonConfig, md: Any, containers: Any) -> tuple[Any, Any]:
    try:
        from workbench.engine.services.networks import NetworkService
        from workbench.engine.services.volumes import VolumeService
    except ImportError:
        return None, None
    volumes = VolumeService(md, config.volumes_dir, in_use=containers.volume_users)
    networks = NetworkService(md, config.run_dir, config.tag, containers=containers)
    return networks, volumes


def build_app(engine: Engine) -> Any:
    from workbench.engine.api import containers as api_containers
    from workbench.engine.api import images as api_images
    from workbench.engine.api import system as api_system
    from workbench.engine.api.app import make_app

    groups = [api_system.routes(engine.system),
              api_images.routes(engine.images, engine.image_io, engine.config.tmp_dir, runner=engine.runner,
                                **_registry_handlers(engine)),
              api_containers.routes(engine.containers, engine.runner)]
    groups += _optional_routes(engine)
    return make_app(groups)


def _registry_handlers(engine: Engine) -> dict[str, Any]:
    try:
        from workbench.engine.api import distribution
    except ImportError:
        return {}
    return distribution.handlers(engine)


def _optional_routes(engine: Engine) -> list[Any]:
    groups = []
    if engine.networks is not None:
        from workbench.engine.api import networks as api_networks
        from workbench.engine.api import volumes as api_volumes
        groups += [api_networks.routes(engine.networks), api_volumes.routes(engine.volumes)]
    for name in ("build", "exec", "archive", "distribution"):
        try:
            mod = __import__(f"workbench.engine.api.{name}", fromlist=["routes"])
        except ImportError:
            continue
        groups.append(mod.routes(engine))
    return groups


# Serving ----------------------------------------------------------------------------------------
async def serve(config: DaemonConfig, ready: asyncio.Event | None = None) -> None:
    from aiohttp import web

    lock = _lock_root(config)
    engine = build_engine(config)
    app = build_app(engine)
    from workbench.engine.registry.transport import warm_up
    warm_up()  # the TLS context pulls and pushes need, built while the daemon starts
    await engine.runner.recover()
    access = logging.getLogger("workbench.access") if os.environ.get("WORKBENCH_ACCESS_LOG") else None
    runner = web.AppRunner(app, handle_signals=False, access_log=access, shutdown_timeout=1.0)
    await runner.setup()
    sites = []
    for host in config.hosts:
        if host.startswith("unix://"):
            path = host.removeprefix("unix://")
            _prepare_socket(path)
            site = web.UnixSite(runner, path)
            await site.start()
            os.chmod(path, 0o660)
        elif host.startswith("tcp://"):
            h, _, p = host.removeprefix("tcp://").rpartition(":")
            site = web.TCPSite(runner, h or "127.0.0.1", int(p))
            await site.start()
        else:
            raise SystemExit(f"unsupported host {host!r}: use unix:///path or tcp://host:port")
        sites.append(site)
    registry_runner = await _start_registry(config)
    config.pidfile.write_text(str(os.getpid()))
    log.info("workbench engine ready on %s (root %s)", ", ".join(config.hosts), config.root)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("shutting down; containers keep running and are adopted on the next start")
        await engine.runner.shutdown()
        engine.runtime.close()
        if engine.networks is not None:
            engine.networks.close()  # kernel state stays: running containers keep their network
            _release_idle_netns_dir(config.run_dir / "netns")
        await runner.cleanup()
        if registry_runner is not None:
            await registry_runner.cleanup()
        for host in config.hosts:
            if host.startswith("unix://"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(host.removeprefix("unix://"))
        with contextlib.suppress(FileNotFoundError):
            config.pidfile.unlink()
        engine.md.close()
        lock.close()


def _release_idle_netns_dir(directory: Path) -> None:
    """With no container namespace left in it, the engine's netns dir mount goes too."""
    from workbench.engine.network.netns import release_dir
    with contextlib.suppress(OSError):
        if directory.is_dir() and not any(directory.iterdir()):
            release_dir(directory)


async def _start_registry(config: DaemonConfig) -> Any:
    if not config.registry_addr:
        return None
    from workbench.engine.registry import HtpasswdAuth, make_registry_app, start_registry
    from workbench.engine.registry.auth import Htpasswd
    from workbench.engine.registry.storage import RegistryStorage
    auth = HtpasswdAuth(Htpasswd(config.registry_htpasswd)) if config.registry_htpasswd else None
    app = make_registry_app(RegistryStorage(config.registry_dir), auth=auth)
    return await start_registry(app, config.registry_addr)


def _lock_root(config: DaemonConfig) -> Any:
    config.root.mkdir(parents=True, exist_ok=True)
    f = open(config.root / "engine.lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another workbench engine is already running on root {config.root}") from None
    return f


def _prepare_socket(path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if os.path.exists(path):
        if _ping(path):
            raise SystemExit(f"another daemon is already listening on {path}")
        os.unlink(path)


def _ping(path: str, timeout: float = 1.0) -> bool:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = s.recv(64)
        s.close()
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


# CLI entry points ---------------------------------------------------------------------------------
def _config(root: str | None, hosts: list[str] | None, registry: str | None = None,
            runtime: str | None = None, insecure: list[str] | None = None,
            registry_htpasswd: str | None = None) -> DaemonConfig:
    return DaemonConfig(root=Path(root or DEFAULT_ROOT), hosts=tuple(hosts or [DEFAULT_HOST]),
                        registry_addr=registry, runtime=runtime or os.environ.get("WORKBENCH_RUNTIME") or None,
                        insecure_registries=tuple(insecure or ()),
                        registry_htpasswd=str(Path(registry_htpasswd).resolve()) if registry_htpasswd else None)


def main_start(root: str | None = None, hosts: list[str] | None = None, registry: str | None = None,
               detach: bool = False, runtime: str | None = None, insecure: list[str] | None = None,
               registry_htpasswd: str | None = None) -> int:
    config = _config(root, hosts, registry, runtime, insecure, registry_htpasswd)
    if detach:
        return _start_detached(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(config))
    except SystemExit as err:
        print(err, file=sys.stderr)
        return 1
    return 0


def _start_detached(config: DaemonConfig) -> int:
    config.root.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "workbench.engine.daemon", "--root", str(config.root)]
    for h in config.hosts:
        argv += ["--host", h]
    if config.registry_addr:
        argv += ["--registry", config.registry_addr]
    if config.registry_htpasswd:
        argv += ["--registry-htpasswd", config.registry_htpasswd]
    if config.runtime:
        argv += ["--runtime", config.runtime]
    for entry in config.insecure_registries:
        argv += ["--insecure-registry", entry]
    with open(config.logfile, "ab") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True, close_fds=True)
    sock = config.unix_sockets()[0] if config.unix_sockets() else None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"engine failed to start; see {config.logfile}", file=sys.stderr)
            return 1
        if sock is None or _ping(sock, 0.5):
            print(f"engine started (pid {proc.pid}), root {config.root}, listening on "
                  f"{', '.join(config.hosts)}; log {config.logfile}")
            return 0
        time.sleep(0.05)
    print(f"engine did not answer within 30 s; see {config.logfile}", file=sys.stderr)
    return 1


def _read_pid(config: DaemonConfig) -> int | None:
    try:
        pid = int(config.pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _served_root(sock: str) -> str | None:
    """The root the engine on `sock` really uses (its /info DockerRootDir)."""
    import json
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(sock)
        s.sendall(b"GET /info HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        return json.loads(data.split(b"\r\n\r\n", 1)[1]).get("DockerRootDir")
    except (OSError, ValueError, IndexError):
        return None


def main_stop(root: str | None = None, timeout: float = 30.0) -> int:
    config = _config(root, None)
    pid = _read_pid(config)
    if pid is None:
        print("engine is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print(f"engine stopped (pid {pid})")
            return 0
        time.sleep(0.05)
    print(f"engine (pid {pid}) did not stop within {timeout:.0f} s", file=sys.stderr)
    return 1


def main_status(root: str | None = None, host: str | None = None) -> int:
    config = _config(root, [host] if host else None)
    host = host or os.environ.get("WORKBENCH_HOST") or config.hosts[0]
    pid = _read_pid(config)
    if host.startswith("unix://") and _ping(host.removeprefix("unix://")):
        served = _served_root(host.removeprefix("unix://")) or str(config.root)
        print(f"engine is running{f' (pid {pid})' if pid else ''} on {host}, root {served}")
        return 0
    if host.startswith("tcp://"):
        h, _, p = host.removeprefix("tcp://").rpartition(":")
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection(h, int(p), timeout=1)
            conn.request("GET", "/_ping")
            if conn.getresponse().status == 200:
                print(f"engine is running on {host}")
                return 0
    print(f"engine is not running on {host}")
    return 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workbench.engine.daemon")
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--host", action="append")
    p.add_argument("--registry")
    p.add_argument("--runtime", help="runc or crun (default: $WORKBENCH_RUNTIME, else runc)")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]|CIDR",
                   help="a registry to reach over plain HTTP (besides loopback); repeatable")
    p.add_argument("--registry-htpasswd", help="htpasswd file (bcrypt): Basic auth for the --registry")
    a = p.parse_args(argv)
    return main_start(a.root, a.host, a.registry, detach=False, runtime=a.runtime, insecure=a.insecure_registry,
                      registry_htpasswd=a.registry_htpasswd)


if __name__ == "__main__":
    sys.exit(main())
