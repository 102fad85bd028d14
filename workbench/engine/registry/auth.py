"""Registry authentication: Basic from an htpasswd file (bcrypt), and Bearer tokens.

Both authenticators answer one question, `authorize(authorization, scopes, base_url)`: may the
holder of this `Authorization` header perform these scoped actions? They return the subject or
raise AuthRequired carrying the `WWW-Authenticate` challenge. No HTTP library is imported here;
the server passes header strings in and turns the exception into a 401 reply.

Bearer follows docker/distribution's token flow: an unauthenticated request gets
`WWW-Authenticate: Bearer realm="<base>/token",service="<service>",scope="repository:x:pull,push"`;
the client asks the token endpoint (`GET /token?service=&scope=` with Basic credentials, or the
OAuth2 `POST /token` password/refresh_token grants), and retries with `Authorization: Bearer <jwt>`.
Tokens are HS256 JWTs listing the granted access; the secret is kept under the registry root so
every worker process and restart accepts them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import bcrypt

from workbench.engine.registry import AuthRequired
from workbench.engine.store.durable import atomic_write

ACTIONS = ("pull", "push", "delete", "*")


@dataclass(frozen=True, slots=True)
class Scope:
    """`repository:<name>:pull,push` or `registry:catalog:*`."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name:
            return None
        return cls(kind.split("(", 1)[0], name, tuple(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


class RegistryAuth(Protocol):
    def authorize(self, authorization: str | None, scopes: Sequence[Scope], base_url: str) -> str:
        """Return the subject, or raise AuthRequired with the challenge to send."""
        ...


def _denied(message: str, challenge: str, scopes: Sequence[Scope]) -> AuthRequired:
    detail = [{"Type": s.type, "Class": "", "Name": s.name, "Action": a}
              for s in scopes for a in s.actions]
    return AuthRequired(message, detail=detail or None, headers={"WWW-Authenticate": challenge})


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        user, sep, password = base64.b64decode(authorization[6:].strip(), validate=True) \
            .decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class Htpasswd:
    """Users of an htpasswd file (bcrypt entries only), re-read when the file changes.

    bcrypt is slow by design, so a successful check is remembered (keyed by a hash of the
    credentials) until the file changes.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._mtime = -1.0
        self._users: dict[str, bytes] = {}
        self._ok: set[bytes] = set()
        self._mu = threading.Lock()
        self._load()

    def _load(self) -> None:
        mtime = self.path.stat().st_mtime
        if mtime == self._mtime:
            return
        users = {}
        for line in self.path.read_text().splitlines():
            user, sep, hashed = line.strip().partition(":")
            if sep and user and not user.startswith("#"):
                users[user] = hashed.strip().encode()
        with self._mu:
            self._users, self._ok, self._mtime = users, set(), mtime

    def check(self, user: str, password: str) -> bool:
        self._load()
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        if key in self._ok:
            return True
        hashed = self._users.get(user)
        if not hashed or not hashed.startswith((b"$2a$", b"$2b$", b"$2y$")):
            return False
        try:
            good = bcrypt.checkpw(password.encode(), b"$2b$" + hashed[4:])
        except ValueError:
            return False
        if good:
            with self._mu:
                self._ok.add(key)
        return good


def make_htpasswd_line(user: str, password: str, rounds: int = 10) -> str:
    """An htpasswd line as `htpasswd -B` writes it."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
    return f"{user}:$2y${hashed[4:]}"


class HtpasswdAuth:
    """Basic auth: every user in the htpasswd file may do everything."""

    def __init__(self, htpasswd: str | os.PathLike[str] | Htpasswd,
                 realm: str = "Workbench Registry") -> None:
        self.users = htpasswd if isinstance(htpasswd, Htpasswd) else Htpasswd(htpasswd)
        self.realm = realm

    def authorize(self, authorization: str | None, scopes: Sequence[Scope], base_url: str) -> str:
        challenge = f'Basic realm="{self.realm}"'
        creds = parse_basic(authorization)
        if creds is None:
            raise _denied("authentication required", challenge, scopes)
        if not self.users.check(*creds):
            raise _denied("invalid username or password", challenge, scopes)
        return creds[0]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret(root: str | os.PathLike[str]) -> bytes:
    """The token-signing secret kept at `<root>/.token-secret`, made on first use."""
    path = Path(root) / ".token-secret"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, secrets.token_hex(32).encode(), mode=0o600)
        return bytes.fromhex(path.read_text().strip())


class TokenAuth:
    """Bearer tokens signed with HMAC-SHA256, issued by the registry's own `/token` endpoint.

    Args:
        secret: signing key (see load_secret).
        users: who may log in at the token endpoint; None lets anyone (anonymously) have tokens.
        service: the `service` named in challenges and checked as the token audience.
        realm: the token endpoint URL; default `<base_url>/token` of each request.
        ttl: seconds a token is valid.
    """

    def __init__(self, secret: bytes, *, users: Htpasswd | None = None,
                 service: str = "workbench-registry", realm: str | None = None,
                 ttl: int = 300) -> None:
        self.secret, self.users, self.service, self.realm, self.ttl = secret, users, service, realm, ttl

    # -- the registry side --
    def authorize(self, authorization: str | None, scopes: Sequence[Scope], base_url: str) -> str:
        realm = self.realm or f"{base_url}/token"
        challenge = f'Bearer realm="{realm}",service="{self.service}"'
        if scopes:
            challenge += ',scope="' + " ".join(str(s) for s in scopes) + '"'
        if not authorization or authorization[:7].lower() != "bearer ":
            raise _denied("authentication required", challenge, scopes)
        claims = self.verify(authorization[7:].strip())
        if claims is None:
            raise _denied("invalid or expired token", challenge + ',error="invalid_token"', scopes)
        granted = {(a["type"], a["name"]): set(a.get("actions", ())) for a in claims.get("access", ())
                   if isinstance(a, dict) and "type" in a and "name" in a}
        for s in scopes:
            have = granted.get((s.type, s.name), set())
            if "*" not in have and not set(s.actions) <= have:
                raise _denied("insufficient scope", challenge + ',error="insufficient_scope"', scopes)
        return str(claims.get("sub", ""))

    def sign(self, claims: dict[str, Any]) -> str:
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(sig)}"

    def verify(self, token: str, *, kind: str = "access") -> dict[str, Any] | None:
        try:
            head, body, sig = token.split(".")
            want = hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(want, _unb64(sig)):
                return None
            claims = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            return None
        now = time.time()
        if not isinstance(claims, dict) or claims.get("aud") != self.service or \
                claims.get("kind", "access") != kind or not claims.get("nbf", 0) - 60 <= now \
                or now >= claims.get("exp", 0):
            return None
        return claims

    # -- the token endpoint --
    def login(self, authorization: str | None) -> str:
        """The subject the token endpoint's Basic credentials name; raise AuthRequired if bad."""
        creds = parse_basic(authorization)
        if self.users is None:
            return creds[0] if creds else ""
        challenge = 'Basic realm="Workbench Registry token service"'
        if creds is None:
            raise _denied("authentication required", challenge, ())
        if not self.users.check(*creds):
            raise _denied("invalid username or password", challenge, ())
        return creds[0]

    def password_grant(self, user: str, password: str) -> str:
        return self.login("Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())

    def refresh_grant(self, refresh_token: str) -> str:
        claims = self.verify(refresh_token, kind="refresh")
        if claims is None:
            raise _denied("invalid refresh token", 'Basic realm="Workbench Registry token service"', ())
        return str(claims.get("sub", ""))

    def issue(self, subject: str, scope_texts: Sequence[str], *,
              refresh: bool = False) -> dict[str, Any]:
        """Grant the requested scopes (every user may do everything) and return the reply JSON."""
        access: list[dict[str, Any]] = []
        for text in scope_texts:
            for part in text.split(" "):
                s = Scope.parse(part)
                if s is None:
                    continue
                allowed = [a for a in s.actions if a in ACTIONS]
                if s.type == "registry" and s.name != "catalog":
                    allowed = []
                access.append({"type": s.type, "name": s.name, "actions": allowed})
        now = int(time.time())
        claims = {"iss": self.service, "sub": subject, "aud": self.service, "iat": now,
                  "nbf": now, "exp": now + self.ttl, "jti": secrets.token_hex(8), "access": access}
        token = self.sign(claims)
        reply: dict[str, Any] = {"token": token, "access_token": token, "expires_in": self.ttl,
                                 "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        if refresh and subject:
            reply["refresh_token"] = self.sign({"sub": subject, "aud": self.service, "kind": "refresh",
                                                "iat": now, "nbf": now, "exp": now + 30 * 86400})
        return reply
