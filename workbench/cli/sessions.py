"""Attached processes: `run`, `create`, `start -a`, `exec` and `attach`, as iterable sessions.

A session is data, not output: iterating it yields `Notice` (a line for stderr), `ProgressEvent`
(an image pull on the way) and `LogFrame` (the process's output), and leaves `container_id` and
`exit_code` set at the end. The CLI renders them to the terminal; the `%docker` magics stream them
into a cell. Exit codes follow the docker CLI: the container's own code, 125 when docker itself
fails, and 126/127 when the command cannot be run (cli `toStatusError`).
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from workbench.cli.options import spec_from_args
from workbench.client import Client
from workbench.client._wire import from_daemon
from workbench.client.images import split_reference
from workbench.errors import NotFound, WorkbenchError
from workbench.oci.streams import LogFrame, ProgressEvent

__all__ = ["AttachSession", "ExecSession", "Notice", "RunSession", "StartSession", "StatusError",
           "create", "start_exit_code"]

Event = "Notice | ProgressEvent | LogFrame"


@dataclass(frozen=True, slots=True)
class Notice:
    """A line meant for stderr (`Unable to find image ...`, warnings)."""

    text: str


class StatusError(WorkbenchError):
    """A failure that carries the exit status the docker CLI gives it."""

    def __init__(self, message: str, *, exit_code: int, daemon: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.from_daemon = daemon

    @classmethod
    def wrap(cls, err: WorkbenchError, exit_code: int) -> StatusError:
        return cls(str(err), exit_code=exit_code, daemon=from_daemon(err))


def start_exit_code(message: str) -> int:
    """docker's `toStatusError`: 127 for a missing command, 126 for one that cannot run, else 125."""
    if "executable file not found" in message or "no such file or directory" in message \
            or "system cannot find the file specified" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def _pump(stdin: IO[bytes], session: Any) -> None:
    """Copy stdin into an attached connection, then half-close it."""
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    # A raw fd read holds no interpreter lock, so a pump still blocked when the CLI exits is harmless.
    read = (lambda n: os.read(fd, n)) if fd is not None else getattr(stdin, "read1", stdin.read)
    # stdin closed under us or the connection went away: either way the container's stdin ends
    with contextlib.suppress(OSError, ValueError, WorkbenchError):
        while data := read(65536):
            session.send(data)
    with contextlib.suppress(OSError, WorkbenchError):
        session.close_stdin()


def _feed_stdin(stream: Any, stdin: IO[bytes] | None) -> None:
    if not stream.writable:
        return
    if stdin is None:
        stream.close_stdin()
        return
    threading.Thread(target=_pump, args=(stdin, stream), daemon=True, name="workbench-stdin").start()


class Session(abc.ABC):
    """Common state: what the CLI shows while attached, and how it ended. Each kind of session
    (run, start, exec, attach) gives `__iter__`: the events to show, in order."""

    container_id: str | None = None
    exit_code: int | None = None
    tty: bool = False

    def __init__(self, client: Client, args: argparse.Namespace) -> None:
        self.client = client
        self.args = args
        self.stdin: IO[bytes] | None = getattr(args, "stdin", None)

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Notice | ProgressEvent | LogFrame]:
        """Drive the session, yielding what the CLI or a notebook shows as it happens."""

    def run(self) -> int:
        """Consume the session without showing anything; return its exit code."""
        for _ in self:
            continue
        return self.exit_code if self.exit_code is not None else 0

    def _interrupt(self) -> None:
        """Forward Ctrl-C to the container (docker's --sig-proxy)."""
        if self.container_id and getattr(self.args, "sig_proxy", True) and not self.tty:
            with contextlib.suppress(WorkbenchError):
                self.client.containers.kill(self.container_id, "SIGINT")


class RunSession(Session):
    """`run` (create, attach, start, wait) or, with `start=False`, `create`; pulls a missing image."""

    def __init__(self, client: Client, args: argparse.Namespace, *, start: bool = True) -> None:
        super().__init__(client, args)
        self.start = start
        self.detach = bool(getattr(args, "detach", False)) or not start
        self.auto_remove = bool(getattr(args, "rm", False))
        self.tty = bool(args.tty)
        self.warnings: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Notice | ProgressEvent | LogFrame]:
        spec = spec_from_args(self.args, auto_remove=self.auto_remove, detach=self.detach)
        if self.args.pull == "always":
            yield from self._pull()
        yield from self._create(spec)
        if not self.start:
            self.exit_code = 0
            return
        if self.detach:
            self._start()
            self.exit_code = 0
            return
        yield from self._attached()

    def _pull(self) -> Iterator[ProgressEvent]:
        try:
            with self.client.images.pull(self.args.image, platform=self.args.platform) as progress:
                yield from progress
        except WorkbenchError as err:
            raise StatusError.wrap(err, 125) from err

    def _create(self, spec: Any) -> Iterator[Notice | ProgressEvent]:
        create = self.client.containers.create
        try:
            try:
                created = create(spec, name=self.args.name, platform=self.args.platform)
            except NotFound as err:
                if self.args.pull == "never" or not str(err).startswith("No such image"):
                    raise
                name, tag = split_reference(self.args.image)
                wanted = self.args.image if tag else f"{name}:latest"
                yield Notice(f"Unable to find image '{wanted}' locally")
                yield from self._pull()
                created = create(spec, name=self.args.name, platform=self.args.platform)
        except StatusError:
            raise
        except WorkbenchError as err:
            raise StatusError.wrap(err, 125) from err
        self.container_id = created.id
        self.warnings = created.warnings
        for warning in created.warnings:
            yield Notice(f"WARNING: {warning}")

    def _start(self) -> None:
        assert self.container_id
        try:
            self.client.containers.start(self.container_id)
        except WorkbenchError as err:
            raise StatusError.wrap(err, start_exit_code(str(err))) from err

    def _attached(self) -> Iterator[LogFrame]:
        cid = self.container_id
        assert cid
        containers = self.client.containers
        try:
            waiter = containers.waiting(cid, "removed" if self.auto_remove else "next-exit")
        except WorkbenchError as err:
            raise StatusError.wrap(err, 125) from err
        with waiter:
            stream = None
            try:
                stream = containers.attach(cid, stdin=self.args.interactive, tty=self.tty)
            except WorkbenchError:
                stream = None  # an engine without attach: follow the logs after start instead
            try:
                self._start()
            except StatusError:
                if stream is not None:
                    stream.close()
                if self.auto_remove:  # the engine removes it; docker waits for that before exiting
                    with contextlib.suppress(WorkbenchError):
                        waiter.result()
                raise
            try:
                if stream is not None:
                    with stream:
                        _feed_stdin(stream, self.stdin if self.args.interactive else None)
                        yield from stream
                else:
                    with contextlib.suppress(NotFound), \
                            containers.stream_logs(cid, follow=True, tty=self.tty) as logs:
                        yield from logs
            except KeyboardInterrupt:
                self._interrupt()
            result = waiter.result()
        self.exit_code = 125 if result.error else result.status_code
        if result.error:
            raise StatusError(result.error, exit_code=125, daemon=True)


def create(client: Client, args: argparse.Namespace) -> RunSession:
    """`create`: the run session without start; its `container_id` is the result."""
    return RunSession(client, args, start=False)


class StartSession(Session):
    """`start -a [-i]`: attach, start, stream the output, exit with the container's code."""

    def __iter__(self) -> Iterator[LogFrame]:
        containers = self.client.containers
        name = self.args.containers[0]
        details = containers.inspect(name)
        self.container_id, self.tty = details.id, details.tty
        with containers.waiting(details.id, "next-exit") as waiter, \
                containers.attach(details.id, stdin=self.args.interactive, tty=self.tty) as stream:
            try:
                containers.start(details.id)
            except WorkbenchError as err:
                raise StatusError.wrap(err, start_exit_code(str(err))) from err
            _feed_stdin(stream, self.stdin if self.args.interactive else None)
            try:
                yield from stream
            except KeyboardInterrupt:
                self._interrupt()
            result = waiter.result()
        self.exit_code = result.status_code


class ExecSession(Session):
    """`exec [-d] [-i] [-t]`: the command's output, then its exit code from `/exec/{id}/json`."""

    exec_id: str | None = None

    def __iter__(self) -> Iterator[LogFrame]:
        a = self.args
        self.tty = a.tty
        ex = self.client.exec
        self.container_id = a.container
        self.exec_id = ex.create(a.container, a.cmd, stdin=a.interactive and not a.detach, tty=a.tty,
                                 env=a.env or None, workdir=a.workdir, user=a.user, privileged=a.privileged)
        if a.detach:
            ex.start_detached(self.exec_id)
            self.exit_code = 0
            return
        with ex.start(self.exec_id, tty=a.tty) as stream:
            _feed_stdin(stream, self.stdin if a.interactive else None)
            yield from stream
        self.exit_code = self._exit_code()

    def _exit_code(self) -> int:
        import time

        assert self.exec_id
        for _ in range(100):  # the engine records the code before it closes the stream; be lenient
            details = self.client.exec.inspect(self.exec_id)
            if not details.running and details.exit_code is not None:
                return details.exit_code
            time.sleep(0.02)
        return 0 if details.exit_code is None else details.exit_code


class AttachSession(Session):
    """`attach`: the running container's output (and stdin), then its exit code."""

    def __iter__(self) -> Iterator[LogFrame]:
        containers = self.client.containers
        details = containers.inspect(self.args.container)
        self.container_id, self.tty = details.id, details.tty
        if not details.state.running:
            raise StatusError("You cannot attach to a stopped container, start it first",
                              exit_code=1, daemon=True)
        stdin = not self.args.no_stdin and bool(details.config.get("OpenStdin"))
        with containers.attach(details.id, stdin=stdin, tty=self.tty) as stream:
            _feed_stdin(stream, self.stdin if stdin else None)
            try:
                yield from stream
            except KeyboardInterrupt:
                self._interrupt()
        self.exit_code = containers.wait(details.id).status_code
