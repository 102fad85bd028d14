"""`client.registry`: log in through the engine (`POST /auth`), keep credentials, browse registries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from workbench.client import _wire
from workbench.client._config import AuthConfig, CredentialStore, registry_key, registry_of
from workbench.client._distribution import RegistryBrowser
from workbench.errors import WorkbenchError
from workbench.oci.registry_hosts import is_insecure, is_loopback

if TYPE_CHECKING:
    from workbench.client._connection import Connection

__all__ = ["AuthResult", "RegistryAPI"]


@dataclass(frozen=True, slots=True)
class AuthResult:
    status: str
    identity_token: str = ""


class RegistryAPI:
    """Credentials live in a docker-style config.json (see `workbench.client._config`)."""

    def __init__(self, conn: Connection, credentials: CredentialStore) -> None:
        self._conn = conn
        self.credentials = credentials

    def login(self, username: str, password: str, registry: str | None = None, *,
              save: bool = True) -> AuthResult:
        """Check credentials with the engine (`POST /auth`) and, when `save`, store them.

        Args:
            registry: `host[:port]`; None means Docker Hub.

        Raises:
            Unauthorized: the registry refused the credentials.
        """
        auth = AuthConfig(username=username, password=password, serveraddress=registry_key(registry))
        doc = self._conn.json("POST", "/auth", json=auth.to_wire()) or {}
        result = AuthResult(doc.get("Status", ""), doc.get("IdentityToken", "") or "")
        if save:
            stored = AuthConfig(username=username, password="" if result.identity_token else password,
                                serveraddress=auth.serveraddress, identitytoken=result.identity_token)
            self.credentials.store(registry, stored)
        return result

    def logout(self, registry: str | None = None) -> bool:
        """Forget the stored credentials for `registry`; return whether there were any."""
        return self.credentials.erase(registry)

    def auth_for(self, reference: str) -> AuthConfig | None:
        """Stored credentials for the registry that `reference` (an image name) lives in."""
        return self.credentials.get(registry_of(reference))

    def auth_header(self, reference: str, auth: AuthConfig | None = None) -> str:
        """`X-Registry-Auth` for an image reference: the given or stored credentials, else `{}`."""
        auth = auth or self.auth_for(reference)
        return _wire.encode_auth(auth.to_wire() if auth else {})

    def catalog(self, registry: str, *, n: int | None = None, last: str | None = None) -> list[str]:
        """Repositories in `registry` (asked directly, with the stored credentials)."""
        return self._browser(registry).catalog(n=n, last=last)

    def tags(self, registry: str, repository: str, *, n: int | None = None,
             last: str | None = None) -> list[str]:
        """Tags of `repository` in `registry`."""
        return self._browser(registry).tags(repository, n=n, last=last)

    def _browser(self, registry: str) -> RegistryBrowser:
        return RegistryBrowser(registry, self.credentials.get(registry), insecure=self.insecure(registry))

    def insecure(self, registry: str) -> bool:
        """Whether the engine treats `registry` as insecure (`/info`'s RegistryConfig: a host with
        Secure false, or an address in an insecure CIDR); loopback when the engine cannot say."""
        try:
            config = (self._conn.json("GET", "/info") or {}).get("RegistryConfig") or {}
        except WorkbenchError:
            return is_loopback(registry)
        hosts = [name for name, index in (config.get("IndexConfigs") or {}).items()
                 if isinstance(index, dict) and index.get("Secure") is False]
        cidrs = [c for c in config.get("InsecureRegistryCIDRs") or [] if isinstance(c, str)]
        return is_loopback(registry) or is_insecure(registry, [*hosts, *cidrs])
