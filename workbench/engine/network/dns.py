"""Name resolution for containers: /etc/hosts, /etc/resolv.conf and /etc/hostname contents.

On a user-defined network every container finds its peers by container name, by network alias and
by short ID, as with Docker's embedded DNS. The engine does it with /etc/hosts: each container's
hosts file (bind-mounted from its container directory) lists the peers on all its user networks and
is rewritten *in place* (same inode, so the bind mount sees it) whenever a peer joins or leaves.
The host's static busybox (Debian busybox-static, glibc 2.36 with the `files` NSS backend built in)
resolves these names through getaddrinfo: `ping`, `wget`, `nc` work; `nslookup` (which speaks DNS
only) does not. The default `bridge` network has no name resolution, as in Docker.

resolv.conf is the host's with loopback nameservers removed (they mean nothing inside a container
namespace); when none remain, Docker's fallback 8.8.8.8/8.8.4.4 is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

BASE_HOSTS = ("127.0.0.1\tlocalhost\n"
              "::1\tlocalhost ip6-localhost ip6-loopback\n"
              "fe00::0\tip6-localnet\n"
              "ff00::0\tip6-mcastprefix\n"
              "ff02::1\tip6-allnodes\n"
              "ff02::2\tip6-allrouters\n")

FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")


@dataclass(frozen=True, slots=True)
class HostEntry:
    ip: str
    names: tuple[str, ...]


def own_names(hostname: str, domainname: str = "") -> tuple[str, ...]:
    return (f"{hostname}.{domainname}", hostname) if domainname else (hostname,)


def hosts_file(own: Sequence[HostEntry], peers: Iterable[HostEntry] = (),
               extra_hosts: Iterable[str] = ()) -> str:
    """The text of one container's /etc/hosts: base entries, ExtraHosts ("name:ip"), itself, peers."""
    lines = [BASE_HOSTS]
    for entry in extra_hosts:
        name, _, ip = entry.partition(":")
        if name and ip:
            lines.append(f"{ip}\t{name}\n")
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for e in [*own, *peers]:
        key = (e.ip, e.names)
        if e.names and key not in seen:
            seen.add(key)
            lines.append(f"{e.ip}\t{' '.join(e.names)}\n")
    return "".join(lines)


def resolv_conf(host_file: Path = Path("/etc/resolv.conf"), dns: Sequence[str] = (),
                search: Sequence[str] = (), options: Sequence[str] = ()) -> str:
    """The text of a container's /etc/resolv.conf (HostConfig.Dns/DnsSearch/DnsOptions win)."""
    try:
        lines = host_file.read_text().splitlines()
    except OSError:
        lines = []
    servers = list(dns) or [ln.split()[1] for ln in lines
                            if ln.startswith("nameserver") and len(ln.split()) > 1
                            and not ln.split()[1].startswith(("127.", "::1"))]
    host_search = [ln for ln in lines if ln.startswith(("search", "domain"))]
    host_opts = [ln for ln in lines if ln.startswith("options")]
    out = [f"nameserver {s}" for s in (servers or FALLBACK_NAMESERVERS)]
    out += [f"search {' '.join(search)}"] if search else host_search
    out += [f"options {' '.join(options)}"] if options else host_opts
    return "\n".join(out) + "\n"


def write_in_place(path: Path, text: str) -> None:
    """Replace a file's content keeping its inode (a bind mount of it stays valid).

    Not atomic by nature: a reader may see a short file for an instant, as with dockerd's own
    rewrite of /etc/hosts on `network connect`.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        data = text.encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)
