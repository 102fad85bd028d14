"""nftables rules for one engine: isolation between networks, Internal networks, masquerade, DNAT.

Everything lives in one table, `ip wb_<tag>`, so an engine only ever touches its own rules and
removing that table removes them all. The table is rebuilt atomically (`nft -f`: add, delete, add in
one transaction) when networks change; published ports are elements of four maps, added and
removed one by one as containers start and stop, so no rule changes per container:

  pub_tcp / pub_udp         host port                 → container ip . port   (host IP 0.0.0.0)
  pubip_tcp / pubip_udp     host ip . host port       → container ip . port   (a given host IP)

Locally generated connections (the host's own `curl 127.0.0.1:8080`) are DNAT'd in `output`; they
keep their 127.0.0.1 source, which is why each bridge has `route_localnet=1` and the loopback
sources are masqueraded on the way out to a bridge. pyroute2's nftables support cannot express
maps with concatenations, so this module drives the `nft` binary (package nftables).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from workbench.errors import Internal

PROTOS = ("tcp", "udp")


@dataclass(frozen=True, slots=True)
class BridgeRules:
    bridge: str
    subnet: str
    internal: bool = False
    masquerade: bool = True


@dataclass(frozen=True, slots=True)
class PortMap:
    """One published port: host_ip "" (or 0.0.0.0) means every local address."""

    proto: str
    host_ip: str
    host_port: int
    ip: str
    port: int

    def element(self) -> tuple[str, str]:
        """(map name, element text)."""
        if self.host_ip in ("", "0.0.0.0"):
            return f"pub_{self.proto}", f"{self.host_port} : {self.ip} . {self.port}"
        return f"pubip_{self.proto}", f"{self.host_ip} . {self.host_port} : {self.ip} . {self.port}"

    def key(self) -> tuple[str, str]:
        if self.host_ip in ("", "0.0.0.0"):
            return f"pub_{self.proto}", f"{self.host_port}"
        return f"pubip_{self.proto}", f"{self.host_ip} . {self.host_port}"

    def to_doc(self) -> dict[str, object]:
        return {"proto": self.proto, "host_ip": self.host_ip, "host_port": self.host_port,
                "ip": self.ip, "port": self.port}

    @classmethod
    def from_doc(cls, d: dict[str, object]) -> PortMap:
        return cls(str(d["proto"]), str(d["host_ip"]), int(d["host_port"]), str(d["ip"]),  # type: ignore[arg-type]
                   int(d["port"]))  # type: ignore[arg-type]


class Firewall:
    """The engine's nftables table, named after its per-root tag."""

    def __init__(self, tag: str) -> None:
        self.table = f"wb_{tag}"
        self.glob = f"wb{tag[:6]}-*"
        self._nft = shutil.which("nft")

    @property
    def available(self) -> bool:
        return self._nft is not None

    def ruleset(self, bridges: Iterable[BridgeRules], ports: Iterable[PortMap]) -> str:
        """The whole table as an `nft -f` script (pure)."""
        t = self.table
        lines = [f"table ip {t} {{}}", f"delete table ip {t}", f"table ip {t} {{"]
        elems: dict[str, list[str]] = {}
        for p in ports:
            name, text = p.element()
            elems.setdefault(name, []).append(text)
        for proto in PROTOS:
            for name, keytype in ((f"pub_{proto}", "inet_service"),
                                  (f"pubip_{proto}", "ipv4_addr . inet_service")):
                body = f"type {keytype} : ipv4_addr . inet_service;"
                if elems.get(name):
                    body += " elements = { " + ", ".join(elems[name]) + " };"
                lines.append(f"  map {name} {{ {body} }}")
        lines.append("  chain publish {")
        for proto in PROTOS:
            lines.append(f"    dnat ip to ip daddr . {proto} dport map @pubip_{proto}")
            lines.append(f"    fib daddr type local dnat ip to {proto} dport map @pub_{proto}")
        lines.append("  }")
        lines.append("  chain prerouting { type nat hook prerouting priority dstnat; policy accept;"
                     " jump publish; }")
        lines.append("  chain output { type nat hook output priority -100; policy accept; jump publish; }")
        post = [f'    oifname "{self.glob}" ip saddr 127.0.0.0/8 masquerade']
        fwd = ["    ct status dnat accept"]
        for b in bridges:
            if b.internal:
                fwd.append(f'    iifname "{b.bridge}" oifname != "{b.bridge}" drop')
                fwd.append(f'    oifname "{b.bridge}" iifname != "{b.bridge}" drop')
                continue
            fwd.append(f'    iifname "{b.bridge}" oifname "{self.glob}" oifname != "{b.bridge}" drop')
            if b.masquerade:
                post.append(f'    ip saddr {b.subnet} oifname != "{b.bridge}" masquerade')
        lines.append("  chain postrouting { type nat hook postrouting priority srcnat; policy accept;")
        lines += post + ["  }"]
        lines.append("  chain forward { type filter hook forward priority filter; policy accept;")
        lines += fwd + ["  }", "}"]
        return "\n".join(lines) + "\n"

    def sync(self, bridges: Iterable[BridgeRules], ports: Iterable[PortMap]) -> None:
        """Replace the table with exactly these rules and elements (one atomic transaction)."""
        self._run(self.ruleset(bridges, ports))

    def add_ports(self, ports: Iterable[PortMap]) -> None:
        script = "".join(f"add element ip {self.table} {name} {{ {text} }}\n"
                         for name, text in (p.element() for p in ports))
        if script:
            self._run(script)

    def remove_ports(self, ports: Iterable[PortMap]) -> None:
        """Delete elements; ones already gone are skipped (idempotent)."""
        ports = list(ports)
        if not ports:
            return
        script = "".join(f"delete element ip {self.table} {name} {{ {key} }}\n"
                         for name, key in (p.key() for p in ports))
        try:
            self._run(script)
        except Internal:
            for p in ports:        # one was missing: the batch failed as a whole, retry singly
                name, key = p.key()
                try:
                    self._run(f"delete element ip {self.table} {name} {{ {key} }}\n")
                except Internal:
                    pass

    def elements(self) -> list[tuple[str, str]]:
        """(map, element key text) currently in the table; [] when the table is absent."""
        if not self.available:
            return []
        proc = subprocess.run([self._nft or "nft", "-j", "list", "table", "ip", self.table],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return []
        out = []
        for obj in json.loads(proc.stdout).get("nftables", []):
            m = obj.get("map")
            for el in (m or {}).get("elem", []) or []:
                key = el[0]
                text = " . ".join(str(k) for k in key["concat"]) if isinstance(key, dict) else str(key)
                out.append((m["name"], text))
        return out

    def exists(self) -> bool:
        if not self.available:
            return False
        return subprocess.run([self._nft or "nft", "list", "table", "ip", self.table],
                              capture_output=True).returncode == 0

    def destroy(self) -> None:
        if self.available:
            subprocess.run([self._nft or "nft", "delete", "table", "ip", self.table], capture_output=True)

    def _run(self, script: str) -> None:
        if not self.available:
            raise Internal("nftables is required for container networking: install the nftables package "
                           "(apt-get install nftables)")
        proc = subprocess.run([self._nft or "nft", "-f", "-"], input=script, capture_output=True, text=True)
        if proc.returncode != 0:
            raise Internal(f"nft failed: {proc.stderr.strip()[-400:]}")
