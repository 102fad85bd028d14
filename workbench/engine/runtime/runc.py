"""A typed wrapper around an OCI runtime binary (runc, or crun which takes the same verbs).

One method per verb; `RuntimeOptions` becomes the global argv (`--root`, `--log`, `--log-format`),
each verb's keyword arguments become its flags. The `*_argv` methods only build argument vectors:
the per-container monitor runs `run`/`create`/`start`/`delete` itself, from vectors built here, so
this module stays the one place that knows runc's command line. No shell is ever involved.

`--root` always points into the engine's own state directory, so two engines on two roots never see
each other's containers. Failures become `RuntimeFailure` carrying the exit status and the tail of
stderr; with `--log-format json` the message is the last `"level":"error"` record's `msg`.
"""

from __future__ import annotations

import builtins
import errno
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import Unavailable, WorkbenchError

DEFAULT_TIMEOUT = 60.0


class RuntimeFailure(WorkbenchError):
    """The OCI runtime (or the monitor driving it) failed.

    Attributes:
        exit_status: the runtime's exit status (-1 when it never ran or timed out).
        stderr: the tail of what it wrote to stderr (or its log).
        missing: the container is unknown to the runtime (no state under --root).
    """

    def __init__(self, message: str, *, exit_status: int = -1, stderr: str = "", missing: bool = False,
                 status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.exit_status, self.stderr, self.missing = exit_status, stderr, missing


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """Global options of every invocation.

    `exec_fd`: an fd holding a sealed copy of `binary` (see `sealed_copy`); when set, the binary is
    executed as /proc/self/fd/<exec_fd>, and every process that runs it must inherit that fd
    (`Runc.pass_fds`).
    """

    root: Path
    binary: str = "runc"
    log: Path | None = None
    log_format: str = "json"
    debug: bool = False
    exec_fd: int | None = None

    @property
    def executable(self) -> str:
        return self.binary if self.exec_fd is None else f"/proc/self/fd/{self.exec_fd}"

    def argv(self, *, log: Path | None = None) -> list[str]:
        out = [self.executable, "--root", str(self.root)]
        if log or self.log:
            out += ["--log", str(log or self.log)]
        if self.log_format:
            out += ["--log-format", self.log_format]
        if self.debug:
            out.append("--debug")
        return out


@dataclass(frozen=True, slots=True)
class ContainerState:
    """What `state` / `list` report about one container."""

    id: str
    pid: int
    status: str                 # creating | created | running | paused | stopped
    bundle: str
    created: str

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ContainerState:
        return cls(id=doc.get("id", ""), pid=int(doc.get("pid") or 0), status=doc.get("status", ""),
                   bundle=doc.get("bundle", "") or doc.get("bundle_path", ""),
                   created=doc.get("created", ""))


class Runc:
    """One OCI runtime binary bound to one state root."""

    def __init__(self, opts: RuntimeOptions, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.opts = opts
        self.timeout = timeout
        self.pass_fds: tuple[int, ...] = () if opts.exec_fd is None else (opts.exec_fd,)
        """What a process running one of this runtime's argv vectors must inherit."""

    @property
    def name(self) -> str:
        return os.path.basename(self.opts.binary)

    # argv builders (pure) ---------------------------------------------------------------------
    def create_argv(self, cid: str, bundle: Path, *, pid_file: Path | None = None, no_pivot: bool = False,
                    log: Path | None = None) -> list[str]:
        return [*self.opts.argv(log=log), "create", *_bundle_flags(bundle, pid_file, no_pivot), cid]

    def start_argv(self, cid: str, *, log: Path | None = None) -> list[str]:
        return [*self.opts.argv(log=log), "start", cid]

    def run_argv(self, cid: str, bundle: Path, *, detach: bool = True, pid_file: Path | None = None,
                 no_pivot: bool = False, keep: bool = False, log: Path | None = None) -> list[str]:
        flags = ["--detach"] if detach else []
        if keep:
            flags.append("--keep")
        return [*self.opts.argv(log=log), "run", *flags, *_bundle_flags(bundle, pid_file, no_pivot), cid]

    def exec_argv(self, cid: str, process: Path, *, detach: bool = False, pid_file: Path | None = None,
                  log: Path | None = None) -> list[str]:
        """`exec --process <process.json>`: one more process in the running container `cid`."""
        flags = ["--process", str(process)]
        if detach:
            flags.append("--detach")
        if pid_file is not None:
            flags += ["--pid-file", str(pid_file)]
        return [*self.opts.argv(log=log), "exec", *flags, cid]

    def delete_argv(self, cid: str, *, force: bool = False, log: Path | None = None) -> list[str]:
        return [*self.opts.argv(log=log), "delete", *(["--force"] if force else []), cid]

    # verbs ------------------------------------------------------------------------------------
    def create(self, cid: str, bundle: Path, *, pid_file: Path | None = None, no_pivot: bool = False) -> None:
        """Create the container (its init waits on the exec fifo). Its stdio is /dev/null here; the
        monitor runs create itself when the container's stdio matters."""
        self._exec(self.create_argv(cid, bundle, pid_file=pid_file, no_pivot=no_pivot), cid, check=True,
                   detached=True)

    def start(self, cid: str) -> None:
        self._run(self.start_argv(cid), cid)

    def run(self, cid: str, bundle: Path, *, detach: bool = True, pid_file: Path | None = None) -> int:
        """Run the container; attached runs return its exit status (128+n for signal n)."""
        proc = self._exec(self.run_argv(cid, bundle, detach=detach, pid_file=pid_file), cid, check=detach,
                          detached=detach)
        return proc.returncode

    def state(self, cid: str) -> ContainerState:
        out = self._run(self.opts.argv() + ["state", cid], cid)
        return ContainerState.from_json(json.loads(out))

    def list(self) -> builtins.list[ContainerState]:
        out = self._run(self.opts.argv() + ["list", "--format", "json"], "")
        return [ContainerState.from_json(d) for d in (json.loads(out or "null") or [])]

    def kill(self, cid: str, sig: int, *, all_processes: bool = False) -> None:
        self._run(self.opts.argv() + ["kill", *(["--all"] if all_processes else []), cid, str(int(sig))], cid)

    def pause(self, cid: str) -> None:
        self._run(self.opts.argv() + ["pause", cid], cid)

    def resume(self, cid: str) -> None:
        self._run(self.opts.argv() + ["resume", cid], cid)

    def ps(self, cid: str) -> builtins.list[int]:
        """The host pids of every process in the container."""
        out = self._run(self.opts.argv() + ["ps", "--format", "json", cid], cid)
        return [int(p) for p in (json.loads(out or "null") or [])]

    def delete(self, cid: str, *, force: bool = False) -> None:
        self._run(self.delete_argv(cid, force=force), cid)

    def exists(self, cid: str) -> bool:
        """Whether the runtime holds state for `cid` under its root (no process spawned)."""
        return bool(cid) and (self.opts.root / cid).is_dir()

    # plumbing -----------------------------------------------------------------------------------
    def _run(self, argv: Sequence[str], cid: str) -> str:
        return self._exec(argv, cid, check=True).stdout

    def _exec(self, argv: Sequence[str], cid: str, *, check: bool,
              detached: bool = False) -> subprocess.CompletedProcess[str]:
        """Run one invocation. `detached`: the container inherits the runtime's stdio and outlives it,
        so output goes to /dev/null and a file (never pipes we would wait on for EOF)."""
        try:
            if detached:
                with tempfile.TemporaryFile() as err_file:
                    proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=err_file, timeout=self.timeout, check=False, text=True,
                                          pass_fds=self.pass_fds)
                    err_file.seek(0)
                    proc.stdout, proc.stderr = "", err_file.read().decode(errors="replace")
            else:
                proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                      timeout=self.timeout, check=False, pass_fds=self.pass_fds)
        except subprocess.TimeoutExpired as err:
            raise RuntimeFailure(f"{self.name} {argv_verb(argv)} {cid}: timed out after {self.timeout:g}s",
                                 stderr=_text(err.stderr)) from err
        except OSError as err:
            raise RuntimeFailure(f"{self.name}: {err.strerror or err}") from err
        if check and proc.returncode != 0:
            raise self._failure(proc, cid)
        return proc

    def _failure(self, proc: subprocess.CompletedProcess[str], cid: str) -> RuntimeFailure:
        stderr = proc.stderr or ""
        message = error_message(stderr) or f"{self.name} {argv_verb(proc.args)} exited with status {proc.returncode}"
        missing = bool(cid) and not self.exists(cid)
        return RuntimeFailure(message, exit_status=proc.returncode, stderr=stderr[-4096:], missing=missing,
                              status=404 if missing else None)


def cgroup_hybrid() -> bool:
    """True on a cgroup v1 host that also mounts the v2 hierarchy at /sys/fs/cgroup/unified."""
    return os.path.ismount("/sys/fs/cgroup/unified") and not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


_F_ADD_SEALS = 1033
_MFD_EXEC = 0x10
_SEALS = 0x1 | 0x2 | 0x4 | 0x8    # F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE


def sealed_copy(path: str) -> int | None:
    """An fd on a sealed in-memory copy of the runtime binary, or None where that cannot be made.

    runc and crun protect the host binary from a container that writes to /proc/self/exe
    (CVE-2019-5736) by copying themselves into a sealed memfd and re-executing from it, on every
    invocation, unless they already run from one. Executing them from this copy, made once per
    daemon, gives the same protection without the copy and second exec (crun 1.8: 2.7 ms -> 1.3 ms
    per invocation, and no temporary file). The copy is taken at start: a runtime upgraded on
    disk is picked up when the daemon restarts.
    """
    name = f"workbench-runtime:{os.path.basename(path)}"
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        try:   # MFD_EXEC: executable even where vm.memfd_noexec makes memfds noexec by default
            fd = os.memfd_create(name, flags | _MFD_EXEC)
        except OSError as err:
            if err.errno != errno.EINVAL:          # kernels before 6.3 do not know the flag
                raise
            fd = os.memfd_create(name, flags)
    except (AttributeError, OSError):
        return None
    try:
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            done = 0
            while done < size:
                n = os.sendfile(fd, src.fileno(), done, size - done)
                if n == 0:
                    raise OSError(f"{path} shrank while being copied")
                done += n
        fcntl.fcntl(fd, _F_ADD_SEALS, _SEALS)
        if not os.access(f"/proc/self/fd/{fd}", os.X_OK):
            raise OSError(errno.EACCES, "the sealed copy is not executable")
        return fd
    except OSError:
        os.close(fd)
        return None


def pick_runtime(binary: str | None = None) -> str:
    """Resolve the OCI runtime binary: `binary` when given (name or path), else crun, else runc.

    crun comes first because it starts containers faster here (bench: `run --rm` about 60 ms against
    runc's 90 ms); on cgroup-hybrid hosts the monitor runs it in a private mount namespace.

    Raises:
        Unavailable: the requested runtime (or any runtime) is not installed.
    """
    candidates = [binary] if binary else ["crun", "runc"]
    for cand in candidates:
        path = cand if os.sep in cand else shutil.which(cand)
        if path and os.access(path, os.X_OK):
            return path
    raise Unavailable(f"OCI runtime not found: {binary or 'runc or crun'}")


def _bundle_flags(bundle: Path, pid_file: Path | None, no_pivot: bool) -> list[str]:
    flags = ["--bundle", str(bundle)]
    if pid_file is not None:
        flags += ["--pid-file", str(pid_file)]
    if no_pivot:
        flags.append("--no-pivot")
    return flags


def argv_verb(argv: Sequence[str] | str) -> str:
    verbs = {"create", "start", "run", "state", "list", "kill", "pause", "resume", "ps", "delete"}
    return next((a for a in argv if a in verbs), "?") if not isinstance(argv, str) else argv


def error_message(output: str) -> str:
    """The runtime's error from its stderr or log: the last json `error` record's msg, else the last line."""
    last_json, last_text = "", ""
    for line in output.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                last_text = line
                continue
            if isinstance(rec, dict) and rec.get("level") in ("error", "fatal", "panic") and rec.get("msg"):
                last_json = str(rec["msg"])
            continue
        last_text = line
    return last_json or last_text


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")
