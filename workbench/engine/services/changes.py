"""Dockerfile-style `changes` (import/commit): CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR,
VOLUME, STOPSIGNAL, ONBUILD applied to an image's runtime config. Pure."""

from __future__ import annotations

import json
import shlex
from typing import Any

from workbench.errors import InvalidArgument

ALLOWED = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "WORKDIR", "VOLUME", "STOPSIGNAL",
           "ONBUILD", "HEALTHCHECK"}


def _json_or_shell(rest: str) -> list[str]:
    rest = rest.strip()
    if rest.startswith("["):
        try:
            val = json.loads(rest)
            if isinstance(val, list) and all(isinstance(v, str) for v in val):
                return val
        except ValueError:
            pass
    return ["/bin/sh", "-c", rest]


def _pairs(rest: str) -> list[tuple[str, str]]:
    words = shlex.split(rest)
    if words and "=" not in words[0]:
        return [(words[0], rest.strip()[len(words[0]):].strip())]
    out = []
    for w in words:
        if "=" not in w:
            raise InvalidArgument(f"invalid change: {rest!r}: expected KEY=VALUE")
        k, v = w.split("=", 1)
        out.append((k, v))
    return out


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Return a copy of the runtime `config` with each change applied, in order."""
    cfg = json.loads(json.dumps(config or {}))
    for change in changes:
        change = change.strip()
        if not change:
            continue
        cmd, _, rest = change.partition(" ")
        cmd = cmd.upper()
        if cmd not in ALLOWED:
            raise InvalidArgument(f"{cmd} is not a valid change command")
        if cmd == "CMD":
            cfg["Cmd"] = _json_or_shell(rest)
        elif cmd == "ENTRYPOINT":
            cfg["Entrypoint"] = _json_or_shell(rest)
        elif cmd == "ENV":
            env = [e for e in cfg.get("Env") or []]
            for k, v in _pairs(rest):
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cfg["Env"] = env
        elif cmd == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(dict(_pairs(rest)))
            cfg["Labels"] = labels
        elif cmd == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in rest.split():
                ports[p if "/" in p else p + "/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif cmd == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            items = json.loads(rest) if rest.strip().startswith("[") else rest.split()
            for v in items:
                vols[v] = {}
            cfg["Volumes"] = vols
        elif cmd == "USER":
            cfg["User"] = rest.strip()
        elif cmd == "WORKDIR":
            cfg["WorkingDir"] = rest.strip()
        elif cmd == "STOPSIGNAL":
            cfg["StopSignal"] = rest.strip()
        elif cmd == "ONBUILD":
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest.strip()]
        elif cmd == "HEALTHCHECK":
            cfg["Healthcheck"] = {"Test": ["CMD-SHELL", rest.strip()]}
    return cfg
