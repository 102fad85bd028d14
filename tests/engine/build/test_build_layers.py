"""What builds leave in the store: one layer per RUN/COPY/ADD from the container's changes (OCI
whiteouts, opaque directories, no runtime mount points), Docker-style history, intermediate images
chained by parent."""

from __future__ import annotations

from tests.engine.build.build_support import BUSYBOX_DF, build, filesystem, remove_image, run_logs, saved, unique
from workbench.oci.image import chain_ids


def test_run_layer_holds_only_the_changes(engine, busybox):
    image = build(engine, dockerfile=BUSYBOX_DF + "RUN echo new > /tmp/new && cat /etc/hosts > /tmp/hosts\n").check()
    config, layers, _ = saved(engine, image)
    top = layers[-1]
    assert top.names == ["tmp", "tmp/hosts", "tmp/new"]
    assert top.data["tmp/new"] == b"new\n" and b"localhost" in top.data["tmp/hosts"]
    assert top.members["tmp"].mode == 0o1777
    assert config["history"][-1] == {"created": config["created"],
                                     "created_by": "/bin/sh -c echo new > /tmp/new && cat /etc/hosts > /tmp/hosts"}
    remove_image(engine, image)


def test_deletions_become_whiteouts_and_opaque_dirs(engine, busybox):
    df = BUSYBOX_DF + """\
RUN mkdir -p /d/keep /d/gone && echo k > /d/keep/f && echo g > /d/gone/f && echo x > /d/file
RUN rm -rf /d/gone /d/file /etc/group
RUN rm -rf /d/keep && mkdir /d/keep && echo fresh > /d/keep/new
"""
    image = build(engine, dockerfile=df).check()
    _, layers, _ = saved(engine, image)
    assert set(layers[-2].names) >= {"d/.wh.gone", "d/.wh.file", "etc/.wh.group"}
    assert "d/keep/.wh..wh..opq" in layers[-1].names and "d/keep/new" in layers[-1].names
    fs = filesystem(layers)
    assert "d/gone/f" not in fs and "d/file" not in fs and "etc/group" not in fs
    assert "d/keep/f" not in fs and fs["d/keep/new"][1] == b"fresh\n"
    code, out = run_logs(engine, image, ["sh", "-c", "ls -a /d /d/keep; test -e /etc/group || echo nogroup"])
    assert out == "/d:\n.\n..\nkeep\n\n/d/keep:\n.\n..\nnew\nnogroup\n"
    remove_image(engine, image)


def test_empty_run_and_config_steps_add_no_layer(engine, busybox):
    image = build(engine, dockerfile=BUSYBOX_DF + "RUN true\nENV A=b\nLABEL x=y\nCMD [\"sh\"]\n").check()
    config, layers, _ = saved(engine, image)
    base_layers = len(saved(engine, busybox)[1])
    assert len(layers) == base_layers
    hist = config["history"][-4:]
    assert [h["created_by"] for h in hist] == ["/bin/sh -c true", "/bin/sh -c #(nop)  ENV A=b",
                                               "/bin/sh -c #(nop)  LABEL x=y", '/bin/sh -c #(nop)  CMD ["sh"]']
    assert all(h["empty_layer"] is True for h in hist)
    remove_image(engine, image)


def test_history_endpoint_and_build_args_in_run_history(engine, busybox):
    name = unique()
    df = BUSYBOX_DF + "ARG V=1\nRUN echo $V > /v\nCOPY f /f\n"
    build(engine, {"f": "x"}, dockerfile=df, t=name, buildargs={"V": "2"}).check()
    hist = engine.api.get(f"/images/{name}/history").json()
    assert hist[0]["Id"].startswith("sha256:") and hist[0]["Tags"] == [f"{name}:latest"]
    assert hist[0]["CreatedBy"].startswith("/bin/sh -c #(nop) COPY file:") and hist[0]["Size"] > 0
    assert hist[1]["CreatedBy"] == "|1 V=2 /bin/sh -c echo $V > /v"
    assert hist[2]["CreatedBy"] == "/bin/sh -c #(nop)  ARG V=1" and hist[2]["Size"] == 0
    remove_image(engine, name)


def test_intermediate_images_form_a_parent_chain(engine, busybox):
    name = unique()
    image = build(engine, {"f": "x"}, dockerfile=BUSYBOX_DF + "ENV A=1\nCOPY f /f\nRUN echo > /g\n", t=name).check()
    chain = []
    cur = image
    while cur:
        chain.append(cur)
        cur = engine.api.get(f"/images/{cur}/json").json()["Parent"]
    assert chain[-1] == busybox and len(chain) == 4
    listed = {i["Id"] for i in engine.api.get("/images/json").json()}
    everything = {i["Id"] for i in engine.api.get("/images/json", params={"all": 1}).json()}
    assert image in listed and chain[1] not in listed and set(chain) <= everything
    layers = engine.api.get(f"/images/{image}/json").json()["RootFS"]["Layers"]
    base = engine.api.get(f"/images/{busybox}/json").json()["RootFS"]["Layers"]
    removed = engine.api.delete(f"/images/{name}").json()
    # the three images, then the two layers (COPY, RUN) busybox does not have, by chain ID
    new_chains = chain_ids(layers)[len(base):]
    assert len(new_chains) == 2
    assert {d["Deleted"] for d in removed if "Deleted" in d} == set(chain[:-1]) | set(new_chains)


def test_multi_stage_result_has_only_the_target_layers(engine, busybox):
    df = "FROM busybox AS build\nRUN echo big > /big\nFROM scratch\nCOPY --from=build /big /big\n"
    image = build(engine, dockerfile=df).check()
    _, layers, _ = saved(engine, image)
    assert [layer.names for layer in layers] == [["big"]]
    remove_image(engine, image)
