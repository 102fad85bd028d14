"""`docker run`/`create` flags → `ContainerSpec`: the one translation of the option syntax."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workbench.client import ContainerSpec, Mount, parse_publish
from workbench.errors import InvalidArgument

__all__ = ["read_env_file", "spec_from_args"]


def read_env_file(path: str) -> list[str]:
    """Docker's `--env-file`: `KEY=VALUE` lines, `#` comments; a bare `KEY` is dropped."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise InvalidArgument(f"open {path}: {err.strerror.lower() if err.strerror else err}") from err
    return [line.strip() for line in lines
            if line.strip() and not line.lstrip().startswith("#") and "=" in line]


def _ports(specs: list[str]) -> dict[str, Any]:
    ports: dict[str, Any] = {}
    for spec in specs:
        for key, binding in parse_publish(spec):
            existing = ports.get(key)
            if key not in ports:
                ports[key] = binding
            elif isinstance(existing, list):
                existing.append(binding)
            else:
                ports[key] = [existing, binding]
    return ports


def _expose(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        port, _, proto = item.partition("/")
        lo, _, hi = port.partition("-")
        try:
            rng = range(int(lo), int(hi or lo) + 1)
        except ValueError as err:
            raise InvalidArgument(f"invalid range format for --expose: {item}") from err
        out.extend(f"{p}/{proto or 'tcp'}" for p in rng)
    return out


def _ulimit(text: str) -> dict[str, Any]:
    name, _, values = text.partition("=")
    soft, _, hard = values.partition(":")
    try:
        return {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}
    except ValueError as err:
        raise InvalidArgument(f"invalid ulimit argument: {text}") from err


def _tmpfs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        path, _, opts = item.partition(":")
        out[path] = opts
    return out


def spec_from_args(args: argparse.Namespace, *, auto_remove: bool = False, detach: bool = True) -> ContainerSpec:
    """Build the container spec `run`/`create` flags describe.

    Args:
        auto_remove: `--rm`.
        detach: False when the CLI attaches to the container's output (`run` without `-d`).
    """
    env: list[str] = []
    for path in args.env_file:
        env.extend(read_env_file(path))
    env.extend(args.env)
    attach = {s.lower() for s in args.attach}
    attached = not detach
    interactive = args.interactive
    return ContainerSpec(
        image=args.image, command=list(args.cmd) or None,
        entrypoint=[args.entrypoint] if args.entrypoint else ([""] if args.entrypoint == "" else None),
        env=env or None, working_dir=args.workdir, user=args.user, hostname=args.hostname,
        labels=args.label or None, tty=args.tty, stdin_open=interactive,
        stdin_once=interactive and attached,
        attach_stdin=interactive and attached or "stdin" in attach,
        attach_stdout=attached or "stdout" in attach, attach_stderr=attached or "stderr" in attach,
        stop_signal=args.stop_signal, stop_timeout=args.stop_timeout,
        exposed_ports=_expose(args.expose), ports=_ports(args.publish) or None,
        publish_all_ports=args.publish_all, network=args.network, network_aliases=args.network_alias,
        ipv4_address=args.ip, extra_hosts=args.add_host or None, dns=args.dns, volumes=args.volume,
        mounts=[Mount.parse(m) for m in args.mount], tmpfs=_tmpfs(args.tmpfs) or None,
        read_only=args.read_only, memory=args.memory, memory_swap=_swap(args.memory_swap), cpus=args.cpus,
        cpu_shares=args.cpu_shares, cpuset_cpus=args.cpuset_cpus, pids_limit=args.pids_limit,
        shm_size=args.shm_size, ulimits=[_ulimit(u) for u in args.ulimit], auto_remove=auto_remove,
        restart_policy=args.restart, init=args.init, privileged=args.privileged, cap_add=args.cap_add,
        cap_drop=args.cap_drop, security_opt=args.security_opt,
        sysctls=dict(s.partition("=")[::2] for s in args.sysctl) or None, group_add=args.group_add,
        devices=args.device, ipc_mode=args.ipc, pid_mode=args.pid, runtime=args.runtime,
    )


def _swap(value: str | None) -> int | str | None:
    if value is None:
        return None
    return -1 if value.strip() == "-1" else value
