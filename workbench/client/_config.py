"""Registry credentials in a docker-style `config.json`.

The file lives in `$DOCKER_CONFIG` when set, else in `~/.workbench/`. Its shape is Docker's:
`{"auths": {"127.0.0.1:5000": {"auth": base64("user:password")}}}` (plus `identitytoken` when
the registry gave one). Docker Hub's key is `https://index.docker.io/v1/`. Other keys in the file
(`credsStore`, `proxies`, ...) are kept untouched when we write. Writes are atomic (temp + fsync +
rename) and the file is private (0600).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InvalidArgument

__all__ = ["DOCKER_HUB_KEY", "AuthConfig", "CredentialStore", "config_dir", "registry_key", "registry_of"]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Credentials for one registry, as `X-Registry-Auth` and `POST /auth` carry them."""

    username: str = ""
    password: str = ""
    serveraddress: str = ""
    identitytoken: str = ""
    email: str = ""

    def to_wire(self) -> dict[str, str]:
        fields = {"username": self.username, "password": self.password,
                  "serveraddress": self.serveraddress, "identitytoken": self.identitytoken,
                  "email": self.email}
        return {k: v for k, v in fields.items() if v}


def config_dir(explicit: str | os.PathLike[str] | None = None,
               env: dict[str, str] | None = None) -> Path:
    """The directory holding config.json: `explicit`, else `$DOCKER_CONFIG`, else `~/.workbench`."""
    environ = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"])
    return Path(environ.get("HOME") or Path.home()) / ".workbench"


def registry_key(registry: str | None) -> str:
    """The config.json key for a registry: Docker Hub's URL, else the bare `host[:port]`."""
    if not registry:
        return DOCKER_HUB_KEY
    text = registry.strip()
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    host = text.split("/", 1)[0]
    if host in _HUB_NAMES:
        return DOCKER_HUB_KEY
    return host


def registry_of(reference: str) -> str:
    """The registry a reference lives in (`busybox` → docker.io, `127.0.0.1:5000/x` → 127.0.0.1:5000)."""
    from workbench.oci.reference import split_domain

    name = reference.split("@", 1)[0]
    return split_domain(name)[0]


class CredentialStore:
    """Read and write the `auths` section of one config.json."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = config_dir(directory)

    @property
    def path(self) -> Path:
        return self.directory / "config.json"

    def load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise InvalidArgument(f"cannot read {self.path}: {err.strerror}") from err
        try:
            doc = json.loads(text) if text.strip() else {}
        except ValueError as err:
            raise InvalidArgument(f"{self.path} is not valid JSON: {err}") from err
        return doc if isinstance(doc, dict) else {}

    def registries(self) -> list[str]:
        return sorted((self.load().get("auths") or {}).keys())

    def get(self, registry: str | None) -> AuthConfig | None:
        """Stored credentials for `registry` (None = Docker Hub), or None when there are none."""
        key = registry_key(registry)
        auths = self.load().get("auths") or {}
        entry = next((v for k, v in auths.items() if registry_key(k) == key), None)
        if not isinstance(entry, dict):
            return None
        username = entry.get("username", "")
        password = entry.get("password", "")
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(entry["auth"]).decode()
            except (ValueError, UnicodeDecodeError) as err:
                raise InvalidArgument(f"bad auth entry for {key} in {self.path}") from err
            username, _, password = decoded.partition(":")
        token = entry.get("identitytoken", "")
        if not (username or password or token):
            return None
        return AuthConfig(username=username, password=password, serveraddress=key, identitytoken=token)

    def store(self, registry: str | None, auth: AuthConfig) -> None:
        """Save credentials for `registry`, replacing any earlier entry for it."""
        key = registry_key(registry)
        doc = self.load()
        auths = {k: v for k, v in (doc.get("auths") or {}).items() if registry_key(k) != key}
        entry: dict[str, str] = {}
        if auth.username or auth.password:
            entry["auth"] = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
        if auth.identitytoken:
            entry["identitytoken"] = auth.identitytoken
        auths[key] = entry
        doc["auths"] = auths
        self._write(doc)

    def erase(self, registry: str | None) -> bool:
        """Forget credentials for `registry`; return whether there were any."""
        key = registry_key(registry)
        doc = self.load()
        auths = doc.get("auths") or {}
        kept = {k: v for k, v in auths.items() if registry_key(k) != key}
        if len(kept) == len(auths):
            return False
        doc["auths"] = kept
        self._write(doc)
        return True

    def _write(self, doc: dict[str, Any]) -> None:
        import tempfile

        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=self.directory)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent="\t")
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dirfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

