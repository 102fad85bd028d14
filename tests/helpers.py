"""Test helpers shared by the suites: busybox rootfs tars, mount listing, socket pings."""

from __future__ import annotations

import io
import socket
import subprocess
import tarfile
from functools import lru_cache
from pathlib import Path


def ping(sock: str) -> bool:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(sock)
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        ok = s.recv(32).startswith(b"HTTP/1.1 200")
        s.close()
        return ok
    except OSError:
        return False


def mounts_under(base: Path) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if mp.startswith(str(base)):
            out.append(mp)
    return out


@lru_cache(maxsize=1)
def busybox_rootfs_tar() -> bytes:
    """A minimal rootfs: /bin/busybox with its applets as symlinks, /etc/passwd and /etc/group."""
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add_dir(name: str, mode: int = 0o755) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = tarfile.DIRTYPE, mode
            tar.addfile(ti)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), mode
            tar.addfile(ti, io.BytesIO(data))

        for d in ("bin", "etc", "root", "home", "var", "proc", "sys", "dev", "usr", "usr/bin"):
            add_dir(d, 0o700 if d == "root" else 0o755)
        add_dir("tmp", 0o1777)
        add_file("bin/busybox", Path("/bin/busybox").read_bytes(), 0o755)
        for a in sorted(set(applets)):
            if a == "busybox":
                continue
            ti = tarfile.TarInfo(f"bin/{a}")
            ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(ti)
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
                               b"app:x:1000:1000:app:/home/app:/bin/sh\n")
        add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\napp:x:1000:\n")
    return buf.getvalue()
