"""Docker image references: parse, validate and normalise as distribution/reference does.

`busybox` is `docker.io/library/busybox:latest`; the *familiar* form strips `docker.io/` and
`library/` again, which is what Docker stores and shows (`RepoTags`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workbench.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")
_ID_RE = re.compile(r"^[a-f0-9]{64}$")
NAME_TOTAL_MAX = 255


@dataclass(frozen=True, slots=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """Fully qualified repository name: `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """Repository as Docker shows it: `busybox`, `user/app`, `127.0.0.1:5000/app`."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_PREFIX) and path.count("/") == 1:
                path = path[len(OFFICIAL_PREFIX):]
            return path
        return self.repository

    @property
    def familiar(self) -> str:
        """`name:tag` (or `name@digest`) in familiar form."""
        out = self.familiar_name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def with_default_tag(self) -> Reference:
        if self.tag or self.digest:
            return self
        return Reference(self.domain, self.path, DEFAULT_TAG, None)

    def __str__(self) -> str:
        return self.familiar


def split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    if i == -1 or not any(c in name[:i] for c in ".:") and name[:i] != "localhost" \
            and name[:i].lower() == name[:i]:
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = name[:i], name[i + 1:]
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = OFFICIAL_PREFIX + rest
    return domain, rest


def parse(text: str) -> Reference:
    """Parse a reference; the tag stays None when none was given. Raise InvalidArgument if bad."""
    if not text or not isinstance(text, str):
        raise InvalidArgument("invalid reference format")
    name, digest = text, None
    if "@" in name:
        name, digest = name.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidArgument(f"invalid reference format: {text}")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid reference format: {text}")
    if len(name) > NAME_TOTAL_MAX:
        raise InvalidArgument(f"invalid reference format: repository name (library/{name}) must be less "
                              f"than {NAME_TOTAL_MAX} characters")
    domain, path = split_domain(name)
    if not _DOMAIN_RE.match(domain):
        raise InvalidArgument(f"invalid reference format: {text}")
    if not _PATH_RE.match(path):
        if path.lower() != path and _PATH_RE.match(path.lower()):
            raise InvalidArgument(f"invalid reference format: repository name ({path}) must be lowercase")
        raise InvalidArgument(f"invalid reference format: {text}")
    return Reference(domain, path, tag, digest)


def parse_normalized(text: str) -> Reference:
    """Parse and add `:latest` when neither tag nor digest is given."""
    return parse(text).with_default_tag()


def is_valid_path(path: str) -> bool:
    """Whether `path` is a valid repository path (the OCI distribution `<name>`)."""
    return bool(_PATH_RE.match(path)) and len(path) <= NAME_TOTAL_MAX


def looks_like_id(text: str) -> bool:
    return bool(_ID_RE.match(text.removeprefix("sha256:")))
