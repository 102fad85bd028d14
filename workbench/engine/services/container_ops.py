"""ContainerRunner: start, stop, kill, wait, restart, pause, remove, exit handling and recovery.

The lifecycle is driven by the monitor's exit report: a watcher task per running container awaits
`runtime.wait_exit`, then `_on_exit` persists the final state, releases the rootfs mount and the
network, wakes waiters and applies the restart policy or AutoRemove. Waiters are futures registered
*before* the thing they wait for can happen (the CLI posts `wait` before `start`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal as _signal
import subprocess
import time
from typing import Any

from workbench.engine.runtime.lifecycle import ContainerState, check_transition
from workbench.engine.services.containers import ContainerService
from workbench.engine.services.images import rfc3339
from workbench.engine.services.mounts import prepare_rootfs, release_rootfs
from workbench.errors import Conflict, InvalidArgument, NotModified, WorkbenchError

log = logging.getLogger("workbench.containers")


def parse_signal(sig: str | int | None, default: int = _signal.SIGKILL) -> int:
    if sig is None or sig == "":
        return default
    if isinstance(sig, int) or str(sig).isdigit():
        return int(sig)
    name = str(sig).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(_signal.Signals, name))
    except AttributeError:
        raise InvalidArgument(f"Invalid signal: {sig}") from None


class StartFailed(WorkbenchError):
    status = 400


class ContainerRunner:
    def __init__(self, svc: ContainerService, *, runtime: Any, snapshots: Any, layers: Any,
                 networks: Any = None, volumes: Any = None) -> None:
        self.svc = svc
        self.runtime = runtime
        self.snapshots = snapshots
        self.layers = layers
        self.networks = networks
        self.volumes = volumes
        self._locks: dict[str, asyncio.Lock] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._removed_waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._removing: set[str] = set()
        self._readers: dict[str, int] = {}          # attach streams still draining a container's output

    def lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def is_running(self, cid: str) -> bool:
        try:
            return self.svc.get(cid)["State"]["Status"] in ("running", "paused", "restarting")
        except WorkbenchError:
            return False

    @contextlib.contextmanager
    def reading(self, cid: str):
        """Mark an attach stream as reading `cid`'s output: AutoRemove waits for it to drain."""
        self._readers[cid] = self._readers.get(cid, 0) + 1
        try:
            yield
        finally:
            self._readers[cid] -= 1
            if not self._readers[cid]:
                del self._readers[cid]

    async def _readers_drained(self, cid: str, timeout: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self._readers.get(cid) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)

    # Start ------------------------------------------------------------------------------------
    async def start(self, ref: str) -> None:
        doc = self.svc.get(ref)
        async with self.lock(doc["Id"]):
            doc = self.svc.get(doc["Id"])
            state = ContainerState(doc["State"]["Status"])
            if state in (ContainerState.RUNNING, ContainerState.RESTARTING):
                raise NotModified("container already started")
            check_transition(doc["Id"], state, ContainerState.RUNNING)
            doc["_ManualStop"] = False
            await self._start_locked(doc)

    async def _start_locked(self, doc: dict[str, Any]) -> None:
        cid = doc["Id"]
        cdir = self.svc.path(cid)
        loop = asyncio.get_running_loop()
        try:
            spec = await loop.run_in_executor(None, prepare_rootfs, self, doc)
            pid = await self.runtime.start(cid, cdir, cdir)
        except WorkbenchError as err:
            await self._start_failed(doc, err)
            raise
        except Exception as err:
            await self._start_failed(doc, err)
            raise
        st = doc["State"]
        st.update(Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False, Dead=False,
                  Pid=pid, ExitCode=0, Error="", StartedAt=rfc3339(time.time()))
        doc["Mounts"] = spec.get("Mounts", doc.get("Mounts") or [])
        self.svc.save(doc)
        self._watch(cid)

    async def _start_failed(self, doc: dict[str, Any], err: Exception) -> None:
        msg = str(err)
        code = 127 if ("executable file not found" in msg or "no such file or directory" in msg) else \
            126 if ("permission denied" in msg or "is a directory" in msg) else 128
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, release_rootfs, self, doc)
        st = doc["State"]
        st.update(Status="created" if doc["State"]["StartedAt"].startswith("0001") else "exited",
                  Running=False, Pid=0, ExitCode=code, Error=msg, FinishedAt=rfc3339(time.time()))
        self.svc.save(doc)
        self._notify_exit(doc["Id"], code, msg)
        if doc["HostConfig"].get("AutoRemove"):  # after the caller releases the container's lock
            asyncio.get_running_loop().call_soon(
                lambda: asyncio.ensure_future(self._remove_now(doc, volumes=True)))

    def _watch(self, cid: str) -> None:
        old = self._watchers.get(cid)
        if old and not old.done():
            return
        self._watchers[cid] = asyncio.create_task(self._watch_exit(cid), name=f"watch-{cid[:12]}")

    async def _watch_exit(self, cid: str) -> None:
        try:
            status = await self.runtime.wait_exit(self.svc.path(cid))
            await self._on_exit(cid, status)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("exit handling for %s failed", cid[:12])

    async def _on_exit(self, cid: str, status: Any) -> None:
        async with self.lock(cid):
            try:
                doc = self.svc.get(cid)
            except WorkbenchError:
                return
            st = doc["State"]
            code = status.exit_code if status else 255
            st.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0, ExitCode=code,
                      OOMKilled=bool(status and status.oom_killed), Error=(status.error if status else "") or "",
                      FinishedAt=rfc3339(status.finished_at if status and status.finished_at else time.time()))
            await asyncio.get_running_loop().run_in_executor(None, release_rootfs, self, doc)
            restart = self._should_restart(doc, code)
            if restart:
                doc["RestartCount"] = doc.get("RestartCount", 0) + 1
                st["Status"], st["Restarting"] = "restarting", True
            self.svc.save(doc)
        self._notify_exit(cid, code)
        if restart:
            delay = min(0.1 * (2 ** min(doc["RestartCount"] - 1, 10)), 5.0)
            asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(self._restart_policy(cid)))
        elif doc["HostConfig"].get("AutoRemove"):
            await self._remove_now(doc, volumes=True)

    def _should_restart(self, doc: dict[str, Any], code: int) -> bool:
        if doc.get("_ManualStop") or doc["Id"] in self._removing:
            return False
        rp = doc["HostConfig"].get("RestartPolicy") or {}
        name = rp.get("Name") or "no"
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure" and code != 0:
            mx = rp.get("MaximumRetryCount") or 0
            return mx == 0 or doc.get("RestartCount", 0) < mx
        return False

    async def _restart_policy(self, cid: str) -> None:
        async with self.lock(cid):
            try:
                doc = self.svc.get(cid)
            except WorkbenchError:
                return
            if doc["State"]["Status"] != "restarting" or doc.get("_ManualStop"):
                return
            with contextlib.suppress(WorkbenchError):
                await self._start_locked(doc)

    # Waiting ----------------------------------------------------------------------------------
    def waiter(self, ref: str, condition: str | None) -> asyncio.Future[dict[str, Any]]:
        """Register a wait now; the future resolves to Docker's wait body when `condition` holds."""
        condition = condition or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: \"{condition}\"")
        doc = self.svc.get(ref)
        cid = doc["Id"]
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if condition == "not-running" and doc["State"]["Status"] not in ("running", "paused", "restarting"):
            fut.set_result(_wait_body(doc["State"]["ExitCode"]))
        elif condition == "removed":
            self._removed_waiters.setdefault(cid, []).append(fut)
        else:
            self._exit_waiters.setdefault(cid, []).append(fut)
        return fut

    def _notify_exit(self, cid: str, code: int, error: str | None = None) -> None:
        for fut in self._exit_waiters.pop(cid, []):
            if not fut.done():
                fut.set_result(_wait_body(code, error))

    def _notify_removed(self, cid: str, code: int) -> None:
        for fut in self._removed_waiters.pop(cid, []):
            if not fut.done():
                fut.set_result(_wait_body(code))
        for fut in self._exit_waiters.pop(cid, []):
            if not fut.done():
                fut.set_result(_wait_body(code))

    async def _wait_exit(self, cid: str, timeout: float | None) -> bool:
        fut = self.waiter(cid, "not-running")
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except TimeoutError:
            return False

    # Stop, kill, restart, pause ---------------------------------------------------------------------
    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        doc = self.svc.get(ref)
        cid = doc["Id"]
        status = doc["State"]["Status"]
        if status == "restarting":  # between policy restarts: settle it under the lock
            async with self.lock(cid):
                doc = self.svc.get(cid)
                status = doc["State"]["Status"]
                if status == "restarting":
                    doc["_ManualStop"] = True
                    doc["State"].update(Status="exited", Restarting=False)
                    self.svc.save(doc)
                    return
        if status not in ("running", "paused"):
            raise NotModified("container already stopped")
        doc["_ManualStop"] = True
        self.svc.save(doc)
        if timeout is None or timeout < -1:
            timeout = doc["Config"].get("StopTimeout")
            timeout = 10 if timeout is None else timeout
        first = parse_signal(sig or doc["Config"].get("StopSignal"), _signal.SIGTERM)
        if status == "paused":
            with contextlib.suppress(WorkbenchError):
                self.runtime.resume(cid)
        with contextlib.suppress(WorkbenchError):
            self.runtime.kill(cid, first)
        if timeout == -1:
            await self._wait_exit(cid, None)
            return
        if not await self._wait_exit(cid, timeout):
            with contextlib.suppress(WorkbenchError):
                self.runtime.kill(cid, _signal.SIGKILL)
            await self._wait_exit(cid, 30)

    async def kill(self, ref: str, sig: str | int | None = None) -> None:
        doc = self.svc.get(ref)
        signum = parse_signal(sig, _signal.SIGKILL)
        if doc["State"]["Status"] not in ("running", "paused"):
            raise Conflict(f"Cannot kill container: {ref}: Container {doc['Id']} is not running")
        if signum in (_signal.SIGKILL, parse_signal(doc["Config"].get("StopSignal"), _signal.SIGTERM)):
            doc["_ManualStop"] = True
            self.svc.save(doc)
        self.runtime.kill(doc["Id"], signum)
        if doc["State"]["Status"] == "paused" and signum == _signal.SIGKILL:
            with contextlib.suppress(WorkbenchError):
                self.runtime.resume(doc["Id"])
        if signum == _signal.SIGKILL:
            await self._wait_exit(doc["Id"], 10)

    async def restart(self, ref: str, timeout: int | None = None) -> None:
        doc = self.svc.get(ref)
        with contextlib.suppress(NotModified):
            await self.stop(doc["Id"], timeout)
        await self.start(doc["Id"])

    async def pause(self, ref: str) -> None:
        doc = self.svc.get(ref)
        async with self.lock(doc["Id"]):
            doc = self.svc.get(doc["Id"])
            check_transition(doc["Id"], ContainerState(doc["State"]["Status"]), ContainerState.PAUSED)
            self.runtime.pause(doc["Id"])
            doc["State"].update(Status="paused", Paused=True)
            self.svc.save(doc)

    async def unpause(self, ref: str) -> None:
        doc = self.svc.get(ref)
        async with self.lock(doc["Id"]):
            doc = self.svc.get(doc["Id"])
            if doc["State"]["Status"] != "paused":
                raise Conflict(f"Container {doc['Id']} is not paused")
            self.runtime.resume(doc["Id"])
            doc["State"].update(Status="running", Paused=False)
            self.svc.save(doc)

    # Remove and prune -----------------------------------------------------------------------------
    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        doc = self.svc.get(ref)
        cid = doc["Id"]
        if cid in self._removing:
            raise Conflict(f"removal of container {ref} is already in progress")
        if doc["State"]["Status"] in ("running", "paused", "restarting"):
            if not force:
                raise Conflict(f"You cannot remove a {doc['State']['Status']} container {cid}. Stop the "
                               f"container before attempting removal or force remove")
            self._removing.add(cid)
            try:
                if doc["State"]["Status"] == "restarting":
                    doc["State"]["Status"] = "exited"
                else:
                    doc["_ManualStop"] = True
                    self.svc.save(doc)
                    with contextlib.suppress(WorkbenchError):
                        self.runtime.kill(cid, _signal.SIGKILL)
                    with contextlib.suppress(WorkbenchError):
                        self.runtime.resume(cid)
                    if not await self._wait_exit(cid, 15):
                        raise Conflict(f"could not kill running container {cid}, cannot remove")
            finally:
                self._removing.discard(cid)
            doc = self.svc.get(cid)
        await self._remove_now(doc, volumes=volumes)

    async def _remove_now(self, doc: dict[str, Any], *, volumes: bool) -> None:
        cid = doc["Id"]
        await self._readers_drained(cid)
        async with self.lock(cid):
            try:
                doc = self.svc.get(cid)
            except WorkbenchError:
                return
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, release_rootfs, self, doc)
            with contextlib.suppress(WorkbenchError, OSError):
                self.runtime.delete(cid, force=True)
            self.svc.delete_record(doc)
            if volumes and self.volumes is not None:
                for m in doc.get("Mounts") or []:
                    if m.get("Type") == "volume" and m.get("_Anonymous"):
                        with contextlib.suppress(WorkbenchError):
                            self.volumes.remove(m["Name"], force=True)
        self._locks.pop(cid, None)
        self._watchers.pop(cid, None)
        self._notify_removed(cid, doc["State"]["ExitCode"])

    async def prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        deleted, reclaimed = [], 0
        f = dict(filters or {})
        for doc in self.svc.all():
            if doc["State"]["Status"] in ("running", "paused", "restarting"):
                continue
            if not self.svc._matches(doc, {k: v for k, v in f.items() if k == "label"}):
                continue
            reclaimed += self.svc.size_rw(doc)
            await self._remove_now(doc, volumes=False)
            deleted.append(doc["Id"])
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # Top --------------------------------------------------------------------------------------
    def top(self, ref: str, ps_args: str | None = None) -> dict[str, Any]:
        doc = self.svc.get(ref)
        if doc["State"]["Status"] not in ("running", "paused"):
            raise Conflict(f"Container {doc['Id']} is not running")
        pids = set(self.runtime.pids(doc["Id"]))
        args = (ps_args or "-ef").split()
        try:
            out = subprocess.run(["ps", *args], capture_output=True, text=True, check=True, timeout=10).stdout
        except (subprocess.CalledProcessError, FileNotFoundError) as err:
            raise InvalidArgument(f"Error running ps: {err}") from err
        lines = out.splitlines()
        titles = lines[0].split()
        try:
            pid_col = titles.index("PID")
        except ValueError:
            raise InvalidArgument("Couldn't find PID field in ps output") from None
        procs = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in pids:
                procs.append(fields)
        return {"Titles": titles, "Processes": procs}

    # Recovery ---------------------------------------------------------------------------------
    async def recover(self) -> None:
        """After a daemon (re)start: adopt live containers, settle the dead ones, apply policies."""
        for doc in self.svc.all():
            cid = doc["Id"]
            if doc["State"]["Status"] not in ("running", "paused", "restarting"):
                continue
            cdir = self.svc.path(cid)
            status = self.runtime.adopt(cdir)   # None: its monitor still runs it
            if status is None and doc["State"]["Status"] != "restarting":
                self._watch(cid)
                continue
            await self._on_exit(cid, status)
        live = [d["Id"] for d in self.svc.all() if d["State"]["Status"] in ("running", "paused")]
        with contextlib.suppress(Exception):
            self.runtime.cleanup_orphans(live)
        if self.networks is not None:
            live = [d["Id"] for d in self.svc.all() if d["State"]["Status"] in ("running", "paused")]
            with contextlib.suppress(Exception):
                self.networks.reconcile(live)

    async def shutdown(self) -> None:
        for task in self._watchers.values():
            task.cancel()
        for task in list(self._watchers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _wait_body(code: int, error: str | None = None) -> dict[str, Any]:
    return {"StatusCode": code, "Error": {"Message": error} if error else None}

