"""Everything a container needs before its process starts, and the release after it exits:
the rootfs overlay mount, the user, the network, /etc/hosts|hostname|resolv.conf, binds and
volumes, and the OCI bundle. Called from ContainerRunner in a worker thread."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from workbench.engine.runtime.bundle import RunSpec, write_bundle
from workbench.engine.services.users import resolve_user
from workbench.engine.store.paths import mkdir_in, secure_join
from workbench.errors import InvalidArgument, NotFound, WorkbenchError

DEFAULT_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                 "ff02::2\tip6-allrouters\n")


def host_resolv_conf() -> str:
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        lines = []
    keep = [ln for ln in lines if not (ln.startswith("nameserver") and ln.split()[1:2]
                                       and ln.split()[1].startswith("127."))]
    return "\n".join(keep) + "\n"


def prepare_rootfs(runner: Any, doc: dict[str, Any]) -> dict[str, Any]:
    svc = runner.svc
    cid = doc["Id"]
    cdir: Path = svc.path(cid)
    rec = svc.images.get(doc["Image"])
    diff_ids = svc.images.diff_ids(rec)
    chain = runner.layers.unpack(diff_ids) if diff_ids else None
    rootfs, upper, work = cdir / "rootfs", cdir / "upper", cdir / "work"
    for d in (rootfs, upper, work):
        d.mkdir(exist_ok=True)
    if not os.path.ismount(rootfs):
        runner.snapshots.mount(rootfs, upper, work, chain)
    try:
        return _prepare_mounted(runner, doc, cdir, rootfs)
    except BaseException:
        release_rootfs(runner, doc)
        raise


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RUNTIME_PATHS = ("proc", "sys", "dev", "etc/hosts", "etc/hostname", "etc/resolv.conf")
"""What the runtime puts in every container's root (mount points, the files the engine writes),
relative to it: a build leaves them out of its layers, `docker diff` out of the changes."""


def process_env(config_env: list[str], hostname: str, *, tty: bool = False) -> list[str]:
    """A container process's environment as dockerd builds it (CreateDaemonEnvironment): the
    default PATH, HOSTNAME (and TERM for a terminal), each replaced in place by the container's
    own variable of that name, then the container's others in their order."""
    defaults = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}", *(["TERM=xterm"] if tty else [])]
    env = {e.partition("=")[0]: e for e in defaults}
    env.update((e.partition("=")[0], e) for e in config_env)   # a key keeps its first place
    return list(env.values())


def _prepare_mounted(runner: Any, doc: dict[str, Any], cdir: Path, rootfs: Path) -> dict[str, Any]:
    cfg, host = doc["Config"], doc["HostConfig"]
    user = resolve_user(rootfs, cfg.get("User"), host.get("GroupAdd") or ())
    workdir = cfg.get("WorkingDir") or "/"
    if not workdir.startswith("/"):
        raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    mkdir_in(rootfs, workdir, uid=user.uid, gid=user.gid)
    hostname = cfg.get("Hostname") or doc["Id"][:12]
    net = _network(runner, doc, hostname)
    (cdir / "hostname").write_text(hostname + "\n")
    (cdir / "hosts").write_text(net.get("hosts") or (DEFAULT_HOSTS + _host_line(doc, hostname)))
    (cdir / "resolv.conf").write_text(net.get("resolv_conf") or host_resolv_conf())
    mounts, shown = _mounts(runner, doc, cdir, rootfs)
    env = process_env(cfg.get("Env") or [], hostname, tty=bool(cfg.get("Tty")))
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    args = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    spec = RunSpec(
        args=args, env=env, cwd=workdir, uid=user.uid, gid=user.gid, additional_gids=list(user.additional_gids),
        hostname=hostname, rootfs=rootfs, mounts=mounts, readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        memory=host.get("Memory") or None, memory_swap=host.get("MemorySwap") or None,
        nano_cpus=host.get("NanoCpus") or None, pids_limit=host.get("PidsLimit") or None,
        network=net["mode"], tty=bool(cfg.get("Tty")), cap_add=host.get("CapAdd") or [],
        cap_drop=host.get("CapDrop") or [], privileged=bool(host.get("Privileged")),
        stdin=bool(cfg.get("OpenStdin")), stdin_once=bool(cfg.get("StdinOnce")), shm_size=host.get("ShmSize") or None,
    )
    write_bundle(cdir, doc["Id"], spec)
    return {"Mounts": shown}


def _host_line(doc: dict[str, Any], hostname: str) -> str:
    ip = (doc.get("NetworkSettings") or {}).get("IPAddress")
    return f"{ip}\t{hostname}\n" if ip else ""


def _network(runner: Any, doc: dict[str, Any], hostname: str) -> dict[str, Any]:
    """The runtime's network ("host", "none" or a netns path) and the files that go with it."""
    mode = doc["HostConfig"].get("NetworkMode") or "default"
    if runner.networks is None:
        if mode == "host":
            return {"mode": "host", "hosts": None, "resolv_conf": host_resolv_conf()}
        return {"mode": "none"}
    setup = runner.networks.setup_container(doc, hostname)
    ns = doc.setdefault("NetworkSettings", {})
    ns["Networks"] = setup.networks
    ns["Ports"] = setup.ports
    primary = next(iter(setup.networks.values()), {}) if setup.networks else {}
    for key in ("IPAddress", "IPPrefixLen", "Gateway", "MacAddress", "EndpointID"):
        if key in primary:
            ns[key] = primary[key]
    path = setup.netns_path
    ns["SandboxKey"] = path if path and path != "host" else ""
    runtime_mode = "host" if path == "host" else (path or "none")
    return {"mode": runtime_mode, "hosts": setup.hosts, "resolv_conf": setup.resolv_conf}


def _mounts(runner: Any, doc: dict[str, Any], cdir: Path, rootfs: Path) -> tuple[list[Any], list[dict]]:
    """(runtime mounts, Docker's `Mounts` entries) for hosts files, binds, volumes and tmpfs."""
    mounts: list[tuple[str, str, str, list[str]]] = []
    shown: list[dict[str, Any]] = []
    for name in ("hosts", "hostname", "resolv.conf"):
        mounts.append((str(cdir / name), f"/etc/{name}", "bind", ["rbind", "rprivate"]))
    host = doc["HostConfig"]
    specs: list[dict[str, Any]] = []
    for b in host.get("Binds") or []:
        specs.append(_parse_bind(b))
    for m in host.get("Mounts") or []:
        specs.append({"Type": m.get("Type", "volume"), "Source": m.get("Source") or "",
                      "Target": m.get("Target"), "ReadOnly": bool(m.get("ReadOnly")),
                      "TmpfsOptions": m.get("TmpfsOptions") or {}})
    taken = {s["Target"] for s in specs}
    for vol in (doc["Config"].get("Volumes") or {}):
        if vol not in taken:
            specs.append({"Type": "volume", "Source": "", "Target": vol, "ReadOnly": False, "_Anonymous": True})
    previous = {m.get("Destination"): m for m in doc.get("Mounts") or []}
    for s in specs:
        target = s["Target"]
        if not target or not target.startswith("/"):
            raise InvalidArgument(f"invalid mount config: mount path must be absolute: {target!r}")
        opts = ["rbind", "ro" if s["ReadOnly"] else "rw"]
        if s["Type"] == "bind":
            src = s["Source"]
            if not os.path.isabs(src):
                raise InvalidArgument(f"invalid mount config for type \"bind\": invalid mount path: '{src}' "
                                      f"mount path must be absolute")
            if not os.path.exists(src):
                if s.get("_FromBinds"):
                    os.makedirs(src, exist_ok=True)
                else:
                    raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path does "
                                          f"not exist: {src}")
            mounts.append((src, target, "bind", opts))
            shown.append({"Type": "bind", "Source": src, "Destination": target, "Mode": "",
                          "RW": not s["ReadOnly"], "Propagation": "rprivate"})
        elif s["Type"] == "volume":
            if runner.volumes is None:
                raise InvalidArgument("named volumes are not available")
            name = s["Source"] or (previous.get(target) or {}).get("Name") or ""
            image_path = secure_join(rootfs, target)
            path, name = runner.volumes.mount_source(name or None, image_path if image_path.is_dir() else None)
            mounts.append((str(path), target, "bind", opts))
            entry = {"Type": "volume", "Name": name, "Source": str(path), "Destination": target,
                     "Driver": "local", "Mode": "z" if not s["ReadOnly"] else "ro", "RW": not s["ReadOnly"],
                     "Propagation": ""}
            if s.get("_Anonymous") or not s["Source"]:
                entry["_Anonymous"] = True
            shown.append(entry)
        elif s["Type"] == "tmpfs":
            mounts.append(("tmpfs", target, "tmpfs", tmpfs_options(_tmpfs_data(s))))
            shown.append({"Type": "tmpfs", "Source": "", "Destination": target, "Mode": "", "RW": True,
                          "Propagation": ""})
        else:
            raise InvalidArgument(f"invalid mount config: unsupported mount type {s['Type']!r}")
        mkdir_in(rootfs, target)
    for target, data in (host.get("Tmpfs") or {}).items():      # --tmpfs PATH[:OPTIONS]
        if not target.startswith("/"):
            raise InvalidArgument(f"invalid mount config: mount path must be absolute: {target!r}")
        mounts.append(("tmpfs", target, "tmpfs", tmpfs_options(data or "")))
        mkdir_in(rootfs, target)      # dockerd lists these in no container's Mounts: neither do we
    return mounts, shown


_FLAG_PAIRS = {"exec": "noexec", "suid": "nosuid", "dev": "nodev", "ro": "rw", "atime": "noatime"}
_OPPOSITE = {**_FLAG_PAIRS, **{v: k for k, v in _FLAG_PAIRS.items()}}


def _tmpfs_data(spec: dict[str, Any]) -> str:
    """`--mount type=tmpfs,tmpfs-size=..,tmpfs-mode=..` as option text (moby's ConvertTmpfsOptions)."""
    opts = spec.get("TmpfsOptions") or {}
    data = []
    if opts.get("SizeBytes"):
        size = int(opts["SizeBytes"])
        data.append(f"size={size // 1024}k" if size % 1024 == 0 else f"size={size}")
    if opts.get("Mode"):
        data.append(f"mode={int(opts['Mode']):o}")
    if spec.get("ReadOnly"):
        data.append("ro")
    return ",".join(data)


def tmpfs_options(data: str) -> list[str]:
    """A `--tmpfs` mount's options as dockerd merges them: noexec, nosuid, nodev first, then the
    user's (`size=64m,mode=1777,exec`, ...), a later flag overriding its opposite and a later
    `key=value` the same key."""
    merged: dict[str, str] = {}
    for opt in ["noexec", "nosuid", "nodev", *(o.strip() for o in data.split(",") if o.strip())]:
        key = opt.split("=", 1)[0]
        merged.pop(_OPPOSITE.get(key, ""), None)
        merged.pop(key, None)
        merged[key] = opt
    return list(merged.values())


def _parse_bind(spec: str) -> dict[str, Any]:
    parts = spec.split(":")
    if len(parts) < 2 or len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    src, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    ro = "ro" in mode.split(",")
    kind = "bind" if src.startswith("/") else "volume"
    return {"Type": kind, "Source": src, "Target": target, "ReadOnly": ro, "_FromBinds": True}


def release_rootfs(runner: Any, doc: dict[str, Any]) -> None:
    """Undo prepare_rootfs: network teardown and rootfs unmount. Idempotent; never raises."""
    cid = doc["Id"]
    if runner.networks is not None:
        with contextlib.suppress(Exception):
            runner.networks.teardown_container(cid)
    rootfs = runner.svc.path(cid) / "rootfs"
    with contextlib.suppress(OSError, WorkbenchError, NotFound):
        if os.path.ismount(rootfs):
            runner.snapshots.unmount(rootfs)


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
