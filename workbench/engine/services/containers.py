"""ContainerService: records, create, resolve, list, inspect, rename, remove, prune.

A container is one row in `containers` (its Docker-shaped document as JSON) plus a directory
`<root>/containers/<id>/` holding upper/work dirs, the rootfs mount point, the OCI bundle,
hosts/hostname/resolv.conf, the json-file log and the monitor's files. Running it — start, stop,
kill, wait, restart, pause, exit handling and recovery — is `ContainerRunner` in container_ops.py.
Every state change is one SQLite transaction, written before it is acknowledged.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.engine.services.images import ImageService, rfc3339
from workbench.engine.services.names import random_name, validate_name
from workbench.engine.store.metadata import Metadata
from workbench.errors import Conflict, InvalidArgument, NotFound
from workbench.oci.units import human_duration

ZERO_TIME = "0001-01-01T00:00:00Z"
_CMD_FIELDS = ("Cmd", "Entrypoint", "Env", "ExposedPorts", "Volumes", "WorkingDir", "User",
               "StopSignal", "Healthcheck", "Labels", "OnBuild", "Shell")


def new_state() -> dict[str, Any]:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}


class ContainerService:
    def __init__(self, md: Metadata, images: ImageService, containers_dir: Path) -> None:
        self.md = md
        self.images = images
        self.dir = containers_dir
        self.on_remove: list[Callable[[dict[str, Any]], None]] = []
        images.containers_using = self.using_image

    # Records ----------------------------------------------------------------------------------
    def path(self, cid: str) -> Path:
        return self.dir / cid

    def get(self, ref: str) -> dict[str, Any]:
        """Resolve full ID, unique ID prefix or name (with or without '/'); 404 otherwise."""
        if not ref:
            raise NotFound("No such container: ")
        name = ref.lstrip("/")
        row = self.md.one("SELECT doc FROM containers WHERE id=? OR name=?", (ref, name))
        if row is None and re.fullmatch(r"[0-9a-f]{1,64}", ref):
            rows = self.md.query("SELECT doc FROM containers WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise InvalidArgument(f"Multiple IDs found with provided prefix: {ref}")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"No such container: {ref}")
        return json.loads(row["doc"])

    def save(self, doc: dict[str, Any]) -> None:
        with self.md.transaction() as tx:
            tx.execute("UPDATE containers SET doc=?, name=? WHERE id=?",
                       (json.dumps(doc), doc["Name"].lstrip("/"), doc["Id"]))

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(r["doc"]) for r in self.md.query("SELECT doc FROM containers ORDER BY created DESC")]

    def using_image(self, image_id: str) -> list[str]:
        return [r["id"] for r in self.md.query("SELECT id FROM containers WHERE image_id=?", (image_id,))]

    def volume_users(self, name: str) -> list[str]:
        """IDs of containers (created, running or stopped) that use volume `name`, as Docker counts them."""
        users = []
        for d in self.all():
            host = d.get("HostConfig") or {}
            named = {b.split(":", 1)[0] for b in host.get("Binds") or [] if not b.startswith("/")}
            named |= {m.get("Source") for m in host.get("Mounts") or [] if m.get("Type", "volume") == "volume"}
            named |= {m.get("Name") for m in d.get("Mounts") or []}
            if name in named:
                users.append(d["Id"])
        return users

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.all():
            out[d["State"]["Status"]] = out.get(d["State"]["Status"], 0) + 1
        return out

    # Create -----------------------------------------------------------------------------------
    def create(self, body: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON: container config must be an object")
        image_ref = body.get("Image")
        if not image_ref or not isinstance(image_ref, str):
            raise InvalidArgument("No command specified" if image_ref is None else "invalid Image")
        image = self.images.get(image_ref)
        icfg = (self.images.config(image).get("config") or {})
        host = _typed(body.get("HostConfig") or {}, dict, "HostConfig")
        cfg = _merge_config(body, icfg)
        if not (cfg.get("Entrypoint") or cfg.get("Cmd")):
            raise InvalidArgument("No command specified")
        _validate_host_config(host)
        cid = secrets.token_hex(32)
        name = validate_name(name) if name else self._free_name()
        path = (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or [])
        doc = {
            "Id": cid, "Created": rfc3339(time.time()), "Path": path[0], "Args": path[1:],
            "State": new_state(), "Image": image.id, "ResolvConfPath": str(self.path(cid) / "resolv.conf"),
            "HostnamePath": str(self.path(cid) / "hostname"), "HostsPath": str(self.path(cid) / "hosts"),
            "LogPath": str(self.path(cid) / f"{cid}-json.log"), "Name": "/" + name, "RestartCount": 0,
            "Driver": "overlay2", "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
            "ExecIDs": None, "HostConfig": _host_config(host), "Mounts": [],
            "GraphDriver": {"Name": "overlay2", "Data": {
                "UpperDir": str(self.path(cid) / "upper"), "WorkDir": str(self.path(cid) / "work"),
                "MergedDir": str(self.path(cid) / "rootfs")}},
            "Config": cfg, "NetworkSettings": _empty_network_settings(),
            "ImageRef": image_ref, "NetworkingConfig": body.get("NetworkingConfig") or {},
            "_ManualStop": False,
        }
        doc["Config"]["Hostname"] = body.get("Hostname") or cid[:12]
        doc["Config"]["Image"] = image_ref
        self.path(cid).mkdir(parents=True)
        try:
            with self.md.transaction() as tx:
                tx.execute("INSERT INTO containers(id, name, image_id, doc, created) VALUES (?,?,?,?,?)",
                           (cid, name, image.id, json.dumps(doc), time.time()))
        except Exception as err:
            shutil.rmtree(self.path(cid), ignore_errors=True)
            if "UNIQUE" in str(err):
                other = self.get(name)["Id"]
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                               f'"{other}". You have to remove (or rename) that container to be able to '
                               f'reuse that name.') from None
            raise
        return doc

    def _free_name(self) -> str:
        for _ in range(100):
            n = random_name()
            if not self.md.one("SELECT 1 FROM containers WHERE name=?", (n,)):
                return n
        return random_name() + str(secrets.randbelow(100))

    # Views ------------------------------------------------------------------------------------
    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        doc = self.get(ref)
        out = {k: v for k, v in doc.items() if not k.startswith("_") and k not in ("ImageRef", "NetworkingConfig")}
        if size:
            out["SizeRw"], out["SizeRootFs"] = self.size_rw(doc), 0
        return out

    def size_rw(self, doc: dict[str, Any]) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.path(doc["Id"]) / "upper"):
            for f in files:
                try:
                    total += os.lstat(os.path.join(root, f)).st_size
                except OSError:
                    pass
        return total

    def summary(self, doc: dict[str, Any], size: bool = False) -> dict[str, Any]:
        st = doc["State"]
        net = doc.get("NetworkSettings") or {}
        ports = []
        for port, binds in (net.get("Ports") or {}).items():
            num, _, proto = port.partition("/")
            if not binds:
                ports.append({"PrivatePort": int(num), "Type": proto or "tcp"})
            for b in binds or []:
                ports.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(num),
                              "PublicPort": int(b["HostPort"]), "Type": proto or "tcp"})
        cmd = [doc["Path"]] + list(doc.get("Args") or [])
        out = {"Id": doc["Id"], "Names": [doc["Name"]], "Image": doc.get("ImageRef") or doc["Image"],
               "ImageID": doc["Image"], "Command": " ".join(cmd), "Created": int(_ts(doc["Created"])),
               "Ports": ports, "Labels": doc["Config"].get("Labels") or {}, "State": st["Status"],
               "Status": status_text(st), "HostConfig": {"NetworkMode": doc["HostConfig"].get("NetworkMode")},
               "NetworkSettings": {"Networks": net.get("Networks") or {}}, "Mounts": doc.get("Mounts") or []}
        if size:
            out["SizeRw"], out["SizeRootFs"] = self.size_rw(doc), 0
        return out

    def list(self, *, all: bool = False, limit: int | None = None, size: bool = False,
             filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        filters = filters or {}
        allowed = {"status", "label", "name", "ancestor", "id", "exited", "before", "since", "volume",
                   "network", "health", "is-task", "publish", "expose"}
        for key in filters:
            if key not in allowed:
                raise InvalidArgument(f"invalid filter '{key}'")
        for s in filters.get("status", []):
            if s not in ("created", "restarting", "running", "removing", "paused", "exited", "dead"):
                raise InvalidArgument(f"invalid filter 'status={s}'")
        docs = self.all()
        if limit is not None and limit > 0:
            all = True
        out = []
        for doc in docs:
            if not all and not filters.get("status") and doc["State"]["Status"] not in ("running", "paused",
                                                                                            "restarting"):
                continue
            if self._matches(doc, filters):
                out.append(self.summary(doc, size))
            if limit is not None and 0 < limit <= len(out):
                break
        return out

    def _matches(self, doc: dict[str, Any], f: dict[str, list[str]]) -> bool:
        st = doc["State"]
        if f.get("status") and st["Status"] not in f["status"]:
            return False
        if f.get("name") and not any(re.search(p, doc["Name"].lstrip("/")) or re.search(p, doc["Name"])
                                     for p in f["name"]):
            return False
        if f.get("id") and not any(doc["Id"].startswith(p) for p in f["id"]):
            return False
        if f.get("exited") and (st["Status"] != "exited" or str(st["ExitCode"]) not in f["exited"]):
            return False
        labels = doc["Config"].get("Labels") or {}
        for lab in f.get("label", []):
            k, eq, v = lab.partition("=")
            if k not in labels or (eq and labels[k] != v):
                return False
        if f.get("ancestor"):
            ok = False
            for a in f["ancestor"]:
                rec = self.images.find(a)
                if rec is not None and rec.id == doc["Image"] or doc.get("ImageRef") == a:
                    ok = True
            if not ok:
                return False
        if f.get("volume") and not any(m.get("Name") in f["volume"] or m.get("Destination") in f["volume"]
                                       for m in doc.get("Mounts") or []):
            return False
        if f.get("network") and not any(n in f["network"] for n in
                                        (doc.get("NetworkSettings") or {}).get("Networks") or {}):
            return False
        return True

    # Rename, remove, prune ------------------------------------------------------------------------
    def rename(self, ref: str, new: str) -> None:
        doc = self.get(ref)
        new = validate_name(new)
        if new == doc["Name"].lstrip("/"):
            raise Conflict("Renaming a container with the same name as its current name")
        existing = self.md.one("SELECT id FROM containers WHERE name=?", (new,))
        if existing:
            raise Conflict(f'Error when allocating new name: Conflict. The container name "/{new}" is '
                           f'already in use by container "{existing["id"]}". You have to remove (or '
                           f'rename) that container to be able to reuse that name.')
        doc["Name"] = "/" + new
        self.save(doc)

    def delete_record(self, doc: dict[str, Any]) -> None:
        with self.md.transaction() as tx:
            tx.execute("DELETE FROM containers WHERE id=?", (doc["Id"],))
        shutil.rmtree(self.path(doc["Id"]), ignore_errors=True)
        for cb in self.on_remove:
            cb(doc)

    def df_entries(self) -> list[dict[str, Any]]:
        return [self.summary(d, size=True) for d in self.all()]


def status_text(st: dict[str, Any]) -> str:
    s = st["Status"]
    if s == "running":
        return "Up " + human_duration(time.time() - _ts(st["StartedAt"]))
    if s == "paused":
        return "Up " + human_duration(time.time() - _ts(st["StartedAt"])) + " (Paused)"
    if s == "restarting":
        return f"Restarting ({st['ExitCode']}) " + human_duration(time.time() - _ts(st["FinishedAt"])) + " ago"
    if s == "exited":
        if st["FinishedAt"] == ZERO_TIME:
            return "Exited"
        return f"Exited ({st['ExitCode']}) " + human_duration(time.time() - _ts(st["FinishedAt"])) + " ago"
    if s == "created":
        return "Created"
    return s.capitalize()


def _ts(text: str) -> float:
    from workbench.engine.services.logs import parse_ts
    if not text or text.startswith("0001-"):
        return 0.0
    return parse_ts(text)


def _typed(val: Any, typ: type, name: str) -> Any:
    if val is not None and not isinstance(val, typ):
        raise InvalidArgument(f"invalid {name}: expected {typ.__name__}")
    return val


def _merge_config(body: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """The container's Config: request fields over the image's defaults, as Docker merges them."""
    cfg: dict[str, Any] = {}
    for key in ("Cmd", "Entrypoint", "Env"):
        v = body.get(key)
        if isinstance(v, str):
            v = [v]
        if v is not None and not isinstance(v, list):
            raise InvalidArgument(f"invalid {key}: expected a list of strings")
        if v is not None and not all(isinstance(x, str) for x in v):
            raise InvalidArgument(f"invalid {key}: expected a list of strings")
        cfg[key] = v
    entry = cfg["Entrypoint"]
    if entry is None:
        cfg["Entrypoint"] = image.get("Entrypoint")
        if cfg["Cmd"] is None:
            cfg["Cmd"] = image.get("Cmd")
    elif entry == [""] or entry == []:
        cfg["Entrypoint"] = None
    # as moby merges them: the request's variables as given, then the image's it does not set
    # (the default PATH and HOSTNAME are the runtime's, added when the process starts)
    user_env = list(cfg["Env"] or [])
    named = {e.partition("=")[0] for e in user_env}
    cfg["Env"] = user_env + [e for e in image.get("Env") or [] if e.partition("=")[0] not in named]
    labels = dict(image.get("Labels") or {})
    labels.update(_typed(body.get("Labels"), dict, "Labels") or {})
    exposed = dict(image.get("ExposedPorts") or {})
    exposed.update(body.get("ExposedPorts") or {})
    volumes = dict(image.get("Volumes") or {})
    volumes.update(body.get("Volumes") or {})
    return {
        "Hostname": body.get("Hostname") or "", "Domainname": body.get("Domainname") or "",
        "User": body.get("User") if body.get("User") is not None else image.get("User", ""),
        "AttachStdin": bool(body.get("AttachStdin")), "AttachStdout": bool(body.get("AttachStdout")),
        "AttachStderr": bool(body.get("AttachStderr")), "ExposedPorts": exposed or None,
        "Tty": bool(body.get("Tty")), "OpenStdin": bool(body.get("OpenStdin")),
        "StdinOnce": bool(body.get("StdinOnce")), "Env": cfg["Env"], "Cmd": cfg["Cmd"],
        "Image": body.get("Image"), "Volumes": volumes or None,
        "WorkingDir": body.get("WorkingDir") or image.get("WorkingDir", ""), "Entrypoint": cfg["Entrypoint"],
        "OnBuild": None, "Labels": labels, "StopSignal": body.get("StopSignal") or image.get("StopSignal"),
        "StopTimeout": body.get("StopTimeout"), "Healthcheck": body.get("Healthcheck") or image.get("Healthcheck"),
    }


def _validate_host_config(h: dict[str, Any]) -> None:
    for key in ("Memory", "NanoCpus", "PidsLimit", "MemorySwap", "CpuShares", "CpuQuota", "CpuPeriod"):
        v = h.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise InvalidArgument(f"invalid HostConfig.{key}: expected an integer")
    if h.get("Memory") and 0 < h["Memory"] < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if h.get("NanoCpus") and h["NanoCpus"] < 0:
        raise InvalidArgument("Range of CPUs is from 0.01 to the number of CPUs available")
    rp = h.get("RestartPolicy") or {}
    if rp.get("Name") not in (None, "", "no", "always", "on-failure", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy: {rp.get('Name')}")
    if rp.get("Name") in ("always", "unless-stopped") and rp.get("MaximumRetryCount"):
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used with "
                              "'on-failure'")
    if h.get("AutoRemove") and rp.get("Name") not in (None, "", "no"):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    for port, binds in (h.get("PortBindings") or {}).items():
        num, _, proto = str(port).partition("/")
        if not num.isdigit() or proto not in ("", "tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid port specification: \"{port}\"")
        for b in binds or []:
            hp = str((b or {}).get("HostPort") or "")
            if hp and not re.fullmatch(r"\d+(-\d+)?", hp):
                raise InvalidArgument(f"invalid port specification: \"{hp}\"")
    for b in h.get("Binds") or []:
        if not isinstance(b, str) or ":" not in b:
            raise InvalidArgument(f"invalid volume specification: '{b}'")


def _host_config(h: dict[str, Any]) -> dict[str, Any]:
    out = {
        "Binds": h.get("Binds"), "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": h.get("NetworkMode") or "default", "PortBindings": h.get("PortBindings") or {},
        "RestartPolicy": {"Name": (h.get("RestartPolicy") or {}).get("Name") or "no",
                          "MaximumRetryCount": (h.get("RestartPolicy") or {}).get("MaximumRetryCount") or 0},
        "AutoRemove": bool(h.get("AutoRemove")), "VolumeDriver": "", "VolumesFrom": None,
        "CapAdd": h.get("CapAdd"), "CapDrop": h.get("CapDrop"), "Dns": h.get("Dns") or [],
        "DnsOptions": [], "DnsSearch": [], "ExtraHosts": h.get("ExtraHosts"), "Privileged": bool(h.get("Privileged")),
        "PublishAllPorts": bool(h.get("PublishAllPorts")), "ReadonlyRootfs": bool(h.get("ReadonlyRootfs")),
        "ShmSize": h.get("ShmSize") or 67108864, "Memory": h.get("Memory") or 0,
        "MemorySwap": h.get("MemorySwap") or 0, "NanoCpus": h.get("NanoCpus") or 0,
        "CpuShares": h.get("CpuShares") or 0, "CpuPeriod": h.get("CpuPeriod") or 0,
        "CpuQuota": h.get("CpuQuota") or 0, "PidsLimit": h.get("PidsLimit"),
        "Mounts": h.get("Mounts"), "Init": h.get("Init"), "Tmpfs": h.get("Tmpfs"),
        "OomKillDisable": bool(h.get("OomKillDisable")), "Runtime": "runc", "Isolation": "",
        "Ulimits": h.get("Ulimits"), "Sysctls": h.get("Sysctls"), "GroupAdd": h.get("GroupAdd"),
    }
    return out


def _empty_network_settings() -> dict[str, Any]:
    return {"Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": {}}
