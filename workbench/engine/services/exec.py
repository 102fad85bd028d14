"""ExecService: `docker exec` — extra processes in a running container via `runc exec`.

Exec instances live in memory, as in Docker: they are created, started once, and their exit code is
kept for `GET /exec/{id}/json`. Output goes to the caller as (stream, bytes) chunks; stdin comes
from the hijacked connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.engine.services.users import resolve_user
from workbench.errors import Conflict, InvalidArgument, NotFound
from workbench.oci.streams import STDERR, STDOUT


@dataclass
class ExecInstance:
    id: str
    container_id: str
    cmd: list[str]
    env: list[str]
    user: str
    workdir: str
    tty: bool
    attach_stdin: bool
    attach_stdout: bool
    attach_stderr: bool
    privileged: bool
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    started: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    runtime_error: str = ""
    missing: bool = False

    def inspect(self) -> dict[str, Any]:
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code, "CanRemove": False,
                "ContainerID": self.container_id, "DetachKeys": "", "OpenStdin": self.attach_stdin,
                "OpenStderr": self.attach_stderr, "OpenStdout": self.attach_stdout, "Pid": self.pid,
                "ProcessConfig": {"tty": self.tty, "entrypoint": self.cmd[0], "arguments": self.cmd[1:],
                                  "privileged": self.privileged, "user": self.user}}


class ExecService:
    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.svc = runner.svc
        self._execs: dict[str, ExecInstance] = {}

    def create(self, ref: str, body: dict[str, Any]) -> ExecInstance:
        doc = self.svc.get(ref)
        if doc["State"]["Status"] != "running":
            if doc["State"]["Status"] == "paused":
                raise Conflict(f"Container {doc['Id']} is paused, unpause the container before exec")
            raise Conflict(f"Container {doc['Id']} is not running")
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd or not isinstance(cmd, list) or not all(isinstance(c, str) for c in cmd):
            raise InvalidArgument("No exec command specified")
        env = body.get("Env") or []
        if not isinstance(env, list):
            raise InvalidArgument("invalid Env: expected a list of strings")
        ex = ExecInstance(secrets.token_hex(32), doc["Id"], cmd, env, body.get("User") or doc["Config"].get("User")
                          or "", body.get("WorkingDir") or doc["Config"].get("WorkingDir") or "/",
                          bool(body.get("Tty")), bool(body.get("AttachStdin")), bool(body.get("AttachStdout")),
                          bool(body.get("AttachStderr")), bool(body.get("Privileged")))
        self._execs[ex.id] = ex
        doc["ExecIDs"] = (doc.get("ExecIDs") or []) + [ex.id]
        return ex

    def get(self, exec_id: str) -> ExecInstance:
        ex = self._execs.get(exec_id)
        if ex is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return ex

    def _process_spec(self, ex: ExecInstance) -> dict[str, Any]:
        cdir = self.svc.path(ex.container_id)
        config = json.loads((cdir / "config.json").read_text())
        proc = dict(config["process"])
        host = self.svc.get(ex.container_id).get("HostConfig") or {}
        user = resolve_user(cdir / "rootfs", ex.user, host.get("GroupAdd") or ())
        env = {e.split("=", 1)[0]: e for e in proc.get("env") or []}
        env.update({e.split("=", 1)[0]: e for e in ex.env})
        proc.update(args=ex.cmd, env=list(env.values()), cwd=ex.workdir, terminal=False,
                    user={"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)})
        proc.pop("consoleSize", None)
        return proc

    def check_process(self, ex: ExecInstance) -> None:
        """Raise when `ex`'s process cannot be set up (an unknown user or group): a detached start
        answers with the error, as dockerd does, where an attached one writes it into the stream."""
        self._process_spec(ex)

    def check_startable(self, ex: ExecInstance) -> None:
        """Raise (before any hijack) when `ex` cannot start: already started, container not running."""
        if ex.started:
            raise Conflict(f"Error: Exec command {ex.id} is already running")
        doc = self.svc.get(ex.container_id)
        if doc["State"]["Status"] != "running":
            raise Conflict(f"Container {ex.container_id} is not running")

    async def run(self, ex: ExecInstance, stdin: asyncio.Queue[bytes | None] | None
                  ) -> AsyncIterator[tuple[int, bytes]]:
        """Start the exec'd process; yield its output; set its exit code before the last chunk."""
        self.check_startable(ex)
        ex.started = True
        spec_path: Path | None = None
        try:
            spec = self._process_spec(ex)       # an unknown user fails here, before any process
            with tempfile.NamedTemporaryFile("w", dir=self.svc.path(ex.container_id), prefix="exec-",
                                             suffix=".json", delete=False) as f:
                json.dump(spec, f)
                spec_path = Path(f.name)
            runc = self.runner.runtime.runc
            argv = [*runc.opts.argv(), "exec", "--process", str(spec_path), ex.container_id]
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, pass_fds=runc.pass_fds)
        except BaseException:
            ex.exit_code = 126                  # what dockerd records for an exec that could not start
            ex.done.set()
            if spec_path is not None:
                spec_path.unlink(missing_ok=True)
            raise
        assert spec_path is not None
        ex.running, ex.pid = True, proc.pid
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        pumps = [asyncio.ensure_future(_pump(proc.stdout, STDOUT, queue)),
                 asyncio.ensure_future(_pump(proc.stderr, STDERR, queue, ex))]
        feeder = asyncio.ensure_future(_feed(stdin, proc.stdin)) if stdin is not None else None
        try:
            open_streams = 2
            while open_streams:
                item = await queue.get()
                if item is None:
                    open_streams -= 1
                    continue
                yield item
            code = await proc.wait()
            ex.exit_code = code if code >= 0 else 128 - code
            if ex.runtime_error:
                yield STDERR, f"OCI runtime exec failed: {ex.runtime_error}: unknown\r\n".encode()
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            if feeder is not None:
                feeder.cancel()
            for p in pumps:
                p.cancel()
            ex.running = False
            if ex.runtime_error:
                ex.exit_code = 127 if ex.missing else 126
            if ex.exit_code is None:
                ex.exit_code = 126
            ex.done.set()
            spec_path.unlink(missing_ok=True)


async def _pump(reader: asyncio.StreamReader | None, stream: int, q: asyncio.Queue[Any],
                ex: ExecInstance | None = None) -> None:
    """Forward output; runc's own JSON error lines on stderr become the exec's runtime error."""
    try:
        while reader is not None and (data := await reader.read(65536)):
            if ex is not None and data.startswith(b"{") and (err := _runtime_error(data)) is not None:
                ex.runtime_error = err
                # 127 only when the error is about the command itself (as moby's
                # translateContainerdStartErr decides): a missing working directory stays 126
                ex.missing = bool(ex.cmd) and ex.cmd[0] in err and ("no such file" in err.lower() or "not found" in err)
                continue
            await q.put((stream, data))
    finally:
        await q.put(None)


def _runtime_error(data: bytes) -> str | None:
    """runc's and crun's own error line (`--log-format json` on stderr), if `data` is one."""
    try:
        doc = json.loads(data.splitlines()[0])
    except ValueError:
        return None
    if isinstance(doc, dict) and doc.get("level") == "error" and "msg" in doc:
        return str(doc["msg"])
    return None


async def _feed(stdin: asyncio.Queue[bytes | None], writer: asyncio.StreamWriter | None) -> None:
    if writer is None:
        return
    try:
        while (data := await stdin.get()) is not None:
            writer.write(data)
            await writer.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
