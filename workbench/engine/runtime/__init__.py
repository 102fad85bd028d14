"""The container runtime layer: OCI bundles, the runc/crun wrapper and the per-container monitor.

`Runtime` is what the container service calls. A container's life, seen from here:

1. The service mounts the rootfs and calls `bundle.write_bundle(container_dir, cid, spec)`.
2. `await runtime.start(cid, bundle_dir, container_dir)` starts `monitor.py` in its own session;
   the monitor runs the OCI runtime, owns the container's stdio, and reports the init pid (returned)
   or the runtime's error (raised as `RuntimeFailure`, Docker's wording) before `start` returns.
3. The monitor appends `<cid>-json.log` as output arrives; when the init exits it records the exit
   code and OOM kill, deletes the runtime state and cgroup, writes `exit.json` and exits.
   `await runtime.wait_exit(container_dir)` resolves then (pidfd on the monitor, else polling).
4. After a daemon restart, `adopt(container_dir)` says whether the monitor still runs (None: call
   `wait_exit` again) or how the container ended (an `ExitStatus`, synthesised with 255 and an
   error when the monitor died without writing `exit.json`).

Files in container_dir: config.json (the bundle), monitor.pid, monitor.log, init.pid, runtime.log,
`<cid>-json.log`, exit.json, and `stdin` (a fifo; only for containers created with stdin).
The runtime's own state lives under `state_root` (its `--root`), never in a global location.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import select
import subprocess
import sys
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.engine.runtime.bundle import ANNOTATION_CGROUP, ANNOTATION_STDIN, ANNOTATION_STDIN_ONCE
from workbench.engine.runtime.launcher import MonitorLauncher, alive, monitor_pid, pidfd_of, read_report
from workbench.engine.runtime.runc import (
    Runc,
    RuntimeFailure,
    RuntimeOptions,
    cgroup_hybrid,
    pick_runtime,
    sealed_copy,
)
from workbench.engine.store.durable import atomic_write, atomic_write_json
from workbench.errors import InvalidArgument

__all__ = ["ExitStatus", "Runtime", "RuntimeFailure", "pick_runtime"]

MONITOR = Path(__file__).with_name("monitor.py")
# Equivalent to `python -I -S monitor.py ARGS`, but imported, so its bytecode is cached in __pycache__
# instead of compiled on every start (~5 ms of the ~15 ms the interpreter needs).
_MONITOR_CMD = (sys.executable, "-I", "-S", "-c",
                f"import sys; sys.path.insert(0, {str(MONITOR.parent)!r}); import monitor; "
                "monitor.main(['monitor.py', *sys.argv[1:]])")
START_TIMEOUT = 120.0
CRUN_SECCOMP_BPF = "run.oci.seccomp_bpf_data"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MONITOR_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a container ended, as the monitor recorded it in exit.json."""

    exit_code: int
    oom_killed: bool = False
    finished_at: str = ""           # RFC3339Nano, UTC
    error: str = ""

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ExitStatus:
        return cls(int(doc.get("ExitCode", 255)), bool(doc.get("OOMKilled")), str(doc.get("FinishedAt") or ""),
                   str(doc.get("Error") or ""))

    def to_json(self) -> dict[str, Any]:
        return {"ExitCode": self.exit_code, "OOMKilled": self.oom_killed, "FinishedAt": self.finished_at,
                "Error": self.error}


@dataclass
class _Monitor:
    proc: subprocess.Popen[bytes] | None
    pid: int
    pidfd: int | None


class Runtime:
    """Runs containers from OCI bundles through runc or crun, each under its own monitor process.

    Args:
        state_root: the runtime's `--root` (one per engine root; created 0700).
        binary: "runc", "crun" or a path; None picks crun, else runc (see pick_runtime).
        launch: "run" (`run --detach`: one runtime invocation) or "create-start" (two).
    """

    def __init__(self, state_root: Path, binary: str | None = None, *, launch: str = "run") -> None:
        if launch not in ("run", "create-start"):
            raise InvalidArgument(f"unknown launch mode: {launch!r}")
        self.root = Path(state_root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = pick_runtime(binary)
        self.name = os.path.basename(path)
        self.launch = launch
        exec_fd = sealed_copy(path)
        self.runc = Runc(RuntimeOptions(root=self.root, binary=path, exec_fd=exec_fd))
        if exec_fd is not None:   # open while the Runc lives: monitors hold their own copies
            weakref.finalize(self.runc, os.close, exec_fd)
        # crun refuses a hybrid cgroup host unless it runs where the v2 hierarchy is not mounted
        self.private_mounts = self.name == "crun" and cgroup_hybrid()
        self._monitors: dict[str, _Monitor] = {}
        self._cgroups: dict[str, str] = {}          # cid -> cgroupsPath, for the containers we started
        self._dirs: dict[str, str] = {}             # cid -> container dir (the key of _monitors)
        self.trace = bool(os.environ.get("WORKBENCH_MONITOR_TRACE"))
        self.launcher = MonitorLauncher(_MONITOR_CMD, _MONITOR_ENV, self.runc)
        self.launcher.warm()

    # start --------------------------------------------------------------------------------------
    async def start(self, cid: str, bundle_dir: Path, container_dir: Path) -> int:
        """Start the container's monitor, which creates and starts the container; return its init pid.

        Raises:
            RuntimeFailure: the runtime refused (message in Docker's wording, status 400 for a missing
                or non-executable command) or the monitor could not start.
        """
        _check_id(cid)
        return await asyncio.to_thread(self._start, cid, Path(bundle_dir), Path(container_dir))

    def _start(self, cid: str, bundle: Path, cdir: Path) -> int:
        if self.monitor_alive(cdir):
            raise RuntimeFailure(f"Container {cid} is already running", status=409)
        try:
            config = json.loads((bundle / "config.json").read_bytes())
        except (OSError, ValueError) as err:
            raise RuntimeFailure(f"cannot read the OCI bundle {bundle}: {err}") from err
        annotations = config.get("annotations") or {}
        cgroup = annotations.get(ANNOTATION_CGROUP) or (config.get("linux") or {}).get("cgroupsPath") or "-"
        bpf_flags = self._seccomp_cache(cid, bundle, config)
        self._cgroups[cid] = cgroup
        if self.runc.exists(cid):
            with contextlib.suppress(RuntimeFailure):
                self.runc.delete(cid, force=True)
        for name in ("exit.json", "init.pid"):
            with contextlib.suppress(FileNotFoundError):
                (cdir / name).unlink()
        read_fd, write_fd = os.pipe()
        flags = [f"sync={write_fd}"]
        if annotations.get(ANNOTATION_STDIN) == "true":
            flags.append("stdin")
            if annotations.get(ANNOTATION_STDIN_ONCE) == "true":
                flags.append("stdin-once")
        if self.private_mounts:
            flags.append("unshare-cgroup2")
        if self.trace:
            flags.append("trace")
        flags += bpf_flags
        args = [str(cdir), cid, ",".join(flags), cgroup,
                *self._launch_argv(cid, bundle, cdir), "--delete", *self.runc.delete_argv(cid, force=True,
                                                                                          log=cdir / "runtime.log")]
        try:
            monitor = self.launcher.launch(args, write_fd, cdir)
        except OSError as err:
            os.close(read_fd)
            raise RuntimeFailure(f"cannot start the container monitor: {err}") from err
        finally:
            os.close(write_fd)
        if monitor.pid is not None:
            pidfd = monitor.pidfd if monitor.pidfd is not None else pidfd_of(monitor.pid)
            self._replace_monitor(cdir, _Monitor(monitor.proc, monitor.pid, pidfd))
        else:                        # unconfirmed: until it says who it is, go by monitor.pid
            old = self._monitors.pop(str(cdir), None)
            if old is not None:
                _close_monitor(old)
        self._dirs[cid] = str(cdir)
        try:
            line = read_report(read_fd, START_TIMEOUT)
        finally:
            os.close(read_fd)
        if monitor.pid is None and (info := monitor_pid(cdir)) is not None:
            pidfd = pidfd_of(info[0])            # opened first: then alive() vouches for what it names
            if pidfd is not None and alive(info[0], info[1]):
                self._replace_monitor(cdir, _Monitor(None, info[0], pidfd))
            elif pidfd is not None:
                os.close(pidfd)
        return self._parse_report(line, cid, cdir)

    def close(self) -> None:
        """Let the monitor server go (it exits on EOF; the monitors it started run on)."""
        self.launcher.close()

    def _seccomp_cache(self, cid: str, bundle: Path, config: dict[str, Any]) -> list[str]:
        """crun only: reuse the BPF crun compiled for an identical profile (compiling Docker's profile
        costs crun ~10 ms per start). Patches config.json with `run.oci.seccomp_bpf_data` when the
        filter is cached; otherwise returns the monitor flags that harvest it after this start."""
        seccomp = (config.get("linux") or {}).get("seccomp")
        if self.name != "crun" or not seccomp or "," in str(self.root):
            return []
        key = hashlib.sha256(json.dumps(seccomp, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        cached = self.root / ".seccomp-cache" / f"{key}.bpf"
        try:
            data = cached.read_bytes()
        except FileNotFoundError:
            cached.parent.mkdir(mode=0o700, exist_ok=True)
            return [f"bpf-src={self.root / cid / 'seccomp.bpf'}", f"bpf-dst={cached}"]
        except OSError:
            return []
        config.setdefault("annotations", {})[CRUN_SECCOMP_BPF] = base64.b64encode(data).decode()
        atomic_write(bundle / "config.json", json.dumps(config, separators=(",", ":")).encode(), mode=0o600,
                     sync=False)
        return []

    def _launch_argv(self, cid: str, bundle: Path, cdir: Path) -> list[str]:
        log, pid_file = cdir / "runtime.log", cdir / "init.pid"
        if self.launch == "run":
            return ["--exec", *self.runc.run_argv(cid, bundle, detach=True, pid_file=pid_file, log=log)]
        return ["--exec", *self.runc.create_argv(cid, bundle, pid_file=pid_file, log=log),
                "--exec", *self.runc.start_argv(cid, log=log)]

    def _parse_report(self, line: str, cid: str, cdir: Path) -> int:
        kind, _, rest = line.partition(" ")
        if kind == "ok":
            return int(rest.strip())
        if kind == "err":
            code_text, _, message = rest.partition(" ")
            code = int(code_text) if code_text.isdigit() else 128
            raise RuntimeFailure(message.strip(), exit_status=code, status=400 if code in (126, 127) else 500)
        tail = _tail(cdir / "monitor.log")
        raise RuntimeFailure(f"container monitor for {cid} failed before reporting: {tail or 'no output'}")

    def _replace_monitor(self, cdir: Path, handle: _Monitor) -> None:
        old = self._monitors.pop(str(cdir), None)
        if old is not None:
            _close_monitor(old)
        self._monitors[str(cdir)] = handle

    # verbs on a running container ---------------------------------------------------------------
    def kill(self, cid: str, sig: int) -> None:
        """Send `sig` to the container's init.

        Raises:
            RuntimeFailure: 409 "Container <id> is not running" when it has exited or is gone.
        """
        try:
            self.runc.kill(cid, int(sig))
        except RuntimeFailure as err:
            raise self._not_running(cid, err) from err

    def pause(self, cid: str) -> None:
        """Freeze every process of the container (cgroup freezer); returns once they are frozen."""
        try:
            self.runc.pause(cid)
        except RuntimeFailure as err:
            if not err.missing and self._status(cid) == "paused":
                raise RuntimeFailure(f"Container {cid} is already paused", exit_status=err.exit_status,
                                     stderr=err.stderr, status=409) from err
            raise self._not_running(cid, err) from err
        self._wait_frozen(cid)

    def _wait_frozen(self, cid: str, timeout: float = 2.0) -> None:
        """crun returns while a v1 freezer still says FREEZING; runc waits for FROZEN itself."""
        if self.name == "runc":
            return
        cgroup = self._cgroups.get(cid)
        if cgroup is None:
            with contextlib.suppress(RuntimeFailure, OSError, ValueError):
                bundle = Path(self.runc.state(cid).bundle)
                config = json.loads((bundle / "config.json").read_bytes())
                cgroup = (config.get("linux") or {}).get("cgroupsPath")
        state = Path("/sys/fs/cgroup/freezer") / str(cgroup or "").lstrip("/") / "freezer.state"
        deadline = time.monotonic() + timeout
        with contextlib.suppress(OSError):
            while cgroup and state.read_text().strip() == "FREEZING" and time.monotonic() < deadline:
                time.sleep(0.001)

    def resume(self, cid: str) -> None:
        """Thaw a paused container."""
        try:
            self.runc.resume(cid)
        except RuntimeFailure as err:
            if not err.missing and self._status(cid) == "running":
                raise RuntimeFailure(f"Container {cid} is not paused", exit_status=err.exit_status,
                                     stderr=err.stderr, status=409) from err
            raise self._not_running(cid, err) from err

    def pids(self, cid: str) -> list[int]:
        """Host pids of the container's processes."""
        try:
            return self.runc.ps(cid)
        except RuntimeFailure as err:
            raise self._not_running(cid, err) from err

    def delete(self, cid: str, force: bool = True) -> None:
        """Remove the runtime's state (and cgroup) for `cid`; `force` kills it first if it runs.
        Idempotent: nothing to delete is not an error."""
        key = self._dirs.get(cid)
        handle = self._monitors.get(key) if key else None
        if handle is None or handle.proc is None or handle.proc.poll() is not None:
            if handle is not None:
                _close_monitor(self._monitors.pop(key))   # type: ignore[arg-type]
            self._dirs.pop(cid, None)
            self._cgroups.pop(cid, None)
        if not self.runc.exists(cid):
            return
        try:
            self.runc.delete(cid, force=force)
        except RuntimeFailure as err:
            if not err.missing:
                raise

    def _status(self, cid: str) -> str:
        try:
            return self.runc.state(cid).status
        except RuntimeFailure:
            return ""

    def _not_running(self, cid: str, err: RuntimeFailure) -> RuntimeFailure:
        if err.missing or self._status(cid) in ("", "stopped", "created"):
            return RuntimeFailure(f"Container {cid} is not running", exit_status=err.exit_status,
                                  stderr=err.stderr, missing=err.missing, status=409)
        return err

    # exit and recovery ----------------------------------------------------------------------------
    def exit_status(self, container_dir: Path) -> ExitStatus | None:
        """What the monitor wrote to exit.json, or None if it has not (yet)."""
        try:
            return ExitStatus.from_json(json.loads((Path(container_dir) / "exit.json").read_bytes()))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as err:
            return ExitStatus(255, error=f"unreadable exit.json: {err}")

    def monitor_alive(self, container_dir: Path) -> bool:
        """Whether the container's monitor process still runs: by its pidfd when we started it,
        else by monitor.pid (pid and start time both match)."""
        handle = self._monitors.get(str(container_dir))
        if handle is not None and handle.pidfd is not None:
            if handle.proc is not None:
                handle.proc.poll()                   # reap a monitor we spawned ourselves
            poller = select.poll()
            poller.register(handle.pidfd, select.POLLIN)
            return not poller.poll(0)
        info = monitor_pid(Path(container_dir))
        if info is None:
            return False
        if handle is not None and handle.pid == info[0] and handle.proc is not None:
            return handle.proc.poll() is None
        return alive(info[0], info[1])

    async def wait_exit(self, container_dir: Path) -> ExitStatus:
        """Wait for the container's monitor to finish and return the exit it recorded.

        Uses a pidfd on the monitor (readable when it exits) registered with the event loop; falls
        back to polling where pidfds are unavailable. Never blocks the loop.
        """
        cdir = Path(container_dir)
        fd = self._waitable_pidfd(cdir)
        if fd is not None:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _resolve, done)
            try:
                await done
            finally:
                loop.remove_reader(fd)
                os.close(fd)
        else:
            while self.monitor_alive(cdir):
                await asyncio.sleep(0.05)
        handle = self._monitors.get(str(cdir))
        if handle is not None and handle.proc is not None:
            handle.proc.poll()
        status = self.exit_status(cdir)          # a small local file: read inline
        return status if status is not None else await asyncio.to_thread(self._settle, cdir)

    def _waitable_pidfd(self, cdir: Path) -> int | None:
        handle = self._monitors.get(str(cdir))
        if handle is not None and handle.pidfd is not None:
            return os.dup(handle.pidfd)
        info = monitor_pid(cdir)
        if info is None:
            return None
        fd = pidfd_of(info[0])
        if fd is None:
            return None
        if not alive(info[0], info[1]):          # exited, or the pid now names another process
            os.close(fd)
            return None
        return fd

    def adopt(self, container_dir: Path) -> ExitStatus | None:
        """After a daemon restart: None if the monitor still runs (call `wait_exit`), else how it ended.

        A monitor that died without writing exit.json leaves its container's runtime state behind:
        that is force-deleted and exit code 255 with an error is recorded (and returned).
        """
        cdir = Path(container_dir)
        if self.monitor_alive(cdir):
            return None
        return self._settle(cdir)

    def _settle(self, cdir: Path) -> ExitStatus:
        status = self.exit_status(cdir)
        if status is not None:
            return status
        info = monitor_pid(cdir)
        cid = info[2] if info else cdir.name
        error = "container monitor exited without recording the exit status" if info else \
            "container was never started by this runtime"
        with contextlib.suppress(RuntimeFailure, InvalidArgument):
            _check_id(cid)
            if self.runc.exists(cid):
                self.runc.delete(cid, force=True)
        status = ExitStatus(255, False, _now_rfc3339(), error)
        with contextlib.suppress(OSError):
            atomic_write_json(cdir / "exit.json", status.to_json())
        return status

    def cleanup_orphans(self, live: Iterable[str]) -> list[str]:
        """Delete the runtime state of every container under our root that is not in `live`
        (the ids the caller knows to be running); return the ids removed."""
        keep = set(live)
        removed = []
        try:
            entries = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        except OSError:
            return []
        for cid in entries:
            if cid in keep or not _ID.match(cid):
                continue
            with contextlib.suppress(RuntimeFailure):
                self.runc.delete(cid, force=True)
                removed.append(cid)
        return removed

    @staticmethod
    def stdin_path(container_dir: Path) -> Path:
        """The fifo feeding the container's stdin (exists while a stdin container runs)."""
        return Path(container_dir) / "stdin"

    @staticmethod
    def log_path(container_dir: Path, cid: str) -> Path:
        return Path(container_dir) / f"{cid}-json.log"


# helpers ------------------------------------------------------------------------------------------
def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _check_id(cid: str) -> None:
    if not _ID.match(cid or ""):
        raise InvalidArgument(f"invalid container id: {cid!r}")


def _close_monitor(handle: _Monitor) -> None:
    if handle.proc is not None:
        handle.proc.poll()
    if handle.pidfd is not None:
        with contextlib.suppress(OSError):
            os.close(handle.pidfd)
        handle.pidfd = None


def _tail(path: Path, size: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _now_rfc3339() -> str:
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    out = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        out += ("." + f"{frac:09d}").rstrip("0")
    return out + "Z"
