"""`client.system`: ping, version, info, disk usage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.client._records import DiskUsage, Ping, Version

if TYPE_CHECKING:
    from workbench.client._connection import Connection

__all__ = ["SystemAPI"]


class SystemAPI:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def ping(self) -> Ping:
        """`GET /_ping` (unversioned): what the engine says about itself in the headers.

        Raises:
            Unavailable: no engine answers at the address.
        """
        response = self._conn.request("GET", "/_ping", versioned=False)
        h = response.headers
        return Ping(h.get("Api-Version", ""), h.get("Ostype", ""),
                    h.get("Docker-Experimental", "false").lower() == "true", h.get("Builder-Version"))

    def version(self) -> Version:
        """`GET /version`."""
        return Version.from_wire(self._conn.json("GET", "/version"))

    def info(self) -> dict[str, Any]:
        """`GET /info`: Docker's system-wide information, as the daemon sends it."""
        return dict(self._conn.json("GET", "/info") or {})

    def df(self) -> DiskUsage:
        """`GET /system/df`: disk usage of images, containers, volumes and build cache."""
        return DiskUsage.from_wire(self._conn.json("GET", "/system/df", timeout=None) or {})
