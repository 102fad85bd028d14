"""A registry's error replies as Docker words them: `RegistryRequestError` and how one is made.

Shared by the async client (`client.py`) and the blob downloads of worker threads (`download.py`).
"""

from __future__ import annotations

import json
import os
import socket
from urllib.parse import urlsplit

from workbench.errors import WorkbenchError

__all__ = ["RegistryRequestError", "dial_text", "error_text", "request_error"]


class RegistryRequestError(WorkbenchError):
    """The registry refused a request (or could not be reached)."""

    def __init__(self, message: str, *, status: int = 500, remote_status: int = 0, code: str = "") -> None:
        super().__init__(message, status=status)
        self.remote_status = remote_status
        self.code = code


def error_text(status: int, reason: str, body: bytes | None = None) -> tuple[str, str]:
    """(Docker-style message, first error code) from a registry error reply."""
    raw = body if body is not None else b""
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        errors = doc.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = str(errors[0].get("code") or "")
            message = str(errors[0].get("message") or "")
            words = code.lower().replace("_", " ")
            return (f"{words}: {message}" if words and message else words or message), code
        if isinstance(doc.get("details"), str):  # token servers
            return doc["details"], ""
    text = raw.decode("utf-8", "replace").strip()[:200]
    if status == 401:
        return "unauthorized: " + (text or "authentication required"), "UNAUTHORIZED"
    return f"{status} {reason or ''}".strip() + (f": {text}" if text else ""), ""


def request_error(method: str, url: str, status: int, reason: str, body: bytes, *,
                  prefix: bool = True) -> RegistryRequestError:
    """The error for a registry's error reply, as Docker words it (401, 403, 404 keep their status)."""
    text, code = error_text(status, reason, body if method != "HEAD" else b"")
    if method == "HEAD" and status == 404:
        text, code = "not found", "NOT_FOUND"
    if prefix:
        text = f'{method.title()} "{url}": {text}'
    return RegistryRequestError(text, status=status if status in (401, 403, 404) else 500,
                                remote_status=status, code=code)


def dial_text(err: BaseException, url: str) -> str | None:
    """A failed connection to `url`'s registry as Go's net package words it, which is what dockerd's
    errors say ("dial tcp 127.0.0.1:5000: connect: connection refused", "dial tcp: lookup h: no
    such host"); None when no OS error lies under `err` (httpx and anyio wrap it)."""
    cause: BaseException | None = err
    while cause is not None and not (isinstance(cause, OSError) and cause.errno):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if isinstance(cause, socket.gaierror):
        return f"dial tcp: lookup {host}: no such host"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert isinstance(cause, OSError) and cause.errno is not None
    return f"dial tcp {address}: connect: {os.strerror(cause.errno).lower()}"
