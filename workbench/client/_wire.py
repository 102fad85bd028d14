"""Pure wire helpers: query encoding, filters, auth headers, and THE status → exception map.

Nothing here does IO. `raise_for_status` is the only place in the client that turns an HTTP status
into a `workbench.errors` class (through `workbench.errors.from_status`), carrying the daemon's
`{"message": ...}` text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from workbench.errors import WorkbenchError, from_status

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DAEMON_ORIGIN",
    "Filters",
    "Query",
    "decode_path_stat",
    "encode_auth",
    "encode_filters",
    "error_from_body",
    "from_daemon",
    "path",
    "query",
    "raise_for_status",
]

Filters = Mapping[str, "str | bool | int | Iterable[str] | Mapping[str, bool]"]
Query = list[tuple[str, str]]

#: Attribute set on every error built from a daemon reply (so the CLI can say "Error response from daemon").
DAEMON_ORIGIN = "from_daemon"


def path(template: str, *args: str) -> str:
    """Fill `template` with URL-quoted arguments. `/` and `:` stay, as image names contain them."""
    return template.format(*(quote(str(a), safe="/:@") for a in args))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def query(**params: Any) -> Query:
    """Encode query params the way the docker CLI does.

    `None` is left out; booleans become `1`/`0`; lists and tuples repeat the key; dicts become
    JSON (Docker's `buildargs`, `labels`). A trailing underscore is dropped (`all_` → `all`).
    """
    out: Query = []
    for key, value in params.items():
        key = key.rstrip("_")
        if value is None:
            continue
        if isinstance(value, list | tuple):
            out.extend((key, _scalar(v)) for v in value)
        elif isinstance(value, dict):
            out.append((key, json.dumps(value, separators=(",", ":"))))
        else:
            out.append((key, _scalar(value)))
    return out


def _filter_values(value: Any) -> list[str]:
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, str | int):
        return [str(value)]
    if isinstance(value, Mapping):
        return [str(k) for k, on in value.items() if on]
    return [v if isinstance(v, str) else _filter_values(v)[0] for v in value]


def encode_filters(filters: Filters | None) -> str | None:
    """Encode filters as JSON in docker-py's list shape: `{"label": ["a=b"], "dangling": ["true"]}`.

    Accepts a string, bool or number per key (one value), an iterable of values, or the CLI's
    `{"value": true}` map. Empty filters give None (no query parameter at all).
    """
    if not filters:
        return None
    encoded = {key: _filter_values(value) for key, value in filters.items()}
    encoded = {k: v for k, v in encoded.items() if v}
    return json.dumps(encoded, separators=(",", ":"), sort_keys=True) if encoded else None


def encode_auth(config: Mapping[str, Any] | None) -> str:
    """Encode an auth config for `X-Registry-Auth`: base64url of its JSON (`{}` → `e30=`)."""
    payload = json.dumps(dict(config or {}), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode("ascii")


def decode_path_stat(header: str | None) -> dict[str, Any]:
    """Decode `X-Docker-Container-Path-Stat` (base64 JSON); an absent header gives `{}`."""
    if not header:
        return {}
    raw = base64.b64decode(header + "=" * (-len(header) % 4))
    value = json.loads(raw)
    return value if isinstance(value, dict) else {}


def error_from_body(status: int, body: bytes, reason: str = "") -> WorkbenchError:
    """Build the error Docker's status code stands for, with the daemon's `message` as its text."""
    message = ""
    text = body.decode("utf-8", "replace").strip()
    if text:
        try:
            doc = json.loads(text)
        except ValueError:
            message = text
        else:
            if isinstance(doc, dict):
                message = str(doc.get("message") or doc.get("error") or text)
            else:
                message = text
    if not message:
        message = f"{status} {reason}".strip()
    error = from_status(status, message)
    setattr(error, DAEMON_ORIGIN, True)
    return error


def from_daemon(error: BaseException) -> bool:
    """Whether `error` was built from a daemon reply (rather than raised by the client itself)."""
    return bool(getattr(error, DAEMON_ORIGIN, False))


def raise_for_status(response: httpx.Response) -> None:
    """Raise the mapped `workbench.errors` class for a 4xx/5xx reply; 1xx-3xx pass.

    A 304 (container already started/stopped) is not an error for the client, as for docker-py
    and the docker CLI. The body must have been read (streams read it before calling this).
    """
    if response.status_code < 400:
        return
    raise error_from_body(response.status_code, response.content, response.reason_phrase)
