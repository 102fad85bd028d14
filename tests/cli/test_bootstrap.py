"""`image bootstrap busybox`: the rootfs tar is complete and byte-identical every time."""

from __future__ import annotations

import io
import shutil
import tarfile

import pytest

from workbench.cli.bootstrap import busybox_rootfs, find_busybox, is_static_elf
from workbench.errors import InvalidArgument


@pytest.fixture(scope="module")
def rootfs() -> bytes:
    if not (shutil.which("busybox") or __import__("os").path.exists("/bin/busybox")):
        pytest.fail("busybox-static is required (make setup installs it)")
    return busybox_rootfs()


def test_same_bytes_every_time(rootfs):
    assert busybox_rootfs() == rootfs


def test_layout(rootfs):
    tar = tarfile.open(fileobj=io.BytesIO(rootfs))
    members = {m.name: m for m in tar.getmembers()}
    names = [m.name for m in tar.getmembers()]
    assert names == sorted(names)
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["bin/ls"].issym() and "bin/wget" in members
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    assert members["root"].mode == 0o700
    for d in ("proc", "sys", "dev", "home", "var", "etc"):
        assert members[d].isdir()
    passwd = tar.extractfile("etc/passwd").read().decode()
    assert passwd.startswith("root:x:0:0:") and "nobody:x:65534:65534:" in passwd
    assert tar.extractfile("etc/group").read().startswith(b"root:x:0:")
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" for m in members.values())


def test_static_check():
    assert is_static_elf(find_busybox().read_bytes())
    assert not is_static_elf(open("/bin/ls", "rb").read())  # dynamically linked
    assert not is_static_elf(b"#!/bin/sh\n")


def test_refuses_a_dynamic_busybox(tmp_path):
    fake = tmp_path / "busybox"
    fake.write_bytes(open("/bin/ls", "rb").read())
    with pytest.raises(InvalidArgument, match="not statically linked"):
        busybox_rootfs(str(fake))
    with pytest.raises(InvalidArgument, match="not found"):
        busybox_rootfs(str(tmp_path / "none"))
