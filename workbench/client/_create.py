"""`ContainerSpec`: everything `POST /containers/create` takes, typed, with one `to_wire()`.

Field names follow docker-py's keyword arguments (and so docker's `run` options):
`env`, `working_dir`, `ports`, `volumes`, `mounts`, `memory`, `cpus`, `pids_limit`, `restart_policy`,
`network`, `network_aliases` ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.client._specs import Mount, PortSpec, RestartPolicy, env_list, label_map, port_bindings
from workbench.errors import InvalidArgument

__all__ = ["ContainerSpec"]

_SPECIAL_NETWORKS = ("host", "none", "default", "bridge")


def _argv(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        import shlex

        return shlex.split(value)
    return list(value)


def _bytes(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    from workbench.oci.units import parse_bytes

    try:
        return parse_bytes(value)
    except ValueError as err:
        raise InvalidArgument(f"invalid size: '{value}'") from err


@dataclass(frozen=True, kw_only=True)
class ContainerSpec:
    """The options of one container, as `docker run` knows them. Only `image` is required."""

    image: str
    command: str | Sequence[str] | None = None
    entrypoint: str | Sequence[str] | None = None
    env: Mapping[str, str] | Sequence[str] | None = None
    working_dir: str | None = None
    user: str | None = None
    hostname: str | None = None
    domainname: str | None = None
    labels: Mapping[str, str] | Sequence[str] | None = None
    tty: bool = False
    stdin_open: bool = False
    stdin_once: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    stop_signal: str | None = None
    stop_timeout: int | None = None
    healthcheck: Mapping[str, Any] | None = None
    # ports and networks
    exposed_ports: Sequence[str | int] = ()
    ports: Mapping[str | int, PortSpec] | None = None
    publish_all_ports: bool = False
    network: str | None = None
    network_aliases: Sequence[str] = ()
    ipv4_address: str | None = None
    extra_hosts: Mapping[str, str] | Sequence[str] | None = None
    dns: Sequence[str] = ()
    dns_search: Sequence[str] = ()
    dns_options: Sequence[str] = ()
    # storage
    volumes: Sequence[str] = ()
    mounts: Sequence[Mount] = ()
    tmpfs: Mapping[str, str] | None = None
    volumes_from: Sequence[str] = ()
    read_only: bool = False
    # resources
    memory: int | str | None = None
    memory_swap: int | str | None = None
    memory_reservation: int | str | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None
    shm_size: int | str | None = None
    ulimits: Sequence[Mapping[str, Any]] = ()
    # lifecycle and security
    auto_remove: bool = False
    restart_policy: RestartPolicy | str | None = None
    init: bool | None = None
    privileged: bool = False
    cap_add: Sequence[str] = ()
    cap_drop: Sequence[str] = ()
    security_opt: Sequence[str] = ()
    sysctls: Mapping[str, str] | None = None
    group_add: Sequence[str] = ()
    devices: Sequence[str] = ()
    ipc_mode: str | None = None
    pid_mode: str | None = None
    userns_mode: str | None = None
    runtime: str | None = None
    log_config: Mapping[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        """The create body: Config fields, `HostConfig` and `NetworkingConfig`."""
        binds, anonymous = self._binds()
        exposed = {str(p) if "/" in str(p) else f"{p}/tcp": {} for p in self.exposed_ports}
        bindings = port_bindings(self.ports) if self.ports else {}
        exposed.update({key: {} for key in bindings})
        body: dict[str, Any] = {
            "Image": self.image, "Cmd": _argv(self.command), "Entrypoint": _argv(self.entrypoint),
            "Env": env_list(self.env), "WorkingDir": self.working_dir or "", "User": self.user or "",
            "Hostname": self.hostname or "", "Domainname": self.domainname or "",
            "Labels": label_map(self.labels) or {}, "Tty": self.tty, "OpenStdin": self.stdin_open,
            "StdinOnce": self.stdin_once, "AttachStdin": self.attach_stdin,
            "AttachStdout": self.attach_stdout, "AttachStderr": self.attach_stderr,
            "ExposedPorts": exposed or None, "Volumes": {p: {} for p in anonymous} or None,
        }
        if self.stop_signal:
            body["StopSignal"] = self.stop_signal
        if self.stop_timeout is not None:
            body["StopTimeout"] = self.stop_timeout
        if self.healthcheck:
            body["Healthcheck"] = dict(self.healthcheck)
        body["HostConfig"] = self._host_config(binds, bindings)
        body["NetworkingConfig"] = self._networking_config()
        return body

    def _binds(self) -> tuple[list[str], list[str]]:
        """Split `-v` values: `src:dst[:opts]` are binds, a bare `/path` is an anonymous volume."""
        binds: list[str] = []
        anonymous: list[str] = []
        for item in self.volumes:
            if ":" in item:
                binds.append(item)
            elif item.startswith("/"):
                anonymous.append(item)
            else:
                raise InvalidArgument(f"invalid volume specification: '{item}'")
        return binds, anonymous

    def _host_config(self, binds: list[str], bindings: dict[str, Any]) -> dict[str, Any]:
        restart = self.restart_policy
        if isinstance(restart, str):
            restart = RestartPolicy.parse(restart)
        host: dict[str, Any] = {
            "Binds": binds or None, "Mounts": [m.to_wire() for m in self.mounts] or None,
            "PortBindings": bindings or None, "PublishAllPorts": self.publish_all_ports,
            "NetworkMode": self.network or "default", "AutoRemove": self.auto_remove,
            "RestartPolicy": (restart or RestartPolicy()).to_wire(), "Privileged": self.privileged,
            "ReadonlyRootfs": self.read_only, "CapAdd": list(self.cap_add) or None,
            "CapDrop": list(self.cap_drop) or None, "SecurityOpt": list(self.security_opt) or None,
            "Dns": list(self.dns) or None, "DnsSearch": list(self.dns_search) or None,
            "DnsOptions": list(self.dns_options) or None, "VolumesFrom": list(self.volumes_from) or None,
            "GroupAdd": list(self.group_add) or None, "Init": self.init,
            "Memory": _bytes(self.memory) or 0, "NanoCpus": round(self.cpus * 1e9) if self.cpus else 0,
            "PidsLimit": self.pids_limit, "CpuShares": self.cpu_shares or 0,
            "CpusetCpus": self.cpuset_cpus or "",
        }
        for key, value in (("MemorySwap", self.memory_swap), ("MemoryReservation", self.memory_reservation),
                           ("ShmSize", self.shm_size)):
            if value is not None:
                host[key] = _bytes(value)
        if self.extra_hosts is not None:
            host["ExtraHosts"] = ([f"{k}:{v}" for k, v in self.extra_hosts.items()]
                                  if isinstance(self.extra_hosts, Mapping) else list(self.extra_hosts))
        if self.tmpfs:
            host["Tmpfs"] = dict(self.tmpfs)
        if self.sysctls:
            host["Sysctls"] = dict(self.sysctls)
        if self.ulimits:
            host["Ulimits"] = [dict(u) for u in self.ulimits]
        if self.devices:
            host["Devices"] = [_device(d) for d in self.devices]
        for key, value in (("IpcMode", self.ipc_mode), ("PidMode", self.pid_mode),
                           ("UsernsMode", self.userns_mode), ("Runtime", self.runtime)):
            if value:
                host[key] = value
        if self.log_config:
            host["LogConfig"] = dict(self.log_config)
        return host

    def _networking_config(self) -> dict[str, Any] | None:
        network = self.network
        if not network or network in ("host", "none") or network.startswith("container:"):
            if self.network_aliases or self.ipv4_address:
                raise InvalidArgument("network-scoped aliases and addresses are only supported for "
                                      "user-defined networks")
            return None
        endpoint: dict[str, Any] = {}
        if self.network_aliases:
            if network in _SPECIAL_NETWORKS:
                raise InvalidArgument("network-scoped aliases are only supported for user-defined networks")
            endpoint["Aliases"] = list(self.network_aliases)
        if self.ipv4_address:
            endpoint["IPAMConfig"] = {"IPv4Address": self.ipv4_address}
        return {"EndpointsConfig": {network: endpoint}}


def _device(spec: str) -> dict[str, str]:
    parts = spec.split(":")
    host = parts[0]
    inner = parts[1] if len(parts) > 1 and parts[1] else host
    perms = parts[2] if len(parts) > 2 else "rwm"
    return {"PathOnHost": host, "PathInContainer": inner, "CgroupPermissions": perms}
