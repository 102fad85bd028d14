"""The registry as a server of its own: `workbench registry serve` (and `python -m
workbench.engine.registry.standalone`), with optional worker processes sharing the port, and the
listener the engine daemon starts for `--registry`. The application itself is `server.py`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

from aiohttp import web

from workbench.engine.registry.auth import Htpasswd, HtpasswdAuth, RegistryAuth, TokenAuth, load_secret
from workbench.engine.registry.server import make_registry_app
from workbench.engine.registry.storage import RegistryStorage
from workbench.errors import WorkbenchError

__all__ = ["main", "parse_addr", "serve", "start_registry"]


def parse_addr(addr: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `[::1]:PORT` → (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise WorkbenchError(f"invalid address {addr!r}: want HOST:PORT", status=400)
    return (host.strip("[]") or "0.0.0.0"), int(port)


async def start_registry(app: web.Application, addr: str, *, reuse_port: bool = False) -> web.AppRunner:
    """Start serving `app` (from make_registry_app) on `addr`; stop it with `await runner.cleanup()`.

    This is how the engine daemon runs the registry beside its Unix-socket API
    (`workbench engine start --registry 127.0.0.1:5000`).
    """
    host, port = parse_addr(addr)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def serve(root: str | os.PathLike[str], addr: str, htpasswd: str | os.PathLike[str] | None = None,
                read_only: bool = False, *, token_auth: bool = False, workers: int = 1,
                reuse_port: bool = False) -> None:
    """Serve the registry stored under `root` on `addr` until cancelled.

    Args:
        root: storage root directory (created if missing).
        addr: `HOST:PORT` to listen on.
        htpasswd: htpasswd file (bcrypt); Basic auth, or who may log in when `token_auth`.
        read_only: refuse writes (405 UNSUPPORTED).
        token_auth: Bearer tokens from this registry's `/token` endpoint instead of Basic auth.
        workers: processes sharing the port with SO_REUSEPORT (this one and workers-1 children).
    """
    storage = RegistryStorage(root)
    users = Htpasswd(htpasswd) if htpasswd else None
    auth: RegistryAuth | None = None
    if token_auth:
        auth = TokenAuth(load_secret(root), users=users)
    elif users is not None:
        auth = HtpasswdAuth(users)
    app = make_registry_app(storage, auth=auth, read_only=read_only)
    runner = await start_registry(app, addr, reuse_port=reuse_port or workers > 1)
    children: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(max(workers, 1) - 1):
            argv = ["-m", "workbench.engine.registry.standalone", "--root", str(root), "--addr", addr,
                    "--reuse-port"]
            argv += ["--htpasswd", str(htpasswd)] if htpasswd else []
            argv += ["--read-only"] if read_only else []
            argv += ["--token"] if token_auth else []
            children.append(await asyncio.create_subprocess_exec(sys.executable, *argv))
        await asyncio.Event().wait()
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
        for child in children:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(child.wait(), 5)
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """`python -m workbench.engine.registry.standalone --root DIR --addr HOST:PORT [...]`."""
    import argparse
    p = argparse.ArgumentParser(prog="workbench-registry")
    p.add_argument("--root", required=True)
    p.add_argument("--addr", default="127.0.0.1:5000")
    p.add_argument("--htpasswd")
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--token", action="store_true")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--reuse-port", action="store_true")
    a = p.parse_args(argv)

    async def run() -> None:
        task = asyncio.ensure_future(serve(a.root, a.addr, a.htpasswd, a.read_only, token_auth=a.token,
                                           workers=a.workers, reuse_port=a.reuse_port))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
