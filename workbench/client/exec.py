"""`client.exec`: run another process in a running container."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workbench.client import _wire
from workbench.client._records import ExecDetails
from workbench.client._specs import env_list
from workbench.client._streams import AttachStream
from workbench.oci.streams import STDERR, LogFrame

if TYPE_CHECKING:
    from workbench.client._connection import Connection

__all__ = ["ExecAPI", "ExecResult"]

_UPGRADE = {"Connection": "Upgrade", "Upgrade": "tcp"}


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What `exec.run` collected: the exit code and every output frame."""

    exit_code: int
    frames: tuple[LogFrame, ...]

    @property
    def output(self) -> bytes:
        """stdout and stderr interleaved as they arrived."""
        return b"".join(f.data for f in self.frames)

    @property
    def stdout(self) -> bytes:
        return b"".join(f.data for f in self.frames if f.stream != STDERR)

    @property
    def stderr(self) -> bytes:
        return b"".join(f.data for f in self.frames if f.stream == STDERR)


class ExecAPI:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, container: str, cmd: str | Sequence[str], *, stdin: bool = False,
               stdout: bool = True, stderr: bool = True, tty: bool = False,
               env: Mapping[str, str] | Sequence[str] | None = None, workdir: str | None = None,
               user: str | None = None, privileged: bool = False,
               detach_keys: str | None = None) -> str:
        """`POST /containers/{id}/exec`: prepare a process; returns the exec ID.

        Raises:
            Conflict: the container is not running.
        """
        if isinstance(cmd, str):
            import shlex

            cmd = shlex.split(cmd)
        doc = {"Cmd": list(cmd), "AttachStdin": stdin, "AttachStdout": stdout, "AttachStderr": stderr,
               "Tty": tty, "Env": env_list(env), "WorkingDir": workdir or "", "User": user or "",
               "Privileged": privileged}
        if detach_keys:
            doc["DetachKeys"] = detach_keys
        reply = self._conn.json("POST", _wire.path("/containers/{}/exec", container), json=doc)
        return str(reply["Id"])

    def start(self, exec_id: str, *, tty: bool = False) -> AttachStream:
        """`POST /exec/{id}/start` on a hijacked connection: output frames, and stdin if attached."""
        return AttachStream(self._conn.stream("POST", _wire.path("/exec/{}/start", exec_id),
                                              json={"Detach": False, "Tty": tty}, headers=_UPGRADE),
                            raw=tty)

    def start_detached(self, exec_id: str) -> None:
        """`POST /exec/{id}/start` with `Detach: true`: run it in the background."""
        self._conn.request("POST", _wire.path("/exec/{}/start", exec_id),
                           json={"Detach": True, "Tty": False})

    def inspect(self, exec_id: str) -> ExecDetails:
        """`GET /exec/{id}/json`: running state and exit code."""
        return ExecDetails.from_wire(self._conn.json("GET", _wire.path("/exec/{}/json", exec_id)))

    def run(self, container: str, cmd: str | Sequence[str], *,
            env: Mapping[str, str] | Sequence[str] | None = None, workdir: str | None = None,
            user: str | None = None, privileged: bool = False) -> ExecResult:
        """Create, start and collect one exec: the common case in a notebook."""
        exec_id = self.create(container, cmd, env=env, workdir=workdir, user=user, privileged=privileged)
        with self.start(exec_id) as stream:
            frames = tuple(stream)
        code = self.inspect(exec_id).exit_code
        return ExecResult(-1 if code is None else code, frames)
