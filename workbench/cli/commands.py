"""One function per verb: `(client, args) -> data`. Nothing here prints.

Each function takes the `Client` and the Namespace from `parser.parse` and returns records, lists of
them, or typed streams (progress events, log frames); `render.py` turns them into text and the
`%docker` magics into DataFrames and widgets. Verbs acting on several objects (`rm a b`) return one
`Outcome` per object, so one failure does not hide the others (docker's behaviour).
`COMMANDS` maps each canonical command name from the parser to its function.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

from workbench.cli import sessions, transfer
from workbench.cli.admin import ADMIN_COMMANDS
from workbench.client import Client
from workbench.client.images import split_reference
from workbench.errors import InvalidArgument, NotFound, WorkbenchError

__all__ = ["COMMANDS", "Outcome", "parse_filters", "timestamp"]

Args = argparse.Namespace


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one named object: `value` on success, `error` on failure."""

    target: str
    value: Any = None
    error: WorkbenchError | None = None


def _each(targets: Iterable[str], action: Callable[[str], Any]) -> list[Outcome]:
    out: list[Outcome] = []
    for target in targets:
        try:
            out.append(Outcome(target, action(target)))
        except WorkbenchError as err:
            out.append(Outcome(target, error=err))
    return out


def parse_filters(items: Iterable[str]) -> dict[str, list[str]]:
    """`["label=a=b", "status=exited"]` → `{"label": ["a=b"], "status": ["exited"]}`."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        out.setdefault(key.strip().lower(), []).append(value)
    return out


def _stdin(args: Args) -> BinaryIO:
    stdin = getattr(args, "stdin", None)
    if stdin is None:
        raise InvalidArgument("no standard input to read from")
    return stdin


# -- images --------------------------------------------------------------------------------------
def image_ls(client: Client, args: Args) -> list[Any]:
    return client.images.list(all=args.all, filters=parse_filters(args.filter), name=args.reference,
                              digests=args.digests)


def image_inspect(client: Client, args: Args) -> list[dict[str, Any]]:
    return _inspect_all(args.images, lambda n: client.images.inspect(n).attrs)


def image_history(client: Client, args: Args) -> list[Any]:
    return client.images.history(args.image)


def image_tag(client: Client, args: Args) -> None:
    client.images.tag(args.source, args.target)


def image_rm(client: Client, args: Args) -> list[Outcome]:
    return _each(args.images, lambda n: client.images.remove(n, force=args.force, noprune=args.no_prune))


def image_prune(client: Client, args: Args) -> Any:
    filters: dict[str, Any] = parse_filters(args.filter)
    if args.all:
        filters["dangling"] = ["false"]
    return client.images.prune(filters=filters)


def image_import(client: Client, args: Args) -> str:
    source: Any = _stdin(args) if args.file == "-" else args.file
    if args.file != "-" and not os.path.exists(args.file):
        raise InvalidArgument(f"open {args.file}: no such file or directory")
    return client.images.import_(source, repository=args.repository, changes=args.change,
                                 message=args.message, platform=args.platform)


def image_load(client: Client, args: Args) -> list[str]:
    return client.images.load(args.input if args.input else _stdin(args))


def image_save(client: Client, args: Args) -> Any:
    return client.images.save(args.images)


def image_pull(client: Client, args: Args) -> Any:
    return client.images.pull(_tagged(args), platform=args.platform, all_tags=args.all_tags)


def image_push(client: Client, args: Args) -> Any:
    return client.images.push(_tagged(args))


def _tagged(args: Args) -> str:
    """The reference as docker CLI 20.10+ sends it: a bare name means `:latest`; every tag only
    with `-a`, which refuses a tag."""
    tag = split_reference(args.reference)[1]
    if args.all_tags:
        if tag is not None:
            raise InvalidArgument("tag can't be used with --all-tags/-a")
        return str(args.reference)
    if tag is not None:
        return str(args.reference)
    if not args.quiet:
        print("Using default tag: latest", flush=True)
    return f"{args.reference}:latest"


def image_build(client: Client, args: Args) -> Any:
    return transfer.build(client, args)


def image_bootstrap(client: Client, args: Args) -> str:
    from workbench.cli.bootstrap import busybox_rootfs

    return client.images.import_(busybox_rootfs(args.busybox), repository=args.tag,
                                 changes=['CMD ["sh"]'], message="workbench image bootstrap busybox")


# -- containers ----------------------------------------------------------------------------------
def container_run(client: Client, args: Args) -> sessions.RunSession:
    return sessions.RunSession(client, args)


def container_create(client: Client, args: Args) -> Any:
    return sessions.create(client, args)


def container_start(client: Client, args: Args) -> Any:
    if args.attach or args.interactive:
        if len(args.containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        return sessions.StartSession(client, args)
    return _each(args.containers, client.containers.start)


def container_stop(client: Client, args: Args) -> list[Outcome]:
    if args.signal:
        return _each(args.containers, lambda c: client.containers.kill(c, args.signal))
    return _each(args.containers, lambda c: client.containers.stop(c, timeout=args.time))


def container_restart(client: Client, args: Args) -> list[Outcome]:
    return _each(args.containers, lambda c: client.containers.restart(c, timeout=args.time))


def container_kill(client: Client, args: Args) -> list[Outcome]:
    return _each(args.containers, lambda c: client.containers.kill(c, args.signal))


def container_pause(client: Client, args: Args) -> list[Outcome]:
    return _each(args.containers, client.containers.pause)


def container_unpause(client: Client, args: Args) -> list[Outcome]:
    return _each(args.containers, client.containers.unpause)


def container_wait(client: Client, args: Args) -> list[Outcome]:
    return _each(args.containers, lambda c: client.containers.wait(c))


def container_rm(client: Client, args: Args) -> list[Outcome]:
    return _each(args.containers, lambda c: client.containers.remove(c, force=args.force,
                                                                     volumes=args.volumes, link=args.link))


def container_ls(client: Client, args: Args) -> list[Any]:
    limit = args.last if args.last and args.last > 0 else None
    return client.containers.list(all=args.all or bool(limit) or args.latest, limit=limit,
                                  latest=args.latest, size=args.size, filters=parse_filters(args.filter))


def container_inspect(client: Client, args: Args) -> list[dict[str, Any]]:
    return _inspect_all(args.containers, lambda n: client.containers.inspect(n, size=args.size).attrs)


def container_logs(client: Client, args: Args) -> Any:
    return client.containers.stream_logs(args.container, follow=args.follow, timestamps=args.timestamps,
                                         tail=args.tail, since=timestamp(args.since),
                                         until=timestamp(args.until))


_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def timestamp(value: str | None, now: float | None = None) -> str | None:
    """docker's `--since`/`--until`: a Go duration (`42m`, `1h30m`) back from now, an RFC 3339 time or
    date, or Unix seconds, all sent as Unix seconds."""
    if not value:
        return None
    text = value.strip()
    if _DURATION.fullmatch(text) or (text and "".join(m.group(0) for m in _DURATION.finditer(text)) == text):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text))
        return f"{(time.time() if now is None else now) - seconds:.9f}"
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return text
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise InvalidArgument(f"invalid value for \"since\"/\"until\": {value!r}") from err
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return f"{parsed.timestamp():.9f}"


def container_rename(client: Client, args: Args) -> None:
    client.containers.rename(args.container, args.new_name)


def container_top(client: Client, args: Args) -> Any:
    return client.containers.top(args.container, " ".join(args.ps_args) or None)


def container_diff(client: Client, args: Args) -> list[Any]:
    return client.containers.changes(args.container)


def container_prune(client: Client, args: Args) -> Any:
    return client.containers.prune(filters=parse_filters(args.filter))


def container_export(client: Client, args: Args) -> Any:
    return client.containers.export(args.container)


def container_cp(client: Client, args: Args) -> Any:
    return transfer.copy(client, args)


def container_port(client: Client, args: Args) -> list[tuple[str, str]]:
    """`(container port, host address)` pairs, as `docker port` prints them."""
    ports = client.containers.inspect(args.container).ports
    want = args.private_port
    if want and "/" not in want:
        want += "/tcp"
    out: list[tuple[str, str]] = []
    for port, bindings in sorted(ports.items(), key=lambda kv: _port_order(kv[0])):
        if want and port != want:
            continue
        for b in bindings or ():
            ip = b.get("HostIp") or "0.0.0.0"
            out.append((port, f"[{ip}]:{b.get('HostPort')}" if ":" in ip else f"{ip}:{b.get('HostPort')}"))
    if want and not out:
        raise NotFound(f"No public port '{want}' published for {args.container}")
    return out


def _port_order(key: str) -> tuple[int, str]:
    num, _, proto = key.partition("/")
    return (int(num) if num.isdigit() else 0, proto)


def container_exec(client: Client, args: Args) -> Any:
    if not args.cmd:
        raise InvalidArgument("exec requires a command")
    return sessions.ExecSession(client, args)


def container_attach(client: Client, args: Args) -> Any:
    return sessions.AttachSession(client, args)


def container_commit(client: Client, args: Args) -> str:
    return client.containers.commit(args.container, args.repository, message=args.message,
                                    author=args.author, changes=args.change, pause=args.pause)


def inspect(client: Client, args: Args) -> list[dict[str, Any]]:
    """Containers, images, networks and volumes by name, tried in docker's order."""
    getters: dict[str, Callable[[str], dict[str, Any]]] = {
        "container": lambda n: client.containers.inspect(n, size=args.size).attrs,
        "image": lambda n: client.images.inspect(n).attrs,
        "network": lambda n: client.networks.inspect(n).attrs,
        "volume": lambda n: client.volumes.inspect(n).attrs,
    }
    kinds = [args.type] if args.type else list(getters)

    def one(name: str) -> dict[str, Any]:
        for kind in kinds:
            try:
                return getters[kind](name)
            except NotFound:
                continue
        raise NotFound(f"No such object: {name}")

    return _inspect_all(args.names, one)


def _inspect_all(names: Iterable[str], get: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Every found object; a missing one raises NotFound after the others (docker prints `[]` + error)."""
    found: list[dict[str, Any]] = []
    missing: list[WorkbenchError] = []
    for name in names:
        try:
            found.append(get(name))
        except NotFound as err:
            missing.append(err)
    if missing:
        raise PartialResult(found, missing)
    return found


class PartialResult(NotFound):
    """Some objects were found, some not: `found` still gets shown, then the errors."""

    def __init__(self, found: list[Any], errors: list[WorkbenchError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.found, self.errors = found, errors
        if errors and getattr(errors[0], "from_daemon", False):
            self.from_daemon = True


# -- system ---------------------------------------------------------------------------------------
def version(client: Client, args: Args) -> dict[str, Any]:
    import platform
    import sys

    from workbench import __version__
    from workbench.client import API_VERSION

    info: dict[str, Any] = {"Client": {"Version": __version__, "ApiVersion": API_VERSION,
                                       "PythonVersion": sys.version.split()[0], "Os": sys.platform,
                                       "Arch": platform.machine(), "Host": client.host.url}}
    try:
        info["Server"] = client.system.version().attrs
        info["Client"]["NegotiatedApiVersion"] = client.api_version
    except WorkbenchError as err:
        info["ServerError"] = err
    return info


def info(client: Client, args: Args) -> dict[str, Any]:
    return client.system.info()


def system_df(client: Client, args: Args) -> Any:
    return client.system.df()


def system_prune(client: Client, args: Args) -> dict[str, Any]:
    filters = parse_filters(args.filter)
    image_filters: dict[str, Any] = dict(filters)
    if args.all:
        image_filters["dangling"] = ["false"]
    out = {"containers": client.containers.prune(filters=filters),
           "networks": client.networks.prune(filters=filters)}
    if args.volumes:
        out["volumes"] = client.volumes.prune(filters=filters)
    out["images"] = client.images.prune(filters=image_filters)
    return out


def login(client: Client, args: Args) -> Any:
    username = args.username
    prompt = getattr(args, "prompt", None)
    if not username:
        if prompt is None:
            raise InvalidArgument("a username is required (-u)")
        username = prompt("Username: ", False)
    if args.password_stdin:
        if args.password:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
        password = _stdin(args).read().decode().rstrip("\r\n")
    elif args.password:
        password = args.password
    elif prompt is not None:
        password = prompt("Password: ", True)
    else:
        raise InvalidArgument("a password is required (-p or --password-stdin)")
    if not username or not password:
        raise InvalidArgument("Error: Cannot perform an interactive login without a username and password")
    return client.registry.login(username, password, args.server)


def logout(client: Client, args: Args) -> tuple[str, bool]:
    from workbench.client._config import registry_key

    return registry_key(args.server), client.registry.logout(args.server)


# -- networks and volumes --------------------------------------------------------------------------
def network_create(client: Client, args: Args) -> str:
    from workbench.client.networks import IPAMPool

    pools = [IPAMPool(subnet, args.gateway[i] if i < len(args.gateway) else None,
                      args.ip_range[i] if i < len(args.ip_range) else None)
             for i, subnet in enumerate(args.subnet)]
    if not args.subnet and args.gateway:
        raise InvalidArgument("every gateway needs a --subnet")
    return client.networks.create(args.name, driver=args.driver, ipam=pools, internal=args.internal,
                                  attachable=args.attachable, enable_ipv6=args.ipv6, labels=args.label,
                                  options=dict(o.partition("=")[::2] for o in args.opt))


def network_ls(client: Client, args: Args) -> list[Any]:
    return client.networks.list(filters=parse_filters(args.filter))


def network_inspect(client: Client, args: Args) -> list[dict[str, Any]]:
    return _inspect_all(args.networks, lambda n: client.networks.inspect(n, verbose=args.verbose).attrs)


def network_rm(client: Client, args: Args) -> list[Outcome]:
    return _each(args.networks, client.networks.remove)


def network_connect(client: Client, args: Args) -> None:
    client.networks.connect(args.network, args.container, aliases=args.alias, ipv4_address=args.ip)


def network_disconnect(client: Client, args: Args) -> None:
    client.networks.disconnect(args.network, args.container, force=args.force)


def network_prune(client: Client, args: Args) -> Any:
    return client.networks.prune(filters=parse_filters(args.filter))


def volume_create(client: Client, args: Args) -> Any:
    return client.volumes.create(args.name, driver=args.driver, labels=args.label,
                                 options=dict(o.partition("=")[::2] for o in args.opt))


def volume_ls(client: Client, args: Args) -> list[Any]:
    return client.volumes.list(filters=parse_filters(args.filter))


def volume_inspect(client: Client, args: Args) -> list[dict[str, Any]]:
    return _inspect_all(args.volumes, lambda n: client.volumes.inspect(n).attrs)


def volume_rm(client: Client, args: Args) -> list[Outcome]:
    return _each(args.volumes, lambda v: client.volumes.remove(v, force=args.force))


def volume_prune(client: Client, args: Args) -> Any:
    # At API 1.41 a prune removes every unused volume, named or anonymous, so `-a` changes nothing.
    return client.volumes.prune(filters=parse_filters(args.filter))


COMMANDS: dict[str, Callable[[Client, Args], Any]] = {
    "image_ls": image_ls, "image_inspect": image_inspect, "image_history": image_history,
    "image_tag": image_tag, "image_rm": image_rm, "image_prune": image_prune, "image_import": image_import,
    "image_load": image_load, "image_save": image_save, "image_pull": image_pull, "image_push": image_push,
    "image_build": image_build, "image_bootstrap": image_bootstrap, "container_run": container_run,
    "container_create": container_create, "container_start": container_start,
    "container_stop": container_stop, "container_restart": container_restart,
    "container_kill": container_kill, "container_pause": container_pause,
    "container_unpause": container_unpause, "container_wait": container_wait, "container_rm": container_rm,
    "container_ls": container_ls, "container_inspect": container_inspect, "container_logs": container_logs,
    "container_rename": container_rename, "container_top": container_top, "container_diff": container_diff,
    "container_prune": container_prune, "container_export": container_export, "container_cp": container_cp,
    "container_port": container_port, "container_exec": container_exec, "container_attach": container_attach,
    "container_commit": container_commit, "inspect": inspect, "version": version, "info": info,
    "system_df": system_df, "system_prune": system_prune, "login": login, "logout": logout,
    "network_create": network_create, "network_ls": network_ls, "network_inspect": network_inspect,
    "network_rm": network_rm, "network_connect": network_connect, "network_disconnect": network_disconnect,
    "network_prune": network_prune, "volume_create": volume_create, "volume_ls": volume_ls,
    "volume_inspect": volume_inspect, "volume_rm": volume_rm, "volume_prune": volume_prune,
    **ADMIN_COMMANDS,
}
