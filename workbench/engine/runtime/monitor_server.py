"""The monitor server: one interpreter per Runtime that forks a monitor per container.

Part of the monitor script (see monitor.py and, for the daemon's side, launcher.py); it imports
monitor.py as a sibling module and only the standard library otherwise.
"""

import _signal
import array
import json
import os
import socket
import sys

import monitor


def serve():
    """The monitor server (see launcher.py): fork one monitor per request read from fd 0.

    A request is one line of JSON (this monitor's argument list) with the container's sync fd
    attached; the reply is `pid <n>` with a pidfd of the monitor attached (opened before the
    monitor can end and be reaped, so it names that process and no other), or `err <message>`.
    EOF ends the server; the monitors it forked run on, each in its own session; the server reaps
    those that end while it runs (SIGCHLD handler here, default in them)."""
    sock = socket.socket(fileno=0)
    _signal.signal(_signal.SIGCHLD, _reap)
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    data, fds = b"", []
    while True:
        try:
            msg, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(16 * 4))
        except InterruptedError:
            continue
        except OSError:
            os._exit(0)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += array.array("i", payload[: len(payload) - len(payload) % 4])
        if not msg:
            os._exit(0)
        data += msg
        while b"\n" in data:
            line, data = data.split(b"\n", 1)
            sync = fds.pop(0) if fds else -1
            pidfd = -1
            try:
                args = json.loads(line)
                # SIGCHLD blocked until the pidfd is open: a monitor that failed at once stays a
                # zombie (its pid not reused) until we hold it
                _signal.pthread_sigmask(_signal.SIG_BLOCK, [_signal.SIGCHLD])
                try:
                    pid = os.fork()
                    if pid == 0:
                        try:
                            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [_signal.SIGCHLD])
                            sock.detach()            # fd 0: replaced by /dev/null in become()
                            become(args, sync)
                        finally:
                            os._exit(1)              # never back into the server's loop
                    try:
                        pidfd = os.pidfd_open(pid)
                    except (AttributeError, OSError):
                        pidfd = -1
                finally:
                    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [_signal.SIGCHLD])
            except (ValueError, OSError) as err:
                reply, rights = f"err {err}\n", []
            else:
                reply = f"pid {pid}\n"
                rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [pidfd]))] if pidfd >= 0 else []
            if sync >= 0:
                os.close(sync)
            try:
                sock.sendmsg([reply.encode()], rights)
            finally:
                if pidfd >= 0:
                    os.close(pidfd)


def _reap(signum, frame):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def become(args, sync):
    """In a child of the server: turn into the monitor of the container `args` describe."""
    monitor._sync_fd = sync                 # where report() writes, should anything below fail
    try:
        os.setsid()
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        cdir = args[0]
        args[2] = ",".join(f"sync={sync}" if f.startswith("sync=") else f for f in args[2].split(","))
        os.chdir(cdir)
        log = os.open(os.path.join(cdir, "monitor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in {null, log} - {0, 1, 2}:
            os.close(fd)
        monitor.main(["monitor.py", *args])
    except BaseException as err:  # the daemon hears of it on the sync pipe, unless it already has
        import traceback
        traceback.print_exc()
        sys.stderr.flush()
        monitor.report(f"err 128 monitor: {err}\n")
    os._exit(1)
