"""The container's stdin, fed from a fifo in its directory (monitor flag `stdin`).

Part of the monitor script (see monitor.py); imported only by monitors whose container has stdin.
"""

import os
import select


class StdinRelay:
    """Feeds the container's stdin pipe from the `stdin` fifo in the container dir.

    Without `once` we hold a writer on the fifo ourselves, so writers may come and go and the
    container's stdin stays open; with `once` the first writer's EOF becomes the container's EOF.
    """

    def __init__(self, path, once):
        self.path = path
        if os.path.lexists(path):
            os.unlink(path)
        os.mkfifo(path, 0o600)
        self.fifo = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.keepalive = None if once else os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        self.container_end, self.pipe_w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self.pipe_w, False)
        self.pending = b""

    def take_container_end(self):
        fd, self.container_end = self.container_end, None
        return fd

    def register(self, poller):
        poller.register(self.fifo, select.POLLIN)

    def on_event(self, fd, ev, poller):
        if fd == self.fifo:
            try:
                data = os.read(self.fifo, 65536)
            except BlockingIOError:
                return
            if data:
                self.pending += data
                self.flush(poller, False)
                return
            poller.unregister(self.fifo)            # the (only) writer left
            os.close(self.fifo)
            self.fifo = None
            if not self.pending:
                self.close()
        elif fd == self.pipe_w:
            if ev & (select.POLLERR | select.POLLHUP):  # the container closed its stdin
                poller.unregister(self.pipe_w)
                self.close(poller)
            else:
                self.flush(poller, True)

    def flush(self, poller, registered):
        try:
            n = os.write(self.pipe_w, self.pending)
        except BlockingIOError:
            n = 0
        except BrokenPipeError:
            n = len(self.pending)
        self.pending = self.pending[n:]
        if self.pending and not registered:         # pause reading until the pipe drains
            poller.unregister(self.fifo)
            poller.register(self.pipe_w, select.POLLOUT)
        elif not self.pending and registered:
            poller.unregister(self.pipe_w)
            if self.fifo is not None:
                poller.register(self.fifo, select.POLLIN)
            else:
                self.close()

    def close(self, poller=None):
        if poller is not None and self.fifo is not None:
            poller.unregister(self.fifo)
        for name in ("fifo", "keepalive", "pipe_w", "container_end"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)
        self.pending = b""
        try:
            os.unlink(self.path)
        except OSError:
            pass


# helpers ----------------------------------------------------------------------------------------
