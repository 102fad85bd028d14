"""Published ports: parsing Docker's forms, reserving host ports, and the `NetworkSettings.Ports` view.

Forwarding itself is in-kernel DNAT (firewall.py). Here a host port is *reserved* by binding a
socket to it, as dockerd's port allocator does: a port some other program (or container) holds
fails at once with Docker's message instead of a silent, broken forward, and an ephemeral port
(`HostPort ""`/`-P`) is the one the kernel hands out for a bind to port 0.

Forms accepted by `parse_port_spec` (docker run -p): `80`, `8080:80`, `8080:80/udp`,
`127.0.0.1:8080:80`, `127.0.0.1::80`, `8080-8081:80-81`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.engine.network.firewall import PortMap
from workbench.errors import Internal, InvalidArgument

PortBindings = Mapping[str, list[dict[str, str]] | None]


@dataclass(frozen=True, slots=True)
class Binding:
    """One requested publication: container port/proto → host ip and port (0 = ephemeral)."""

    port: int
    proto: str
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0          # a range "8080-8085": try each


def split_key(key: str) -> tuple[int, str]:
    """"80/tcp" → (80, "tcp"); "80" → (80, "tcp")."""
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    try:
        n = int(port)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {port}") from None
    if not 0 < n < 65536:
        raise InvalidArgument(f"invalid containerPort: {port}")
    return n, proto


def _host_port(text: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    lo, _, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        raise InvalidArgument(f"invalid hostPort: {text}") from None
    if not (0 <= a < 65536 and 0 <= b < 65536 and a <= b):
        raise InvalidArgument(f"invalid hostPort: {text}")
    return a, (b if hi else 0)


def bindings_from(port_bindings: PortBindings | None, exposed: Iterable[str] = (),
                  publish_all: bool = False) -> list[Binding]:
    """HostConfig.PortBindings (+ ExposedPorts when PublishAllPorts) → Binding list."""
    out: list[Binding] = []
    seen: set[tuple[int, str]] = set()
    for key, hosts in (port_bindings or {}).items():
        port, proto = split_key(key)
        seen.add((port, proto))
        for h in hosts or [{}]:
            h = h or {}
            ip = (h.get("HostIp") or "").strip("[]")
            if ip:
                try:
                    if ipaddress.ip_address(ip).version != 4:
                        continue          # IPv6 host addresses: not supported, skipped as dockerd without ip6tables
                except ValueError:
                    raise InvalidArgument(f"invalid IP address: {ip}") from None
            a, b = _host_port(str(h.get("HostPort") or ""))
            out.append(Binding(port, proto, ip, a, b))
    if publish_all:
        for key in exposed:
            port, proto = split_key(key)
            if (port, proto) not in seen:
                out.append(Binding(port, proto))
    return out


def parse_port_spec(spec: str) -> list[tuple[str, dict[str, str]]]:
    """One `-p` value → [(PortBindings key, {"HostIp","HostPort"})], ranges expanded pairwise."""
    body, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    parts = _split_v6(body) if body.startswith("[") else body.rsplit(":", 2)
    if len(parts) == 1:
        ip, host, cport = "", "", parts[0]
    elif len(parts) == 2:
        ip, (host, cport) = "", parts
    else:
        ip, host, cport = parts
    if not cport:
        raise InvalidArgument(f"no port specified: {spec}<empty>")
    c_lo, c_hi = _host_port(cport)
    if c_lo == 0:
        raise InvalidArgument(f"invalid containerPort: {cport}")
    cports = list(range(c_lo, (c_hi or c_lo) + 1))
    h_lo, h_hi = _host_port(host)
    if host and h_hi and len(cports) > 1 and h_hi - h_lo + 1 != len(cports):
        raise InvalidArgument(f"invalid ranges specified for container and host Ports: {cport} and {host}")
    out = []
    for i, c in enumerate(cports):
        split_key(f"{c}/{proto}")
        hp = host if len(cports) == 1 else (str(h_lo + i) if host else "")
        out.append((f"{c}/{proto}", {"HostIp": ip.strip("[]"), "HostPort": hp}))
    return out


def _split_v6(body: str) -> list[str]:
    ip, _, rest = body.partition("]:")
    return [ip + "]", *rest.split(":", 1)]


@dataclass
class Reservation:
    """Sockets holding a container's host ports; `close()` releases them."""

    sockets: list[socket.socket] = field(default_factory=list)

    def close(self) -> None:
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()
        self.sockets.clear()


def _bind(proto: str, ip: str, port: int) -> socket.socket:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind((ip or "0.0.0.0", port))
    except BaseException:
        s.close()
        raise
    return s


def reserve(bindings: Iterable[Binding], ip: str, *, endpoint: str,
            reservation: Reservation) -> list[PortMap]:
    """Bind every host port (ephemeral ones chosen by the kernel) → PortMaps to `ip`.

    Sockets go into `reservation` as they are bound, so on error the caller closes it and
    nothing stays held. A clash raises Docker's 500 "... port is already allocated".
    """
    maps: list[PortMap] = []
    for b in bindings:
        if b.proto == "sctp":
            raise InvalidArgument("sctp ports cannot be published by this engine")
        candidates = range(b.host_port, (b.host_port_end or b.host_port) + 1)
        last_err: OSError | None = None
        for port in candidates:
            try:
                s = _bind(b.proto, b.host_ip, port)
            except OSError as err:
                last_err = err
                continue
            reservation.sockets.append(s)
            maps.append(PortMap(b.proto, b.host_ip, s.getsockname()[1], ip, b.port))
            break
        else:
            shown = f"{b.host_ip or '0.0.0.0'}:{b.host_port}"
            if last_err is not None and last_err.errno == errno.EADDRINUSE:
                raise Internal(f"driver failed programming external connectivity on endpoint {endpoint}: "
                               f"Bind for {shown} failed: port is already allocated") from last_err
            raise Internal(f"driver failed programming external connectivity on endpoint {endpoint}: "
                           f"Error starting userland proxy: listen {b.proto} {shown}: bind: "
                           f"{getattr(last_err, 'strerror', last_err)}") from last_err
    return maps


def rebind(maps: Iterable[PortMap], reservation: Reservation) -> None:
    """Re-reserve known host ports after a daemon restart (best effort: a taken port is skipped)."""
    for m in maps:
        with contextlib.suppress(OSError):
            reservation.sockets.append(_bind(m.proto, m.host_ip, m.host_port))


def ports_view(exposed: Iterable[str], maps: Iterable[PortMap],
               port_bindings: PortBindings | None = None) -> dict[str, Any]:
    """NetworkSettings.Ports: every exposed or bound port → [{"HostIp","HostPort"}] or None."""
    view: dict[str, Any] = {}
    for key in [*exposed, *(port_bindings or {})]:
        port, proto = split_key(key)
        view.setdefault(f"{port}/{proto}", None)
    for m in maps:
        entry = {"HostIp": m.host_ip or "0.0.0.0", "HostPort": str(m.host_port)}
        key = f"{m.port}/{m.proto}"
        if view.get(key) is None:
            view[key] = []
        view[key].append(entry)
    return view
