"""The thread that owns pyroute2 for the engine, and the reaper of stale veth pairs.

pyroute2's synchronous API refuses to run on a thread whose asyncio loop is running (the daemon's
loop thread), and namespace switches (`setns`) are per-thread. So every network operation of the
engine runs on one worker thread: callers from any thread (event loop included) submit a function
and wait for it. Running them one at a time also serialises IPAM, kernel and firewall changes
without further locks.

Deleting a veth pair costs ~30 ms in the kernel (an RCU grace period), which would dominate
`run --rm` latency. Teardown therefore only unmounts the container's namespace: the kernel then
destroys the namespace and with it the veth pair, in batches, within tens of milliseconds. The
reaper thread checks a little later and deletes any host-side veth still present (a namespace kept
alive by some process). `settle()` waits until nothing is pending, for tests and shutdown.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger("workbench.network")

T = TypeVar("T")
GRACE = 0.5


class Kernel:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="wb-net")
        self._thread: threading.Thread | None = None
        self._ipr: Any = None
        self._pending: dict[str, float] = {}
        self._cond = threading.Condition()
        self._reaper: threading.Thread | None = None
        self._closed = False
        self.links_lock = threading.Lock()     # held by the reaper while deleting, by setup while plugging

    # The worker ---------------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the network thread and return its result (inline when already on it)."""
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        return self._pool.submit(self._enter, fn, args, kwargs).result()

    def _enter(self, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
        self._thread = threading.current_thread()
        return fn(*args, **kwargs)

    @property
    def ipr(self) -> Any:
        """The host namespace's IPRoute (network thread only)."""
        assert threading.current_thread() is self._thread, "IPRoute used off the network thread"
        if self._ipr is None:
            from pyroute2 import IPRoute
            self._ipr = IPRoute()
        return self._ipr

    # The reaper ---------------------------------------------------------------------------------
    def reap(self, names: list[str], *, now: bool = False) -> None:
        """Make sure these host-side links disappear (after a grace period unless `now`)."""
        if not names:
            return
        due = time.monotonic() + (0 if now else GRACE)
        with self._cond:
            for n in names:
                self._pending[n] = min(due, self._pending.get(n, due))
            if self._reaper is None or not self._reaper.is_alive():
                self._reaper = threading.Thread(target=self._reap_loop, name="wb-net-reaper", daemon=True)
                self._reaper.start()
            self._cond.notify_all()

    def forget(self, name: str) -> None:
        """A link of this name is wanted again (container restart): do not reap it.

        Call it holding `links_lock`, then create the link before releasing the lock.
        """
        with self._cond:
            self._pending.pop(name, None)

    def settle(self, timeout: float = 10.0) -> bool:
        """Reap everything pending now and wait for it; True when nothing is left."""
        deadline = time.monotonic() + timeout
        with self._cond:
            for n in self._pending:
                self._pending[n] = 0.0
            self._cond.notify_all()
            while self._pending and time.monotonic() < deadline:
                self._cond.wait(0.05)
            return not self._pending

    def _reap_loop(self) -> None:
        from pyroute2 import IPRoute

        from workbench.engine.network.bridge import delete_link
        with IPRoute() as ipr:
            while True:
                with self._cond:
                    while not self._pending and not self._closed:
                        if not self._cond.wait(5.0):
                            if not self._pending:
                                self._reaper = None
                                return
                    if self._closed and not self._pending:
                        return
                    now = time.monotonic()
                    due = [n for n, t in self._pending.items() if t <= now]
                    if not due:
                        self._cond.wait(min(self._pending.values()) - now)
                        continue
                for name in due:
                    with self.links_lock:
                        with self._cond:
                            if name not in self._pending:      # wanted again meanwhile (forget())
                                continue
                        with contextlib.suppress(Exception):
                            delete_link(ipr, name)
                        with self._cond:
                            self._pending.pop(name, None)
                            self._cond.notify_all()

    def close(self) -> None:
        self.settle(5.0)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._ipr is not None:
            ipr, self._ipr = self._ipr, None
            with contextlib.suppress(Exception):
                self._pool.submit(ipr.close).result(5)
        self._pool.shutdown(wait=True)
