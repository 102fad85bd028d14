"""VolumeService: Docker's volume objects, filters, in-use protection, prune, copy-up on first use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.engine.services.volumes import VolumeService
from workbench.engine.store.metadata import Metadata
from workbench.errors import Conflict, InvalidArgument, NotFound


@pytest.fixture
def vols(tmp_path: Path):
    users: dict[str, list[str]] = {}
    svc = VolumeService(Metadata(tmp_path / "md.db"), tmp_path / "volumes", in_use=lambda n: users.get(n, []))
    svc.users = users
    yield svc
    for v in svc.list()["Volumes"]:
        users.pop(v["Name"], None)
        svc.remove(v["Name"])


def test_create_inspect_list(vols, tmp_path):
    v = vols.create("data", labels={"app": "db"})
    assert v == {"CreatedAt": v["CreatedAt"], "Driver": "local", "Labels": {"app": "db"},
                 "Mountpoint": str(tmp_path / "volumes" / "data" / "_data"), "Name": "data", "Options": None,
                 "Scope": "local"}
    assert Path(v["Mountpoint"]).is_dir()
    assert vols.inspect("data") == v
    assert vols.create("data") == v                           # creating it again returns it
    anon = vols.create()
    assert len(anon["Name"]) == 64
    listing = vols.list()
    assert listing["Warnings"] is None and {x["Name"] for x in listing["Volumes"]} == {"data", anon["Name"]}
    assert [x["Name"] for x in vols.list({"label": ["app=db"]})["Volumes"]] == ["data"]
    assert [x["Name"] for x in vols.list({"name": ["dat"]})["Volumes"]] == ["data"]
    vols.users["data"] = ["c1"]
    assert [x["Name"] for x in vols.list({"dangling": ["true"]})["Volumes"]] == [anon["Name"]]
    assert [x["Name"] for x in vols.list({"dangling": ["false"]})["Volumes"]] == ["data"]
    with pytest.raises(InvalidArgument, match="invalid filter"):
        vols.list({"colour": ["red"]})
    with pytest.raises(NotFound, match="get nope: no such volume"):
        vols.inspect("nope")
    with pytest.raises(InvalidArgument, match="includes invalid characters"):
        vols.create("bad/name")
    with pytest.raises(NotFound, match="plugin"):
        vols.create("x1", driver="nfs")


def test_remove_in_use_force_and_prune(vols):
    vols.create("busy")
    vols.create("idle", labels={"keep": "no"})
    vols.create("other")
    vols.users["busy"] = ["abc123"]
    with pytest.raises(Conflict, match=r"remove busy: volume is in use - \[abc123\]"):
        vols.remove("busy")
    with pytest.raises(Conflict):
        vols.remove("busy", force=True)
    with pytest.raises(NotFound):
        vols.remove("never")
    vols.remove("never", force=True)
    (Path(vols.inspect("idle")["Mountpoint"]) / "f").write_bytes(b"x" * 10000)
    out = vols.prune({"label": ["keep"]})
    assert out["VolumesDeleted"] == ["idle"] and out["SpaceReclaimed"] >= 10000
    assert vols.prune() == {"VolumesDeleted": ["other"], "SpaceReclaimed": 0}
    assert [v["Name"] for v in vols.list()["Volumes"]] == ["busy"]
    assert not Path(vols.dir / "idle").exists()


def test_mount_source_copies_up_once(vols, tmp_path):
    image = tmp_path / "image" / "srv"
    (image / "sub").mkdir(parents=True)
    (image / "sub" / "f.txt").write_text("from image\n")
    os.symlink("sub/f.txt", image / "link")
    os.chown(image / "sub" / "f.txt", 1234, 5678)
    os.chmod(image, 0o750)
    path, name = vols.mount_source("web", image)
    assert name == "web" and path == vols.dir / "web" / "_data"
    assert (path / "sub" / "f.txt").read_text() == "from image\n"
    assert os.readlink(path / "link") == "sub/f.txt"
    st = os.stat(path / "sub" / "f.txt")
    assert (st.st_uid, st.st_gid) == (1234, 5678) and os.stat(path).st_mode & 0o777 == 0o750
    # data survives; a non-empty volume is never overwritten by the image again
    (path / "sub" / "f.txt").write_text("changed\n")
    path2, _ = vols.mount_source("web", image)
    assert (path2 / "sub" / "f.txt").read_text() == "changed\n"
    anon_path, anon = vols.mount_source(None, None)
    assert len(anon) == 64 and anon_path.is_dir() and vols.inspect(anon)["Name"] == anon


def test_tmpfs_driver_options(vols):
    vols.create("scratch", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    assert vols.inspect("scratch")["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    path, _ = vols.mount_source("scratch")
    assert os.path.ismount(path)
    vols.remove("scratch")
    assert not os.path.exists(path)
