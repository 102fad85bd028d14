"""System endpoints and the wire conventions every client depends on."""

from __future__ import annotations


def test_head_ping_has_api_version(engine):
    r = engine.api.head("/_ping")
    assert r.status_code == 200
    assert r.headers["Api-Version"] == "1.41"
    assert r.headers["Ostype"] == "linux"
    assert r.headers["Docker-Experimental"] == "false"
    assert r.content == b""


def test_get_ping_versioned_and_bare(engine):
    assert engine.api.get("/_ping").text == "OK"
    assert engine.api.get("/v1.41/_ping").text == "OK"
    assert engine.api.get("/v1.24/_ping").status_code == 200


def test_too_new_version_is_400(engine):
    r = engine.api.get("/v1.99/version")
    assert r.status_code == 400
    assert r.json()["message"] == "client version 1.99 is too new. Maximum supported API version is 1.41"


def test_version_fields(engine):
    v = engine.api.get("/version").json()
    for key in ("Version", "ApiVersion", "MinAPIVersion", "Os", "Arch", "GitCommit", "GoVersion",
                "KernelVersion", "BuildTime", "Components", "Platform"):
        assert key in v
    assert v["ApiVersion"] == "1.41"
    assert v["Components"][0]["Name"] == "Engine"


def test_info_has_swarm_inactive(engine, busybox):
    info = engine.api.get("/info").json()
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    assert info["Images"] >= 1
    assert info["NCPU"] >= 1
    assert info["OSType"] == "linux"


def test_system_df(engine, busybox):
    df = engine.api.get("/system/df").json()
    assert any(i["Id"] == busybox for i in df["Images"])
    assert df["LayersSize"] > 0
    assert isinstance(df["Containers"], list)


def test_unknown_path_is_json_404(engine):
    r = engine.api.get("/v1.41/nothing/here")
    assert r.status_code == 404
    assert "message" in r.json()


def test_swarm_leave_503_and_plugin_404(engine):
    assert engine.api.post("/swarm/leave").status_code == 503
    assert engine.api.get("/plugins/foo/json").status_code == 404
