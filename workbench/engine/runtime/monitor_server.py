"""The monitor server: one interpreter per Runtime that forks a monitor per container.

Part of the monitor script (see monitor.py and, for the daemon's side, launcher.py); it imports
monitor.py as a sibling module and only the standard library otherwise.
"""

import _signal
import array
import json
import os
import socket

import monitor


def serve():
    """The monitor server (see launcher.py): fork one monitor per request read from fd 0.

    A request is one line of JSON (this monitor's argument list) with the container's sync fd
    attached; the reply is `pid <n>` or `err <message>`. EOF ends the server; the monitors it forked
    run on, each in its own session, reaped by the kernel (SIGCHLD ignored here, default in them)."""
    sock = socket.socket(fileno=0)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)
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
            try:
                args = json.loads(line)
                pid = os.fork()
            except (ValueError, OSError) as err:
                reply = f"err {err}\n"
            else:
                if pid == 0:
                    sock.detach()                    # fd 0: replaced by /dev/null in become()
                    become(args, sync)
                reply = f"pid {pid}\n"
            if sync >= 0:
                os.close(sync)
            sock.sendall(reply.encode())


def become(args, sync):
    """In a child of the server: turn into the monitor of the container `args` describe."""
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
    except BaseException as err:  # nothing above us to report to but the sync pipe
        try:
            os.write(sync, f"err 128 monitor: {err}\n".encode())
        except OSError:
            pass
    os._exit(1)
