"""`image bootstrap busybox`: a rootfs tar built from the host's static busybox, byte-identical every time.

The tar holds `/bin/busybox` with every applet of `busybox --list` as a symlink beside it,
`/etc/passwd` (root, nobody), `/etc/group`, `/tmp` (1777), `/root` (0700), `/home`, `/var`, and the
mount points `/proc`, `/sys`, `/dev`. Entries are sorted, owned by 0:0 with empty user and group
names, and dated at the epoch, so the same busybox always gives the same bytes.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

from workbench.errors import InvalidArgument

__all__ = ["busybox_rootfs", "find_busybox", "is_static_elf"]

_MTIME = 0
_DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755, "root": 0o700,
         "sys": 0o755, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "var": 0o755,
         "var/tmp": 0o1777}
_FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": b"root:x:0:\nnobody:x:65534:\n",
}
_PT_INTERP = 3


def find_busybox(path: str | None = None) -> Path:
    """The busybox binary to use: `path`, else the one on PATH, else /bin/busybox."""
    found = path or shutil.which("busybox") or "/bin/busybox"
    binary = Path(found)
    if not binary.is_file():
        raise InvalidArgument(f"busybox not found at {found}: install Debian's busybox-static")
    return binary


def is_static_elf(data: bytes) -> bool:
    """Whether an ELF executable has no program interpreter (PT_INTERP), i.e. is statically linked."""
    if data[:4] != b"\x7fELF":
        return False
    is64, little = data[4] == 2, data[5] == 1
    end = "<" if little else ">"
    if is64:
        phoff, = struct.unpack_from(end + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(end + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 0x2A)
    for i in range(phnum):
        p_type, = struct.unpack_from(end + "I", data, phoff + i * phentsize)
        if p_type == _PT_INTERP:
            return False
    return True


def _applets(binary: Path) -> list[str]:
    try:
        out = subprocess.run([str(binary), "--list"], capture_output=True, text=True, check=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise InvalidArgument(f"cannot list the applets of {binary}: {err}") from err
    return sorted({a for a in out.split() if a and "/" not in a and a != "busybox"})


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = _MTIME, 0, 0, "", ""
    return info


def busybox_rootfs(path: str | None = None) -> bytes:
    """The rootfs tar (uncompressed) for a busybox image.

    Raises:
        InvalidArgument: no busybox, or one that is dynamically linked (it would not run in the image).
    """
    binary = find_busybox(path)
    data = binary.read_bytes()
    if not is_static_elf(data):
        raise InvalidArgument(f"{binary} is not statically linked: install Debian's busybox-static")
    entries: dict[str, tarfile.TarInfo] = {}
    payload: dict[str, bytes] = {}
    for name, mode in _DIRS.items():
        entries[name] = _info(name, tarfile.DIRTYPE, mode)
    entries["bin/busybox"] = _info("bin/busybox", tarfile.REGTYPE, 0o755, len(data))
    payload["bin/busybox"] = data
    for applet in _applets(binary):
        name = f"bin/{applet}"
        entries[name] = _info(name, tarfile.SYMTYPE, 0o777, link="busybox")
    entries["usr/bin/env"] = _info("usr/bin/env", tarfile.SYMTYPE, 0o777, link="../../bin/env")
    for name, content in _FILES.items():
        entries[name] = _info(name, tarfile.REGTYPE, 0o644, len(content))
        payload[name] = content
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(entries):
            info = entries[name]
            tar.addfile(info, io.BytesIO(payload[name]) if name in payload else None)
    return buf.getvalue()
