"""OCI image manifests, indexes and configs: canonical JSON, chain IDs, platform matching.

Manifests and configs are kept as the JSON dicts the spec defines (they are stored and served
byte for byte); these helpers build and read them without any IO.
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
from typing import Any

from workbench.oci import mediatypes as mt

JSON = dict[str, Any]


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces), as digests of our own writes need."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def descriptor(media_type: str, data_or_digest: bytes | str, size: int | None = None,
               **extra: Any) -> JSON:
    if isinstance(data_or_digest, bytes):
        digest = "sha256:" + hashlib.sha256(data_or_digest).hexdigest()
        size = len(data_or_digest)
    else:
        digest = data_or_digest
    d: JSON = {"mediaType": media_type, "digest": digest, "size": size}
    d.update({k: v for k, v in extra.items() if v})
    return d


def chain_id(diff_ids: list[str]) -> str:
    """ChainID per the OCI image spec: ChainID(L0|...|Ln) = sha256(ChainID(..n-1) + " " + DiffID(n))."""
    if not diff_ids:
        return ""
    chain = diff_ids[0]
    for d in diff_ids[1:]:
        chain = "sha256:" + hashlib.sha256(f"{chain} {d}".encode()).hexdigest()
    return chain


def chain_ids(diff_ids: list[str]) -> list[str]:
    return [chain_id(diff_ids[: i + 1]) for i in range(len(diff_ids))]


def go_arch() -> str:
    m = _platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
            "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x"}.get(m, m)


def default_platform() -> JSON:
    p: JSON = {"os": "linux", "architecture": go_arch()}
    if p["architecture"] == "arm64":
        p["variant"] = "v8"
    return p


def parse_platform(text: str | None) -> JSON:
    """`linux/arm64/v8` → {"os","architecture","variant"}; empty → the daemon's platform."""
    if not text:
        return default_platform()
    parts = text.split("/")
    p: JSON = {"os": parts[0], "architecture": parts[1] if len(parts) > 1 else go_arch()}
    if len(parts) > 2:
        p["variant"] = parts[2]
    return p


def platform_matches(want: JSON, have: JSON | None) -> bool:
    if not have:
        return False
    if want.get("os") != have.get("os") or want.get("architecture") != have.get("architecture"):
        return False
    wv, hv = want.get("variant"), have.get("variant")
    return not wv or not hv or wv == hv


def is_index(media_type: str | None, doc: JSON) -> bool:
    return media_type in mt.INDEXES or ("manifests" in doc and "layers" not in doc)


def empty_config(created: str, diff_ids: list[str] | None = None, config: JSON | None = None,
                 history: list[JSON] | None = None) -> JSON:
    """A fresh image config document for linux/<this arch>."""
    return {
        "created": created,
        "architecture": go_arch(),
        "os": "linux",
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids or [])},
        "history": list(history or []),
    }
