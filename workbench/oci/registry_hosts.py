"""Which registries are this machine, and which the daemon treats as insecure: the host rules
dockerd applies to `host[:port]` domains and to `--insecure-registry` entries (host, host:port or
CIDR). Shared by the engine's registry client, `/info`, and the client's `registry ls`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["host_of", "is_insecure", "is_loopback", "registry_entry"]


def host_of(domain: str) -> str:
    """The host of `host[:port]` (`[v6]:port` and bare IPv6 included)."""
    if domain.startswith("["):
        return domain[1:].split("]", 1)[0]
    if domain.count(":") == 1:
        return domain.split(":", 1)[0]
    return domain


def is_loopback(domain: str) -> bool:
    """Whether `host[:port]` names this machine (127.0.0.0/8, ::1, localhost)."""
    host = host_of(domain)
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_entry(text: str) -> str:
    """An `--insecure-registry` entry as written in config: no scheme, no trailing slash."""
    return text.strip().removeprefix("http://").removeprefix("https://").rstrip("/")


def is_insecure(domain: str, entries: Iterable[str]) -> bool:
    """Whether `domain` is one of `entries`: the same host[:port], its host, or an address in a CIDR."""
    host = host_of(domain)
    for entry in map(registry_entry, entries):
        if entry in (domain, host):
            return True
        if "/" in entry:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False
