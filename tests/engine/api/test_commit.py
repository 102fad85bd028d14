"""docker commit: a container's changes become a new image with the base's layers under it."""

from __future__ import annotations

from tests.engine.api.test_containers import create, frames, wait


def test_commit_changes_config_and_runs(engine, busybox):
    cid = create(engine, ["sh", "-c", "echo committed > /made.txt; rm /bin/vi"])
    engine.api.post(f"/containers/{cid}/start")
    wait(engine, cid)
    r = engine.api.post("/commit", params={"container": cid, "repo": "docker.io/library/committed", "tag": "v1",
                                           "comment": "by test", "changes": ['CMD ["cat", "/made.txt"]', "ENV X=1"]},
                        json=None)
    assert r.status_code == 201, r.text
    image_id = r.json()["Id"]
    info = engine.api.get("/images/committed:v1/json").json()
    assert info["Id"] == image_id and info["Config"]["Cmd"] == ["cat", "/made.txt"] and "X=1" in info["Config"]["Env"]
    base_layers = engine.api.get(f"/images/{busybox}/json").json()["RootFS"]["Layers"]
    assert info["RootFS"]["Layers"][:-1] == base_layers and len(info["RootFS"]["Layers"]) == len(base_layers) + 1
    assert info["Parent"] == busybox
    hist = engine.api.get("/images/committed:v1/history").json()
    assert hist[0]["Comment"] == "by test" and hist[0]["Id"] == image_id
    assert hist[1]["Id"] == busybox and "busybox:latest" in hist[1]["Tags"]   # a local parent shows its ID
    out = create(engine, None, Image="committed:v1")
    engine.api.post(f"/containers/{out}/start")
    assert wait(engine, out)["StatusCode"] == 0
    assert frames(engine.api.get(f"/containers/{out}/logs", params={"stdout": 1}).content) == [(1, b"committed\n")]
    check = create(engine, ["sh", "-c", "test -e /bin/vi && echo present || echo gone; cat /etc/hostname"],
                   Image="committed:v1")
    engine.api.post(f"/containers/{check}/start")
    wait(engine, check)
    lines = b"".join(d for _, d in frames(engine.api.get(f"/containers/{check}/logs",
                                                          params={"stdout": 1}).content)).split()
    assert lines[0] == b"gone" and lines[1] == check[:12].encode()


def test_commit_unknown_container_404(engine):
    assert engine.api.post("/commit", params={"container": "nope"}).status_code == 404
