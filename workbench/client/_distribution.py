"""A small direct client of an OCI Distribution registry: catalog and tag lists, for `registry ls`.

The engine has no Docker API route for listing a registry, so the client asks the registry itself,
the way the engine would: over HTTPS (`docker.io` is `registry-1.docker.io`); an insecure registry
(loopback, or one the engine lists as insecure in `/info`) over TLS without certificate checks
first, then plain HTTP. Auth follows the registry's `WWW-Authenticate` challenge: Basic, or a
Bearer token fetched from the realm (with the stored credentials when there are any).
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from workbench.client._config import AuthConfig
from workbench.errors import APIError, Unavailable, from_status
from workbench.oci.registry_hosts import is_loopback

if TYPE_CHECKING:
    import httpx

__all__ = ["RegistryBrowser", "is_loopback", "parse_challenge"]

_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="r",service="s",scope="x"` → ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


class RegistryBrowser:
    """List repositories and tags of one registry."""

    def __init__(self, registry: str, auth: AuthConfig | None = None, *, timeout: float = 30.0,
                 insecure: bool | None = None) -> None:
        self.registry = registry
        self.auth = auth
        host = "registry-1.docker.io" if registry in ("docker.io", "index.docker.io") else registry
        self.insecure = is_loopback(registry) if insecure is None else insecure
        self.base_url = f"https://{host}"
        self._plain = f"http://{host}" if self.insecure else None
        self.timeout = timeout
        self._token: str | None = None

    def catalog(self, *, n: int | None = None, last: str | None = None) -> list[str]:
        """Repository names (`GET /v2/_catalog`); every page unless `n` is given."""
        return self._paged("/v2/_catalog", "repositories", n, last)

    def tags(self, repository: str, *, n: int | None = None, last: str | None = None) -> list[str]:
        """Tags of one repository (`GET /v2/<name>/tags/list`); every page unless `n` is given."""
        return self._paged(f"/v2/{repository}/tags/list", "tags", n, last)

    def _paged(self, path: str, key: str, n: int | None, last: str | None) -> list[str]:
        import httpx

        params: dict[str, Any] = {}
        if n is not None:
            params["n"] = n
        if last:
            params["last"] = last
        out: list[str] = []
        url: str | None = self.base_url + path
        try:
            with httpx.Client(timeout=self.timeout, verify=not self.insecure) as http:
                while url:
                    try:
                        response = self._get(http, url, params)
                    except httpx.TransportError:
                        if self._plain is None or not url.startswith(self.base_url + "/"):
                            raise
                        url = self._plain + url[len(self.base_url):]     # TLS did not answer
                        self.base_url, self._plain = self._plain, None
                        continue
                    self._plain = None     # it answered: later failures are errors, never a downgrade
                    out.extend((response.json() or {}).get(key) or [])
                    url = self._next(response) if n is None else None
                    params = {}
        except httpx.ConnectError as err:
            raise Unavailable(f"cannot reach registry {self.registry}: {err}") from err
        except httpx.TransportError as err:
            raise APIError(f"registry {self.registry}: {err}") from err
        return out

    def _next(self, response: httpx.Response) -> str | None:
        link = response.headers.get("Link")
        match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link or "")
        return urljoin(str(response.url), match.group(1)) if match else None

    def _get(self, http: httpx.Client, url: str, params: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        query = params or None      # httpx replaces the URL's own query (a Link page's) with any dict
        response = http.get(url, params=query, headers=headers)
        if response.status_code == 401 and "WWW-Authenticate" in response.headers:
            headers = self._authorize(http, response.headers["WWW-Authenticate"])
            response = http.get(url, params=query, headers=headers)
        if response.status_code >= 400:
            raise from_status(response.status_code, _message(response))
        return response

    def _authorize(self, http: httpx.Client, challenge: str) -> dict[str, str]:
        import httpx

        scheme, params = parse_challenge(challenge)
        basic = httpx.BasicAuth(self.auth.username, self.auth.password) if self.auth and \
            self.auth.username else None
        if scheme == "basic":
            if basic is None:
                raise from_status(401, f"registry {self.registry} needs a login")
            assert self.auth is not None
            pair = f"{self.auth.username}:{self.auth.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        if scheme != "bearer" or "realm" not in params:
            raise APIError(f"registry {self.registry}: unsupported auth challenge {challenge!r}")
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        token_reply = http.get(params["realm"], params=query, auth=basic) if basic else \
            http.get(params["realm"], params=query)
        if token_reply.status_code >= 400:
            raise from_status(token_reply.status_code, _message(token_reply))
        doc = token_reply.json()
        self._token = doc.get("token") or doc.get("access_token")
        if not self._token:
            raise APIError(f"registry {self.registry}: the token server gave no token")
        return {"Authorization": f"Bearer {self._token}"}


def _message(response: httpx.Response) -> str:
    try:
        doc = response.json()
        errors = doc.get("errors") or []
        if errors:
            return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors)
    except ValueError:
        pass
    return response.text.strip() or f"{response.status_code} {response.reason_phrase}"
