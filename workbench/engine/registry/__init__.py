"""OCI Distribution registry: server, storage, auth and gc, plus the vocabulary they share.

Public API (imported lazily, so `import workbench.engine.registry.client` pulls in no aiohttp):

    make_registry_app(storage, *, auth=None, read_only=False) -> aiohttp.web.Application
    async serve(root, addr, htpasswd=None, read_only=False, *, token_auth=False, workers=1)
    gc(root, *, dry_run=False, grace_period=3600.0, upload_max_age=86400.0) -> GCResult
    RegistryStorage(root), HtpasswdAuth(path), TokenAuth(secret, users=...)

This module holds what every part speaks: the spec's error codes (each a WorkbenchError carrying
its HTTP status) and pure, IO-free manifest parsing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from workbench.errors import (Forbidden, InvalidArgument, NotFound, RangeNotSatisfiable, Unauthorized,
                              WorkbenchError)
from workbench.oci import mediatypes as mt
from workbench.oci.digest import Digest
from workbench.oci.reference import is_valid_path

MAX_MANIFEST = 8 << 20
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")

_LAZY = {
    "make_registry_app": "server", "serve": "standalone", "start_registry": "standalone", "RegistryStorage": "storage",
    "gc": "gc", "GCResult": "gc", "HtpasswdAuth": "auth", "TokenAuth": "auth",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(name)


# ---- errors: the spec's codes, each a WorkbenchError with its HTTP status --------------------

class RegistryError(WorkbenchError):
    """An OCI Distribution error: `code` from the spec's table, `detail` any JSON."""

    code = "UNKNOWN"

    def __init__(self, message: str, *, detail: Any = None, status: int | None = None,
                 headers: dict[str, str] | None = None, code: str | None = None) -> None:
        super().__init__(message, status=status)
        self.detail = detail
        self.headers = headers or {}
        if code is not None:
            self.code = code


class BlobUnknown(RegistryError, NotFound):
    code = "BLOB_UNKNOWN"


class BlobUploadUnknown(RegistryError, NotFound):
    code = "BLOB_UPLOAD_UNKNOWN"


class BlobUploadInvalid(RegistryError, InvalidArgument):
    code = "BLOB_UPLOAD_INVALID"


class RangeInvalid(RegistryError, RangeNotSatisfiable):
    code = "BLOB_UPLOAD_INVALID"


class DigestInvalid(RegistryError, InvalidArgument):
    code = "DIGEST_INVALID"


class ManifestUnknown(RegistryError, NotFound):
    code = "MANIFEST_UNKNOWN"


class ManifestInvalid(RegistryError, InvalidArgument):
    code = "MANIFEST_INVALID"


class ManifestBlobUnknown(RegistryError, NotFound):
    code = "MANIFEST_BLOB_UNKNOWN"


class NameInvalid(RegistryError, InvalidArgument):
    code = "NAME_INVALID"


class NameUnknown(RegistryError, NotFound):
    code = "NAME_UNKNOWN"


class TagInvalid(RegistryError, InvalidArgument):
    code = "TAG_INVALID"


class SizeInvalid(RegistryError, InvalidArgument):
    code = "SIZE_INVALID"


class Unsupported(RegistryError):
    code = "UNSUPPORTED"
    status = 405


class AuthRequired(RegistryError, Unauthorized):
    code = "UNAUTHORIZED"


class Denied(RegistryError, Forbidden):
    code = "DENIED"


# ---- pure helpers ----------------------------------------------------------------------------

def check_name(name: str) -> str:
    if not is_valid_path(name):
        raise NameInvalid(f"invalid repository name: {name[:300]!r}", detail={"name": name[:300]})
    return name


def parse_digest(text: str) -> Digest:
    try:
        return Digest.parse(text)
    except InvalidArgument as err:
        raise DigestInvalid(f"invalid digest: {text[:200]!r}", detail={"digest": text[:200]}) from err


def is_tag(ref: str) -> bool:
    return bool(_TAG_RE.match(ref))


def digest_of(d: Digest, data: bytes) -> Digest:
    return Digest(d.algorithm, hashlib.new(d.algorithm, data).hexdigest())


def _descriptor_digest(desc: Any, what: str) -> str:
    if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
        raise ManifestInvalid(f"manifest {what} is not a descriptor")
    try:
        Digest.parse(desc["digest"])
    except InvalidArgument as err:
        raise ManifestInvalid(f"manifest {what} has an invalid digest") from err
    return desc["digest"]


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str            # as pushed: the Content-Type, else the body's mediaType
    doc: dict[str, Any]
    children: tuple[str, ...]  # digests of manifests an index lists
    blobs: tuple[str, ...]     # config and layers an image manifest lists (non-distributable excluded)
    subject: str | None


def parse_manifest(data: bytes, content_type: str = "") -> ParsedManifest:
    """Validate a pushed manifest and find its references. Raise ManifestInvalid."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ManifestInvalid("manifest is not valid JSON") from err
    if not isinstance(doc, dict):
        raise ManifestInvalid("manifest is not a JSON object")
    header = content_type.split(";", 1)[0].strip().lower()
    body_mt = doc.get("mediaType")
    if body_mt is not None and not isinstance(body_mt, str):
        raise ManifestInvalid("manifest mediaType is not a string")
    if body_mt and header in mt.ALL_MANIFESTS and body_mt != header:
        raise ManifestInvalid(f"manifest mediaType {body_mt} does not match Content-Type {header}")
    media_type = header if header in mt.ALL_MANIFESTS else body_mt
    if not media_type:
        media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
    if media_type not in mt.ALL_MANIFESTS or doc.get("schemaVersion") != 2:
        raise ManifestInvalid(f"unsupported manifest: mediaType {media_type!r}, "
                              f"schemaVersion {doc.get('schemaVersion')!r}")
    children: list[str] = []
    blobs: list[str] = []
    if media_type in mt.INDEXES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ManifestInvalid("index has no manifests list")
        children = [_descriptor_digest(e, "entry") for e in entries]
    else:
        layers = doc.get("layers", [])
        if not isinstance(layers, list):
            raise ManifestInvalid("manifest layers is not a list")
        blobs.append(_descriptor_digest(doc.get("config"), "config"))
        for layer in layers:
            d = _descriptor_digest(layer, "layer")
            if not (layer.get("urls") or "nondistributable" in str(layer.get("mediaType", ""))
                    or layer.get("mediaType") == mt.DOCKER_FOREIGN_LAYER):
                blobs.append(d)
    subject = None
    if doc.get("subject") is not None:
        subject = _descriptor_digest(doc["subject"], "subject")
    return ParsedManifest(media_type, doc, tuple(children), tuple(blobs), subject)


def referrer_descriptor(pm: ParsedManifest, digest: str, size: int) -> dict[str, Any]:
    """The descriptor the referrers API lists: artifactType falls back to the config media type."""
    at = pm.doc.get("artifactType") or ""
    if not at and isinstance(pm.doc.get("config"), dict):
        at = pm.doc["config"].get("mediaType") or ""
    desc: dict[str, Any] = {"mediaType": pm.media_type, "digest": digest, "size": size}
    if at:
        desc["artifactType"] = at
    if isinstance(pm.doc.get("annotations"), dict) and pm.doc["annotations"]:
        desc["annotations"] = pm.doc["annotations"]
    return desc
