"""Docker's request conventions: booleans, ints, filters in two shapes, JSON bodies, spooled uploads."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from workbench.errors import InvalidArgument

_TRUE = {"1", "true", "yes", "on"}


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    v = request.query.get(name)
    if v is None or v == "":
        return default
    return v.strip().lower() in _TRUE


def qint(request: web.Request, name: str, default: int | None = None) -> int | None:
    v = request.query.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {v!r}: must be an integer") from None


def qstr(request: web.Request, name: str, default: str | None = None) -> str | None:
    v = request.query.get(name)
    return default if v is None else v


def qjson(request: web.Request, name: str, default: Any = None) -> Any:
    v = request.query.get(name)
    if not v:
        return default
    try:
        return json.loads(v)
    except ValueError:
        raise InvalidArgument(f"invalid JSON in query parameter {name}: {v!r}") from None


def filters(request: web.Request) -> dict[str, list[str]]:
    """`filters` in either shape: CLI `{"name":{"x":true}}` or SDK `{"name":["x"]}` → {key: [values]}."""
    raw = qjson(request, "filters", {}) or {}
    if not isinstance(raw, dict):
        raise InvalidArgument("invalid filter: filters must be a JSON object")
    out: dict[str, list[str]] = {}
    for key, val in raw.items():
        if isinstance(val, dict):
            out[key] = [k for k, on in val.items() if on]
        elif isinstance(val, list):
            out[key] = [str(v) for v in val]
        elif isinstance(val, str):
            out[key] = [val]
        else:
            raise InvalidArgument(f"invalid filter value for {key!r}")
    return out


def check_filters(f: dict[str, list[str]], allowed: set[str]) -> None:
    for key in f:
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")


async def json_body(request: web.Request, *, allow_empty: bool = True) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise InvalidArgument("request body is required")
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise InvalidArgument(f"invalid JSON: {err}") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: expected an object")
    return body


async def spool_body(request: web.Request, tmp_dir: Path, *, limit: int | None = None) -> Path:
    """Write the (possibly chunked, Content-Length-less) request body to a temp file; return its path."""
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
    total = 0
    try:
        with os.fdopen(fd, "wb", buffering=0) as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                total += len(chunk)
                if limit is not None and total > limit:
                    raise InvalidArgument("request body too large")
                f.write(chunk)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        body=json.dumps(obj, separators=(",", ":")).encode() + b"\n")
