"""Per-container monitor (our containerd-shim / conmon): owns the container's stdio and its exit.

A standalone script, never imported by the engine's own modules:

    python -S monitor.py <container_dir> <cid> <flags> <cgroup_path> \\
        --exec <runtime argv...> [--exec <runtime argv...>] --delete <runtime argv...>

`Runtime.start()` builds the runtime vectors with `runc.py`, and the monitor server
(`monitor.py --server`, see launcher.py) forks this in its own session with the write end of a
sync pipe as `sync=<fd>` among the comma-separated flags (fd 3 when absent); it can also run as
a command of its own. It imports stdlib modules only (mostly C ones).

1. Become child subreaper, so the container's init (orphaned when the runtime exits) is our child.
   Flag `unshare-cgroup2`: first enter a private (slave) mount namespace without
   /sys/fs/cgroup/unified, as crun refuses hybrid cgroup hosts otherwise.
2. Run each `--exec` vector (`run --detach`, or `create` then `start`); the first gets the
   container's stdio: stdout/stderr pipes we own, stdin a pipe fed from the `stdin` fifo (flag
   `stdin`; with `stdin-once` the first writer's EOF closes it) or /dev/null.
   Flags `bpf-src=`/`bpf-dst=` (crun): keep the seccomp filter crun compiled, for the next start.
3. Report on the sync fd: `ok <init pid>\\n`, or `err <exit code> <message>\\n` after cleaning up.
4. Append each output line to `<cid>-json.log` as a Docker json-file record as it arrives (records
   split at 16 KiB, partial lines flushed at exit), reap the init, map its status (n, or 128+signal),
   read the cgroup's OOM-kill counter, run `--delete`, then write `exit.json` atomically and exit.

Files in <container_dir>: monitor.pid ("pid starttime cid"), init.pid (written by the runtime),
runtime.log (the runtime's json log), <cid>-json.log, stdin (fifo, only with `stdin`), exit.json.
Our own stderr is monitor.log (opened by the caller). Flag `trace` logs phase times there.
"""

import _json
import _signal
import ctypes
import os
import select
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x00020000
MS_REC, MS_SLAVE = 0x4000, 0x80000
MNT_DETACH = 2
PARTIAL = 16 * 1024
DRAIN_AFTER_EXIT = 2.0
CGROUP_ROOT = "/sys/fs/cgroup"
_enc = _json.encode_basestring
_sync_fd = -1       # set from the `sync=` flag (3 when absent) before anything reports
_DEFAULT_IN_CHILD = (_signal.SIGHUP, _signal.SIGINT, _signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGCHLD)
# glibc's internal signals (SIGCANCEL 32, SIGSETXID 33) are not reachable through Python's signal
# module, yet a parent that used posix_spawn (GNU make 4.3 does) leaves them ignored, and an ignored
# disposition survives exec down to the container: reset them through libc in the child.
_GLIBC_INTERNAL = (32, 33)
_trace = False


def main(argv):
    global _sync_fd, _trace
    if argv[1:] == ["--server"]:
        import monitor_server
        return monitor_server.serve()
    cdir, cid, flags, cgroup, cmds, delete = parse_args(argv)
    opts = dict(f.partition("=")[::2] for f in flags.split(",") if f not in ("", "-"))
    _sync_fd, _trace = int(opts.get("sync") or 3), "trace" in opts
    trace("up")
    os.set_inheritable(_sync_fd, False)
    _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        fail_early(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")
    write_atomic(os.path.join(cdir, "monitor.pid"), f"{os.getpid()} {start_time(os.getpid())} {cid}\n", False)
    if "unshare-cgroup2" in opts:
        private_mounts(libc)
        trace("unshared")
    mon = Monitor(cdir, cid, cgroup, opts)
    init_pid = mon.launch(cmds, delete)
    if opts.get("bpf-src") and opts.get("bpf-dst"):
        keep_bpf(opts["bpf-src"], opts["bpf-dst"])
    report(f"ok {init_pid}\n")
    trace("reported")
    mon.supervise(init_pid)
    trace("drained")
    mon.finish(delete)
    trace("recorded")
    leave(0)


def parse_args(argv):
    if len(argv) < 5 or "--delete" not in argv:
        fail_early("usage: monitor.py DIR ID FLAGS CGROUP --exec ARGV... --delete ARGV...")
    cdir, cid, flags, cgroup = argv[1:5]
    cmds, delete, cur = [], None, None
    for arg in argv[5:]:
        if arg == "--exec":
            cur = []
            cmds.append(cur)
        elif arg == "--delete":
            cur = delete = []
        elif cur is None:
            fail_early(f"unexpected argument {arg!r}")
        else:
            cur.append(arg)
    if not cmds or not delete:
        fail_early("need at least one --exec and a --delete")
    return cdir, cid, flags, cgroup, cmds, delete


class Monitor:
    def __init__(self, cdir, cid, cgroup, opts):
        self.cdir, self.cid, self.cgroup, self.opts = cdir, cid, cgroup, opts
        self.log_fd = os.open(os.path.join(cdir, cid + "-json.log"),
                              os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.streams = {}        # read fd -> "stdout" | "stderr"
        self.bufs = {}           # read fd -> bytes of an unfinished line
        self.stdin = None        # StdinRelay
        self.status = None
        self.finished_at = ""
        self.wake_r = -1
        self.dropped = 0

    # start ------------------------------------------------------------------------------------
    def launch(self, cmds, delete):
        """Run the runtime's vectors; return the init pid, or report the failure and exit."""
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.set_wakeup_fd(wake_w)
        _signal.signal(_signal.SIGCHLD, _noop)         # SIGCHLD now wakes poll() through wake_r
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        self.streams = {out_r: "stdout", err_r: "stderr"}
        if "stdin" in self.opts:
            from monitor_stdin import StdinRelay
            self.stdin = StdinRelay(os.path.join(self.cdir, "stdin"), "stdin-once" in self.opts)
            in_fd = self.stdin.take_container_end()
        else:
            in_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        runtime_log = os.path.join(self.cdir, "runtime.log")
        log_start = os.path.getsize(runtime_log) if os.path.exists(runtime_log) else 0
        for i, cmd in enumerate(cmds):
            code = spawn_wait(cmd, (in_fd, out_w, err_w) if i == 0 else (null, null, null))
            trace(f"exec {i} done")
            if code != 0:
                os.close(out_w)
                os.close(err_w)
                message = runtime_error(runtime_log, log_start, err_r) or \
                    f"{program_name(cmd[0])} exited with status {code}"
                spawn_wait(delete, (null, null, null))
                self.start_failed(message)
        for fd in (out_w, err_w, in_fd):
            os.close(fd)
        try:
            with open(os.path.join(self.cdir, "init.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError) as err:
            spawn_wait(delete, (null, null, null))
            self.start_failed(f"cannot read the container's pid file: {err}")
        os.close(null)
        return pid

    def start_failed(self, message):
        message = docker_message(message)
        code = 127 if ("executable file not found" in message or "no such file or directory" in message) else \
            126 if ("permission denied" in message or "is a directory" in message) else 128
        self.write_exit(code, False, now_rfc3339(), message)
        if self.stdin:
            self.stdin.close()
        report(f"err {code} {message.replace(chr(10), ' ')}\n")
        leave(0)

    # run --------------------------------------------------------------------------------------
    def supervise(self, init_pid):
        """Copy output to the log until the init has exited and its stdio reached EOF."""
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        for fd in self.streams:
            poller.register(fd, select.POLLIN)
        if self.stdin:
            self.stdin.register(poller)
        self.reap(init_pid)
        deadline = None
        while self.streams or self.status is None:
            if self.status is not None and deadline is None:
                deadline = time.monotonic() + DRAIN_AFTER_EXIT
            timeout = None if deadline is None else (deadline - time.monotonic()) * 1000
            if timeout is not None and timeout <= 0:
                break                       # something outside the container holds its stdio open
            reap = False
            for fd, ev in poller.poll(timeout):
                if fd == self.wake_r:
                    drain(fd)
                    reap = True
                elif fd in self.streams:
                    self.on_output(fd, poller)
                elif self.stdin:
                    self.stdin.on_event(fd, ev, poller)
            if reap:                        # after this round's output: log times precede the exit
                self.reap(init_pid)
        for fd in list(self.streams):
            self.close_stream(fd, poller)
        if self.stdin:
            self.stdin.close()

    def reap(self, init_pid):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == init_pid:
                code = os.waitstatus_to_exitcode(status)
                self.status = code if code >= 0 else 128 - code
                self.finished_at = now_rfc3339()

    def on_output(self, fd, poller):
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self.close_stream(fd, poller)
            return
        buf, stream, out, start = self.bufs.get(fd, b"") + data, self.streams[fd], [], 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            while nl + 1 - start > PARTIAL:         # Docker never logs more than 16 KiB per record
                out.append(record(buf[start:start + PARTIAL], stream))
                start += PARTIAL
            out.append(record(buf[start:nl + 1], stream))
            start = nl + 1
        while len(buf) - start >= PARTIAL:
            out.append(record(buf[start:start + PARTIAL], stream))
            start += PARTIAL
        self.bufs[fd] = buf[start:]
        if out:
            self.write_log("".join(out))

    def close_stream(self, fd, poller):
        rest = self.bufs.pop(fd, b"")
        if rest:
            self.write_log(record(rest, self.streams[fd]))
        poller.unregister(fd)
        os.close(fd)
        del self.streams[fd]

    def write_log(self, text):
        try:
            os.write(self.log_fd, text.encode("utf-8", "surrogatepass"))
        except OSError as err:              # e.g. a full disk: keep supervising, count the loss
            self.dropped += 1
            if self.dropped == 1:
                sys.stderr.write(f"monitor: cannot write log: {err}\n")

    # exit -------------------------------------------------------------------------------------
    def finish(self, delete):
        status = 255 if self.status is None else self.status
        error = "" if self.status is not None else "container init was not reaped"
        oom = oom_killed(self.cgroup)                   # before the cgroup goes with the delete
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        code = spawn_wait(delete, (null, null, null))
        trace("deleted")
        if code != 0:
            sys.stderr.write(f"monitor: {' '.join(delete)} exited with {code}\n")
        self.write_exit(status, oom, self.finished_at or now_rfc3339(), error)

    def write_exit(self, code, oom, finished, error):
        doc = (f'{{"ExitCode":{int(code)},"OOMKilled":{"true" if oom else "false"},'
               f'"FinishedAt":{_enc(finished)},"Error":{_enc(error)}}}\n')
        write_atomic(os.path.join(self.cdir, "exit.json"), doc, True)


def _noop(signum, frame):
    pass


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: no dlopen in a forked child
_SYS_RT_SIGACTION = {"x86_64": 13, "aarch64": 134}.get(os.uname().machine)


def _default_internal_signals():
    """rt_sigaction(sig, SIG_DFL) for glibc's internal signals; glibc's own wrappers refuse them."""
    if _SYS_RT_SIGACTION is None:
        return
    act = (ctypes.c_ulong * 4)()                       # handler=SIG_DFL, flags, restorer, mask: all 0
    for sig in _GLIBC_INTERNAL:
        _LIBC.syscall(_SYS_RT_SIGACTION, sig, ctypes.byref(act), None, 8)


def spawn_wait(cmd, stdio):
    """Run `cmd` (no shell) with `stdio` as fds 0-2 and wait for it; return its exit code.

    fork+exec rather than posix_spawn: glibc's posix_spawn leaves its internal signals 32/33 ignored
    in the child, and an ignored disposition survives exec, down to the container's processes. The
    child also drops what we ignore (SIGHUP, SIGINT, and Python's SIGPIPE, SIGXFSZ)."""
    pid = os.fork()
    if pid == 0:
        try:
            _signal.set_wakeup_fd(-1)
            for sig in _DEFAULT_IN_CHILD:
                _signal.signal(sig, _signal.SIG_DFL)
            _default_internal_signals()
            _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
            for target, fd in enumerate(stdio):
                if fd == target:
                    os.set_inheritable(fd, True)
                else:
                    os.dup2(fd, target)
            os.execve(cmd[0], cmd, os.environ)
        except BaseException as err:
            os.write(2, f"monitor: cannot run {cmd[0]}: {err}\n".encode())
        os._exit(127)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def record(line, stream):
    return f'{{"log":{_enc(line.decode("utf-8", "replace"))},"stream":"{stream}","time":"{now_rfc3339()}"}}\n'


def now_rfc3339():
    """Go's time.RFC3339Nano in UTC: the fraction's trailing zeros trimmed."""
    secs, frac = divmod(time.time_ns(), 1_000_000_000)
    t = time.gmtime(secs)
    out = f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}T{t[3]:02d}:{t[4]:02d}:{t[5]:02d}"
    return out + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def oom_killed(cgroup):
    """Whether the kernel OOM-killed anything in the cgroup (v1 memory.oom_control, v2 memory.events)."""
    rel = cgroup.lstrip("/")
    for path in (os.path.join(CGROUP_ROOT, "memory", rel, "memory.oom_control"),
                 os.path.join(CGROUP_ROOT, "unified", rel, "memory.events"),
                 os.path.join(CGROUP_ROOT, rel, "memory.events")):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value) > 0
        except (OSError, ValueError):
            continue
    return False


def runtime_error(log_path, offset, err_r):
    """The runtime's last error record appended to its json log since `offset`, else its stderr."""
    import json  # the failure path only: keeps `re` out of the start-up cost
    message = ""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("level") in ("error", "fatal") and rec.get("msg"):
            message = str(rec["msg"])
    if message:
        return message
    os.set_blocking(err_r, False)
    try:
        text = os.read(err_r, 65536).decode("utf-8", "replace")
    except OSError:
        text = ""
    tail = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return tail[-1] if tail else ""


def docker_message(message):
    """Docker's wording for a failed start, whatever the runtime (crun phrases it differently)."""
    import re
    m = re.search(r"executable file `([^`]*)` not found", message)
    if m and "/" in m.group(1):
        message = f'exec: "{m.group(1)}": stat {m.group(1)}: no such file or directory'
    elif m:
        message = f'exec: "{m.group(1)}": executable file not found in $PATH'
    for errno_text in ("No such file or directory", "Permission denied", "Is a directory"):
        message = message.replace(errno_text, errno_text.lower())
    return f"OCI runtime create failed: {message}: unknown"


def private_mounts(libc):
    """A private (slave) mount namespace without the cgroup2 hierarchy of a hybrid host, for crun."""
    if libc.unshare(CLONE_NEWNS) != 0:
        fail_early(f"unshare(CLONE_NEWNS): {os.strerror(ctypes.get_errno())}")
    if libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None) != 0:
        fail_early(f"mount --make-rslave /: {os.strerror(ctypes.get_errno())}")
    if libc.umount2(os.path.join(CGROUP_ROOT, "unified").encode(), MNT_DETACH) != 0:
        sys.stderr.write(f"monitor: umount cgroup2: {os.strerror(ctypes.get_errno())}\n")


def keep_bpf(src, dst):
    """Keep the seccomp filter crun compiled for this container (hard link into the cache), so the
    next container with the same profile passes it as `run.oci.seccomp_bpf_data` instead."""
    try:
        os.link(src, dst)
    except OSError:
        pass


def start_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def write_atomic(path, text, sync):
    """temp file in the same dir → (fsync) → rename → (fsync dir)."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    if sync:
        dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def drain(fd):
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def report(line):
    """Send the one start report; later calls (and a sync fd already closed) are no-ops."""
    global _sync_fd
    fd, _sync_fd = _sync_fd, -1
    if fd < 0:
        return
    try:
        os.write(fd, line.encode("utf-8", "replace"))
    except OSError:
        pass        # the caller went away: supervise regardless
    try:
        os.close(fd)
    except OSError:
        pass


def program_name(path):
    """The runtime's name for messages: a sealed copy runs as /proc/self/fd/N (see runc.py)."""
    if path.startswith("/proc/self/fd/"):
        try:
            target = os.readlink(path)                 # "/memfd:workbench-runtime:crun (deleted)"
            return target.split("workbench-runtime:", 1)[1].split(" ", 1)[0]
        except (OSError, IndexError):
            return "runtime"
    return os.path.basename(path)


def trace(what):
    if _trace:
        sys.stderr.write(f"monitor {what} {time.time():.6f}\n")


def fail_early(message):
    sys.stderr.write(f"monitor: {message}\n")
    report(f"err 128 monitor: {message}\n")
    leave(2)


def leave(code):
    """Exit without interpreter teardown: the caller waits for this process to end."""
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv)
