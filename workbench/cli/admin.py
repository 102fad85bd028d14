"""CLI commands that run the engine's parts themselves: `registry ls|serve|gc`, `engine start|stop|status`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from workbench.client import Client

__all__ = ["ADMIN_COMMANDS"]

Args = argparse.Namespace


def registry_ls(client: Client, args: Args) -> list[str]:
    """Repositories of `REGISTRY`, or the tags of `REGISTRY/REPOSITORY`."""
    registry, _, repository = args.location.partition("/")
    if repository:
        return client.registry.tags(registry, repository, n=args.limit, last=args.last)
    return client.registry.catalog(registry, n=args.limit, last=args.last)


def registry_serve(client: Client, args: Args) -> int:
    import asyncio

    from workbench.engine.registry import serve

    asyncio.run(serve(args.root, args.addr, htpasswd=args.htpasswd, read_only=args.read_only,
                      token_auth=args.token, workers=args.workers))
    return 0


def registry_gc(client: Client, args: Args) -> Any:
    from workbench.engine.registry.gc import gc

    return gc(args.root, dry_run=args.dry_run)


def engine_start(client: Client, args: Args) -> int:
    from workbench.engine.daemon import main_start

    hosts = args.listen or [args.host or os.environ.get("WORKBENCH_HOST") or client.host.url]
    return main_start(args.root, hosts, args.registry, args.detach, insecure=args.insecure_registry,
                      registry_htpasswd=args.registry_htpasswd)


def engine_stop(client: Client, args: Args) -> int:
    from workbench.engine.daemon import main_stop

    return main_stop(args.root)


def engine_status(client: Client, args: Args) -> int:
    from workbench.engine.daemon import main_status

    return main_status(args.root, args.host or client.host.url)


ADMIN_COMMANDS: dict[str, Callable[[Client, Args], Any]] = {
    "registry_ls": registry_ls, "registry_serve": registry_serve, "registry_gc": registry_gc,
    "engine_start": engine_start, "engine_stop": engine_stop, "engine_status": engine_status,
}
