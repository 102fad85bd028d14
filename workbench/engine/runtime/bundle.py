"""OCI runtime bundles: a resolved `RunSpec` → `config.json`, with Docker's defaults.

The container service resolves everything image- and user-specific first (argv, env, uid/gid,
mounts, network namespace path) and mounts the rootfs; this module only knows the OCI runtime spec
and Docker's defaults for it: the namespaces, the default capability set, masked and read-only
paths, the standard /proc /dev /sys mounts, the default seccomp profile, the device cgroup rules,
rlimits and the cgroup resources (memory, cpu quota, pids) under `cgroupsPath`.

`write_bundle()` is pure apart from the final atomic write of `<bundle>/config.json`; the rootfs is
referenced by absolute path, never copied. Annotations under `io.workbench.` carry what the
runtime layer needs to know when it starts the container (stdin, cgroup path).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import resource
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.engine.store.durable import atomic_write
from workbench.errors import InvalidArgument

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
CPU_PERIOD = 100_000
NOFILE = 1_048_576
ANNOTATION_STDIN = "io.workbench.stdin"
ANNOTATION_STDIN_ONCE = "io.workbench.stdin-once"
ANNOTATION_CGROUP = "io.workbench.cgroup"

#: Docker's default capability set (moby caps.DefaultCapabilities), in Docker's order.
DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

#: Every capability by number (linux/capability.h); filtered by the kernel's cap_last_cap.
ALL_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats",
    "/sys/devices/virtual/powercap", "/sys/firmware",
)
READONLY_PATHS: tuple[str, ...] = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Docker's device cgroup rules: deny all, then the basic character devices (runc and crun append
# their own default allow-list for null, zero, full, random, urandom, tty, ptmx, pts after these).
_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
)

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "s390x": "s390x",
           "ppc64le": "ppc64le", "riscv64": "riscv64", "mips64": "mips64"}


Mount = tuple[str, str, str, Sequence[str]]     # (source, destination, type, options)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything about one container's process, already resolved by the container service.

    `rootfs` is an already-mounted directory (the overlay); `mounts` are extra mounts (binds,
    volumes, tmpfs, the hosts/hostname/resolv.conf files) as (source, destination, type, options).
    `network` is "none" (a fresh, empty netns), "host" (no netns) or a netns path to join.
    Limits use Docker's units: `memory`/`memory_swap` in bytes (`memory_swap` -1 = unlimited swap,
    None = twice `memory`, as Docker does), `nano_cpus` in 1e-9 CPUs, `pids_limit` in processes.
    """

    args: Sequence[str]
    env: Sequence[str] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: Sequence[int] = ()
    hostname: str = ""
    rootfs: Path = Path("rootfs")
    mounts: Sequence[Mount] = ()
    readonly_rootfs: bool = False
    memory: int | None = None
    memory_swap: int | None = None
    nano_cpus: int | None = None
    pids_limit: int | None = None
    network: str = "none"
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    oom_score_adj: int = 0
    cgroup_parent: str = "/workbench"
    cap_add: Sequence[str] = ()
    cap_drop: Sequence[str] = ()
    privileged: bool = False
    shm_size: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)


def write_bundle(bundle_dir: Path, cid: str, spec: RunSpec) -> Path:
    """Write `<bundle_dir>/config.json` for container `cid` (atomically) and return its path.

    Raises:
        InvalidArgument: an empty command, an unknown capability or inconsistent limits.
    """
    config = build_config(cid, spec)
    path = Path(bundle_dir) / "config.json"
    atomic_write(path, json.dumps(config, separators=(",", ":")).encode(), mode=0o600, sync=False)
    return path


def build_config(cid: str, spec: RunSpec) -> dict[str, Any]:
    """The OCI runtime-spec document for `spec` (pure apart from reading host constants)."""
    if not spec.args:
        raise InvalidArgument("No command specified")
    caps = effective_caps(spec.cap_add, spec.cap_drop, spec.privileged)
    linux: dict[str, Any] = {
        "namespaces": _namespaces(spec.network),
        "cgroupsPath": f"{spec.cgroup_parent.rstrip('/')}/{cid}",
        "resources": _resources(spec),
    }
    if not spec.privileged:
        linux["maskedPaths"] = list(masked_paths())
        linux["readonlyPaths"] = list(READONLY_PATHS)
        linux["seccomp"] = seccomp_profile(caps)
    annotations = dict(spec.annotations)
    annotations[ANNOTATION_CGROUP] = linux["cgroupsPath"]
    if spec.stdin:
        annotations[ANNOTATION_STDIN] = "true"
        if spec.stdin_once:
            annotations[ANNOTATION_STDIN_ONCE] = "true"
    return {
        "ociVersion": OCI_VERSION,
        "process": _process(spec, caps),
        "root": {"path": str(Path(spec.rootfs).resolve()), "readonly": spec.readonly_rootfs},
        "hostname": spec.hostname,
        "mounts": _mounts(spec),
        "annotations": annotations,
        "linux": linux,
    }


def _process(spec: RunSpec, caps: list[str]) -> dict[str, Any]:
    env = list(spec.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    user: dict[str, Any] = {"uid": spec.uid, "gid": spec.gid}
    if spec.additional_gids:
        user["additionalGids"] = [int(g) for g in spec.additional_gids]
    return {
        "terminal": False,
        "user": user,
        "args": list(spec.args),
        "env": env,
        "cwd": spec.cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile_limit(), "soft": nofile_limit()}],
        "noNewPrivileges": False,
        "oomScoreAdj": spec.oom_score_adj,
    }


def _namespaces(network: str) -> list[dict[str, str]]:
    ns = [{"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "ipc"}]
    if network == "none":
        ns.append({"type": "network"})
    elif network != "host":
        if not network.startswith("/"):
            raise InvalidArgument(f"invalid network namespace path: {network!r}")
        ns.append({"type": "network", "path": network})
    return ns


def _mounts(spec: RunSpec) -> list[dict[str, Any]]:
    ro_sys = [] if spec.privileged else ["ro"]
    shm = spec.shm_size or DEFAULT_SHM_SIZE
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro_sys]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*ro_sys, "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm}"]},
    ]
    for source, destination, kind, options in spec.mounts:
        if not str(destination).startswith("/"):
            raise InvalidArgument(f"invalid mount config: mount path must be absolute: {destination!r}")
        mounts.append({"destination": str(destination), "type": kind, "source": str(source),
                       "options": list(options)})
    return mounts


def _resources(spec: RunSpec) -> dict[str, Any]:
    res: dict[str, Any] = {
        "devices": [{"allow": True, "access": "rwm"}] if spec.privileged else [dict(d) for d in _DEVICE_RULES],
    }
    if spec.memory:
        if spec.memory < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        memory: dict[str, Any] = {"limit": spec.memory}
        swap = spec.memory_swap or 2 * spec.memory
        if swap != -1 and swap < spec.memory:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                                  "see usage")
        if swap_accounting():
            memory["swap"] = swap
        res["memory"] = memory
    if spec.nano_cpus:
        if spec.nano_cpus < 0:
            raise InvalidArgument("Range of CPUs is from 0.01 to the number of CPUs available")
        res["cpu"] = {"quota": spec.nano_cpus * CPU_PERIOD // 1_000_000_000, "period": CPU_PERIOD}
    if spec.pids_limit and spec.pids_limit > 0:
        res["pids"] = {"limit": spec.pids_limit}
    return res


# Capabilities ---------------------------------------------------------------------------------------
@functools.cache
def host_caps() -> tuple[str, ...]:
    """Every capability available here (Docker's GetAllCapabilities): known to the kernel and in our
    own bounding set, since no runtime can grant a container more than its parent holds."""
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = len(ALL_CAPS) - 1
    bounding = _cap_mask("CapBnd")
    return tuple(c for i, c in enumerate(ALL_CAPS[: last + 1]) if bounding is None or bounding >> i & 1)


def _normalize_caps(names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        cap = name.strip().upper()
        if cap == "ALL":
            out.append(cap)
            continue
        if not cap.startswith("CAP_"):
            cap = "CAP_" + cap
        if cap not in ALL_CAPS:
            raise InvalidArgument(f"unknown capability: \"{name}\"")
        out.append(cap)
    return out


def effective_caps(cap_add: Sequence[str], cap_drop: Sequence[str], privileged: bool) -> list[str]:
    """Docker's TweakCapabilities: the default set, `--cap-add`/`--cap-drop` (with ALL), privileged."""
    if privileged:
        return list(host_caps())
    if not cap_add and not cap_drop:
        return list(DEFAULT_CAPS)
    adds, drops = _normalize_caps(cap_add), _normalize_caps(cap_drop)
    if "ALL" in adds:
        return [c for c in host_caps() if c not in drops]
    if "ALL" in drops:
        caps = [c for c in adds if c != "ALL"]
    else:
        caps = [c for c in DEFAULT_CAPS if c not in drops] + adds
    return list(dict.fromkeys(caps))


@functools.cache
def nofile_limit() -> int:
    """Docker's NOFILE (1048576), lowered to what this process may grant: without CAP_SYS_RESOURCE
    no process can raise its hard limit, and neither could the runtime for the container."""
    try:
        nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        nr_open = NOFILE
    limit = min(NOFILE, nr_open)
    if not _has_cap(24):                                      # CAP_SYS_RESOURCE
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
    return limit


def _cap_mask(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


def _has_cap(bit: int) -> bool:
    return bool((_cap_mask("CapEff") or 0) >> bit & 1)


@functools.cache
def masked_paths() -> tuple[str, ...]:
    """Docker's masked paths, plus each CPU's thermal_throttle directory where it exists."""
    extra = []
    cpu_dir = Path("/sys/devices/system/cpu")
    try:
        for entry in sorted(os.listdir(cpu_dir)):
            if entry.startswith("cpu") and entry[3:].isdigit() and (cpu_dir / entry / "thermal_throttle").exists():
                extra.append(str(cpu_dir / entry / "thermal_throttle"))
    except OSError:
        pass
    return MASKED_PATHS + tuple(extra)


@functools.cache
def swap_accounting() -> bool:
    """True when the memory cgroup can limit memory+swap (v1 memsw files, or v2 memory.swap.max)."""
    return (Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
            or Path("/sys/fs/cgroup/cgroup.controllers").exists())


# Seccomp ------------------------------------------------------------------------------------------
@functools.cache
def _seccomp_source() -> dict[str, Any]:
    """The default profile, loaded once: host arch and kernel conditions already resolved."""
    doc = json.loads(Path(__file__).with_name("seccomp_default.json").read_text())
    arch = _GOARCH.get(platform.machine(), platform.machine())
    kernel = _kernel_version()
    rules = []
    for rule in doc["syscalls"]:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if exc.get("arches") and arch in exc["arches"]:
            continue
        if inc.get("minKernel") and kernel < _parse_version(inc["minKernel"]):
            continue
        if exc.get("minKernel") and kernel >= _parse_version(exc["minKernel"]):
            continue
        rules.append(rule)
    return {"defaultAction": doc["defaultAction"], "defaultErrnoRet": doc.get("defaultErrnoRet"),
            "architectures": doc["archMap"].get(arch, []), "syscalls": rules}


def seccomp_profile(caps: Sequence[str]) -> dict[str, Any]:
    """Docker's default seccomp profile in OCI form for a container holding `caps`.

    Rules conditional on capabilities are kept only when the bounding set satisfies them, exactly
    as Docker resolves `includes.caps` / `excludes.caps`.
    """
    src = _seccomp_source()
    capset = set(caps)
    syscalls = []
    for rule in src["syscalls"]:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if any(c in capset for c in exc.get("caps", ())):
            continue
        if not all(c in capset for c in inc.get("caps", ())):
            continue
        out: dict[str, Any] = {"names": rule["names"], "action": rule["action"]}
        if "errnoRet" in rule:
            out["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            out["args"] = rule["args"]
        syscalls.append(out)
    profile: dict[str, Any] = {"defaultAction": src["defaultAction"], "architectures": src["architectures"],
                               "syscalls": syscalls}
    if src["defaultErrnoRet"] is not None:
        profile["defaultErrnoRet"] = src["defaultErrnoRet"]
    return profile


def _parse_version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("-", 1)[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _kernel_version() -> tuple[int, ...]:
    return _parse_version(platform.release())
