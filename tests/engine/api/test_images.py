"""Image endpoints over the real socket: import, list, filters, inspect, history, tag, rmi, prune,
save/load round trips, and bad input."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from workbench.oci.image import chain_ids

from tests.helpers import busybox_rootfs_tar


def _import(engine, data: bytes, repo: str, changes=(), ctype="text/plain", chunked=False, message=""):
    content = iter([data[i:i + 65536] for i in range(0, len(data), 65536)]) if chunked else data
    return engine.api.post("/images/create", params={"fromSrc": "-", "repo": repo, "message": message,
                                                     "changes": list(changes)},
                           content=content, headers={"Content-Type": ctype})


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_import_chunked_gzip_with_wrong_content_type(engine):
    body = gzip.compress(_tar({"hello.txt": b"hi\n"}))
    r = _import(engine, body, "imp-gz:v1", ['CMD ["cat", "/hello.txt"]', "ENV A=1", "LABEL k=v"],
                ctype="application/x-tar", chunked=True)
    assert r.status_code == 200, r.text
    image_id = r.json()["status"]
    assert image_id.startswith("sha256:")
    info = engine.api.get("/images/imp-gz:v1/json").json()
    assert info["Id"] == image_id
    assert info["Config"]["Cmd"] == ["cat", "/hello.txt"]
    assert "A=1" in info["Config"]["Env"]
    assert info["Config"]["Labels"] == {"k": "v"}
    assert info["RootFS"]["Type"] == "layers" and len(info["RootFS"]["Layers"]) == 1
    assert info["RepoTags"] == ["imp-gz:v1"]


def test_list_filters_both_shapes(engine, busybox):
    _import(engine, _tar({"a": b"a"}), "filt-a:1", ["LABEL team=red"])
    cli = engine.api.get("/images/json", params={"filters": json.dumps({"reference": {"filt-*": True}})}).json()
    sdk = engine.api.get("/images/json", params={"filters": json.dumps({"reference": ["filt-*"]})}).json()
    assert [i["RepoTags"] for i in cli] == [["filt-a:1"]] == [i["RepoTags"] for i in sdk]
    lab = engine.api.get("/images/json", params={"filters": json.dumps({"label": ["team=red"]})}).json()
    assert [i["RepoTags"] for i in lab] == [["filt-a:1"]]
    entry = cli[0]
    for key in ("Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "SharedSize", "Labels",
                "Containers"):
        assert key in entry
    assert isinstance(entry["Created"], int)


def test_resolve_by_prefix_and_qualified_names(engine, busybox):
    short = busybox.removeprefix("sha256:")[:12]
    assert engine.api.get(f"/images/{short}/json").json()["Id"] == busybox
    assert engine.api.get(f"/images/{busybox}/json").json()["Id"] == busybox
    assert engine.api.get("/images/docker.io/library/busybox:latest/json").json()["Id"] == busybox
    r = engine.api.get("/images/nosuch:tag/json")
    assert r.status_code == 404 and r.json()["message"] == "No such image: nosuch:tag"


def test_tag_fully_qualified_is_stored_familiar(engine, busybox):
    r = engine.api.post(f"/images/{busybox}/tag", params={"repo": "docker.io/library/bb-tag", "tag": "v1"})
    assert r.status_code == 201
    assert "bb-tag:v1" in engine.api.get("/images/bb-tag:v1/json").json()["RepoTags"]
    assert engine.api.post(f"/images/{busybox}/tag", params={"repo": "Bad/Upper"}).status_code == 400
    assert engine.api.post("/images/nope/tag", params={"repo": "x"}).status_code == 404


def test_history_shape(engine):
    _import(engine, _tar({"f": b"x"}), "hist:1", message="my import")
    h = engine.api.get("/images/hist:1/history").json()
    assert len(h) == 1
    assert h[0]["Comment"] == "my import"
    assert isinstance(h[0]["Created"], int) and h[0]["Size"] > 0 and h[0]["Tags"] == ["hist:1"]


def test_rmi_untag_then_delete(engine):
    image_id = _import(engine, _tar({"z": b"z"}), "rmi-a:1").json()["status"]
    engine.api.post(f"/images/{image_id}/tag", params={"repo": "rmi-b", "tag": "1"})
    layers = engine.api.get(f"/images/{image_id}/json").json()["RootFS"]["Layers"]
    r = engine.api.delete("/images/rmi-a:1")
    assert r.json() == [{"Untagged": "rmi-a:1"}]
    r = engine.api.delete("/images/rmi-b:1")
    # the image, then its layer (no other image has it), listed by chain ID as dockerd does
    assert r.json() == [{"Untagged": "rmi-b:1"}, {"Deleted": image_id}] + [{"Deleted": c} for c in chain_ids(layers)]
    assert engine.api.get(f"/images/{image_id}/json").status_code == 404
    assert not (engine.root / "snapshots" / "snapshots" / chain_ids(layers)[0].split(":")[1]).exists()


def test_rmi_id_with_several_tags_needs_force(engine):
    image_id = _import(engine, _tar({"y": b"y"}), "multi-a:1").json()["status"]
    engine.api.post(f"/images/{image_id}/tag", params={"repo": "multi-b", "tag": "1"})
    assert engine.api.delete(f"/images/{image_id}").status_code == 409
    out = engine.api.delete(f"/images/{image_id}", params={"force": 1}).json()
    assert {"Deleted": image_id} in out


def test_prune_dangling(engine):
    image_id = _import(engine, _tar({"d": b"dangle"}), "").json()["status"]
    dangling = engine.api.get("/images/json", params={"filters": json.dumps({"dangling": ["true"]})}).json()
    assert image_id in [i["Id"] for i in dangling]
    r = engine.api.post("/images/prune", params={"filters": json.dumps({"dangling": ["true"]})}).json()
    assert {"Deleted": image_id} in (r["ImagesDeleted"] or [])


def test_save_load_round_trip_same_id(engine, busybox):
    saved = engine.api.get("/images/get", params={"names": ["busybox:latest"]})
    assert saved.status_code == 200
    data = saved.content
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert "manifest.json" in names and "index.json" in names and "oci-layout" in names
    engine.api.delete("/images/busybox:latest", params={"force": 1})
    r = engine.api.post("/images/load", params={"quiet": 1}, content=gzip.compress(data, 1),
                        headers={"Content-Type": "application/x-tar"})
    assert r.status_code == 200, r.text
    assert "Loaded image: busybox:latest" in r.text
    assert engine.api.get("/images/busybox:latest/json").json()["Id"] == busybox


def test_save_by_name_path(engine, busybox):
    r = engine.api.get("/images/busybox/get")
    assert r.status_code == 200
    manifest = json.loads(tarfile.open(fileobj=io.BytesIO(r.content)).extractfile("manifest.json").read())
    assert manifest[0]["RepoTags"] == ["busybox:latest"]


@pytest.mark.parametrize("body", [b"", b"not a tar at all" * 40, gzip.compress(b"garbage" * 100)])
def test_bad_import_is_400_and_leaves_nothing(engine, body):
    before = engine.api.get("/images/json", params={"all": 1}).json()
    r = _import(engine, body, "broken:1")
    assert r.status_code == 400, r.text
    assert engine.api.get("/images/json", params={"all": 1}).json() == before


@pytest.mark.parametrize("name", ["../escape", "sub/../../escape", "../../../../../../tmp/wb-escape"])
def test_escaping_tar_is_400_nothing_outside(engine, name):
    marker = "escape"
    r = _import(engine, _tar({name: b"evil"}), "evil:1")
    assert r.status_code == 400, r.text
    assert engine.api.get("/images/evil:1/json").status_code == 404
    assert not (engine.root.parent / marker).exists()
    assert not (engine.root / marker).exists()
    assert not __import__("os").path.exists("/tmp/wb-escape")


def test_symlink_escape_tar_is_400(engine):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        link = tarfile.TarInfo("etcdir")
        link.type, link.linkname = tarfile.SYMTYPE, "/tmp"
        t.addfile(link)
        f = tarfile.TarInfo("etcdir/wb-symlink-escape")
        f.size = 4
        t.addfile(f, io.BytesIO(b"evil"))
    r = _import(engine, buf.getvalue(), "evil-link:1")
    assert not __import__("os").path.exists("/tmp/wb-symlink-escape")
    assert r.status_code == 400, r.text


def test_absolute_entry_stays_inside(engine):
    r = _import(engine, _tar({"/wb-abs-escape": b"x"}), "abs:1")
    assert not __import__("os").path.exists("/wb-abs-escape")
    assert r.status_code in (200, 400)


def test_load_garbage_is_400(engine):
    r = engine.api.post("/images/load", content=_tar({"foo": b"bar"}))
    assert r.status_code == 400
    assert "manifest.json" in r.json()["message"]


def test_big_layer_import_roundtrip(engine):
    data = busybox_rootfs_tar()
    r = _import(engine, data, "bb-copy:1", chunked=True)
    assert r.status_code == 200
