"""Typed pieces of a container's create request, each with an explicit `to_wire()`.

Also the pure parsers for docker's option syntax (`-p`, `--mount`, `--restart`, `-e`), shared by the
CLI and the `%docker` magics so there is one reading of each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.errors import InvalidArgument

__all__ = [
    "Mount", "PortSpec", "RestartPolicy", "env_list", "label_map", "parse_publish", "port_bindings",
]

#: Where a container port is published: None (an ephemeral port), a host port, `(ip, port)`,
#: `(ip,)` (ephemeral port on one address), or a list of those.
PortSpec = None | int | str | tuple[str] | tuple[str, int | str | None] | list[Any]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """`no`, `always`, `unless-stopped`, or `on-failure` with an optional retry limit."""

    name: str = "no"
    maximum_retry_count: int = 0

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """Read docker's `--restart` value: `no`, `always`, `unless-stopped`, `on-failure[:N]`."""
        name, _, count = text.partition(":")
        if name not in ("no", "always", "unless-stopped", "on-failure", ""):
            raise InvalidArgument(f"invalid restart policy '{text}'")
        if count and name != "on-failure":
            raise InvalidArgument(f"invalid restart policy '{text}': maximum retry count can only "
                                  "be used with 'on-failure'")
        try:
            retries = int(count) if count else 0
        except ValueError as err:
            raise InvalidArgument(f"invalid restart policy '{text}': bad retry count") from err
        return cls(name or "no", retries)

    def to_wire(self) -> dict[str, Any]:
        return {"Name": "" if self.name == "no" else self.name, "MaximumRetryCount": self.maximum_retry_count}


@dataclass(frozen=True, slots=True)
class Mount:
    """A `HostConfig.Mounts` entry: a named or anonymous volume, a bind of a host path, or a tmpfs."""

    target: str
    source: str = ""
    type: str = "volume"
    read_only: bool = False
    propagation: str | None = None
    no_copy: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Type": self.type, "Target": self.target, "ReadOnly": self.read_only}
        if self.source:
            out["Source"] = self.source
        if self.type == "bind" and self.propagation:
            out["BindOptions"] = {"Propagation": self.propagation}
        if self.type == "volume" and (self.no_copy or self.labels):
            out["VolumeOptions"] = {"NoCopy": self.no_copy, "Labels": dict(self.labels)}
        if self.type == "tmpfs" and (self.tmpfs_size is not None or self.tmpfs_mode is not None):
            tmpfs: dict[str, int] = {}
            if self.tmpfs_size is not None:
                tmpfs["SizeBytes"] = self.tmpfs_size
            if self.tmpfs_mode is not None:
                tmpfs["Mode"] = self.tmpfs_mode
            out["TmpfsOptions"] = tmpfs
        return out

    @classmethod
    def parse(cls, spec: str) -> Mount:
        """Read docker's `--mount type=volume,source=v,target=/data,readonly` syntax."""
        fields: dict[str, Any] = {"type": "volume"}
        labels: list[tuple[str, str]] = []
        for item in (p.strip() for p in spec.split(",") if p.strip()):
            key, eq, value = item.partition("=")
            key = key.lower()
            if key in ("readonly", "ro"):
                fields["read_only"] = not eq or value.lower() in ("1", "true")
            elif key == "type":
                if value not in ("volume", "bind", "tmpfs"):
                    raise InvalidArgument(f"invalid mount type '{value}'")
                fields["type"] = value
            elif key in ("source", "src"):
                fields["source"] = value
            elif key in ("target", "destination", "dst"):
                fields["target"] = value
            elif key == "bind-propagation":
                fields["propagation"] = value
            elif key == "volume-nocopy":
                fields["no_copy"] = not eq or value.lower() in ("1", "true")
            elif key == "volume-label":
                k, _, v = value.partition("=")
                labels.append((k, v))
            elif key == "tmpfs-size":
                from workbench.oci.units import parse_bytes

                fields["tmpfs_size"] = parse_bytes(value)
            elif key == "tmpfs-mode":
                fields["tmpfs_mode"] = int(value, 8)
            elif key == "consistency":
                continue
            else:
                raise InvalidArgument(f"unexpected key '{key}' in '{spec}'")
        if "target" not in fields:
            raise InvalidArgument("target is required")
        return cls(labels=tuple(labels), **fields)


def _port_key(port: str | int) -> str:
    text = str(port)
    return text if "/" in text else text + "/tcp"


def port_bindings(ports: Mapping[str | int, PortSpec]) -> dict[str, list[dict[str, str]]]:
    """docker-py's `ports` shape → `HostConfig.PortBindings`."""
    out: dict[str, list[dict[str, str]]] = {}
    for port, spec in ports.items():
        specs = spec if isinstance(spec, list) else [spec]
        bindings = out.setdefault(_port_key(port), [])
        for one in specs:
            if one is None:
                bindings.append({"HostIp": "", "HostPort": ""})
            elif isinstance(one, tuple):
                ip = one[0]
                host_port = one[1] if len(one) > 1 else None
                bindings.append({"HostIp": ip, "HostPort": "" if host_port is None else str(host_port)})
            else:
                bindings.append({"HostIp": "", "HostPort": str(one)})
    return out


def parse_publish(spec: str) -> list[tuple[str, PortSpec]]:
    """Read docker's `-p` syntax into `(container_port/proto, binding)` pairs.

    `8080:80`, `127.0.0.1:8080:80/udp`, `127.0.0.1::80`, `80` (ephemeral host port),
    `[::1]:8080:80`, and ranges `8000-8001:80-81`.
    """
    rest, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    ip = ""
    if rest.startswith("["):
        close = rest.find("]")
        ip, rest = rest[1:close], rest[close + 2:]
    parts = rest.split(":")
    if len(parts) == 3:
        ip, host, container = parts
    elif len(parts) == 2:
        host, container = parts
    elif len(parts) == 1:
        host, container = "", parts[0]
    else:
        raise InvalidArgument(f"invalid port format: '{spec}'")
    c_ports = _port_range(container, spec)
    h_ports: list[str] = [str(p) for p in _port_range(host, spec)] if host else [""] * len(c_ports)
    if len(h_ports) == 1 and len(c_ports) > 1:
        h_ports = h_ports * len(c_ports)
    if len(h_ports) != len(c_ports):
        raise InvalidArgument(f"invalid ranges specified for container and host Ports: '{spec}'")
    out: list[tuple[str, PortSpec]] = []
    for c, h in zip(c_ports, h_ports, strict=True):
        binding: PortSpec = (ip, h or None) if ip else (int(h) if h else None)
        out.append((f"{c}/{proto}", binding))
    return out


def _port_range(text: str, spec: str) -> list[int]:
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            if hi < lo:
                raise ValueError
            return list(range(lo, hi + 1))
        port = int(text)
    except ValueError as err:
        raise InvalidArgument(f"invalid port format: '{spec}'") from err
    if not 0 <= port <= 65535:
        raise InvalidArgument(f"invalid port: {port}")
    return [port]


def env_list(env: Mapping[str, str] | Sequence[str] | None) -> list[str] | None:
    """`{"A": "1"}` or `["A=1"]` → `["A=1"]`."""
    if env is None:
        return None
    if isinstance(env, Mapping):
        return [f"{k}={v}" for k, v in env.items()]
    return list(env)


def label_map(labels: Mapping[str, str] | Sequence[str] | None) -> dict[str, str] | None:
    """`["a=b", "c"]` or a dict → `{"a": "b", "c": ""}`."""
    if labels is None:
        return None
    if isinstance(labels, Mapping):
        return dict(labels)
    out: dict[str, str] = {}
    for item in labels:
        key, _, value = item.partition("=")
        out[key] = value
    return out
