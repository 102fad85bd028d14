"""`POST /build` over the real socket: Docker's JSON-lines stream, query parameters, context formats,
live output, and the daemon serving other requests while a build runs."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import threading
import time

import pytest

from tests.engine.build.build_support import (
    BUSYBOX_DF, Entry, build, context_tar, image_config, leftovers, remove_image, run_logs, unique)


def test_stream_shape_matches_the_classic_builder(engine, busybox):
    name = unique()
    b = build(engine, {"a.txt": "a\n"}, dockerfile=BUSYBOX_DF + "COPY a.txt /a.txt\nRUN echo ran\nENV K=v\n",
              t=[f"{name}:1", f"{name}:2"])
    image = b.check()
    streams = [e["stream"] for e in b.events if "stream" in e]
    assert streams[:3] == ["Step 1/4 : FROM busybox", "\n", f" ---> {busybox.removeprefix('sha256:')[:12]}\n"]
    assert "Step 2/4 : COPY a.txt /a.txt" in streams
    run_at = streams.index("Step 3/4 : RUN echo ran") + 1
    assert streams[run_at + 1].startswith(" ---> Running in ") and len(streams[run_at + 1].split()[-1]) == 12
    assert streams[run_at + 2] == "ran\n"
    assert streams[run_at + 3].startswith("Removing intermediate container ")
    assert streams[run_at + 4].startswith(" ---> ")
    aux = [e for e in b.events if "aux" in e]
    assert aux == [{"aux": {"ID": image}}] and image.startswith("sha256:") and len(image) == 71
    tail = streams[-3:]
    assert tail == [f"Successfully built {image[7:19]}\n", f"Successfully tagged {name}:1\n",
                    f"Successfully tagged {name}:2\n"]
    assert image_config(engine, f"{name}:2")["Id"] == image
    for t in ("1", "2"):
        remove_image(engine, f"{name}:{t}")


def test_quiet_prints_only_the_id(engine, busybox):
    name = unique()
    b = build(engine, dockerfile=BUSYBOX_DF + "RUN echo noisy\n", t=name, q=True)
    assert b.status == 200 and len(b.events) == 1
    assert b.events[0]["stream"].startswith("sha256:") and b.events[0]["stream"].endswith("\n")
    assert image_config(engine, name)["Id"] == b.events[0]["stream"].strip()
    bad = build(engine, dockerfile=BUSYBOX_DF + "RUN exit 3\n", q=True)
    assert bad.status == 200 and bad.code == 3 and not bad.image_id
    remove_image(engine, name)


def test_buildargs_labels_and_unused_warning(engine, busybox):
    name = unique()
    df = BUSYBOX_DF + "ARG WHO=nobody\nRUN echo \"hi $WHO\" > /who\nCMD [\"cat\", \"/who\"]\n"
    b = build(engine, dockerfile=df, t=name, buildargs={"WHO": "args", "EXTRA": "x"},
              labels={"org.example": "yes", "quote": "it's \"$HOME\""})
    b.check()
    assert "[Warning] One or more build-args [EXTRA] were not consumed\n" in b.text
    assert "Step 5/6 : LABEL org.example=yes\n" in b.text and "Step 6/6 : LABEL quote=" in b.text
    cfg = image_config(engine, name)["Config"]
    assert cfg["Labels"] == {"org.example": "yes", "quote": "it's \"$HOME\""}
    assert run_logs(engine, name) == (0, "hi args\n")
    remove_image(engine, name)


def test_invalid_parameters_are_400_before_the_stream(engine, busybox):
    assert build(engine, dockerfile=BUSYBOX_DF, t="Bad:Tag").status == 400
    assert "invalid reference format" in build(engine, dockerfile=BUSYBOX_DF, t="UPPER").error
    r = engine.api.post("/build", params={"buildargs": "[1]"}, content=context_tar({"Dockerfile": BUSYBOX_DF}))
    assert r.status_code == 400 and "buildargs" in r.json()["message"]
    r = engine.api.post("/build", params={"remote": "https://example.com/x.git"}, content=b"")
    assert r.status_code == 400
    b = build(engine, dockerfile=BUSYBOX_DF, platform="linux/s390x-not-here")
    assert b.status == 400 and "not supported" in b.error
    assert build(engine, dockerfile=BUSYBOX_DF, target="nope").error == 'target stage "nope" could not be found'


@pytest.mark.parametrize("codec", ["gzip", "bzip2", "xz", "plain"])
def test_compressed_contexts(engine, busybox, codec):
    raw = context_tar({"Dockerfile": BUSYBOX_DF + "COPY f /f\n", "f": codec})
    body = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress, "plain": bytes}[codec](raw)
    image = build(engine, body=body).check()
    assert run_logs(engine, image, ["cat", "/f"]) == (0, codec)
    remove_image(engine, image)


def test_docker_py_style_gzip_content_encoding(engine, busybox):
    raw = context_tar({"Dockerfile": BUSYBOX_DF + "COPY f /f\n", "f": "enc"})
    image = build(engine, body=gzip.compress(raw), headers={"Content-Encoding": "gzip",
                                                            "Content-Type": "application/tar"}).check()
    assert run_logs(engine, image, ["cat", "/f"]) == (0, "enc")
    remove_image(engine, image)


def test_bad_contexts(engine, busybox):
    assert build(engine, body=b"").error == "Cannot locate specified Dockerfile: Dockerfile"
    b = build(engine, body=b"this is not a tar archive at all" * 40)
    assert b.status == 400
    evil = context_tar({"Dockerfile": BUSYBOX_DF, "../escape": "x"})
    assert build(engine, body=evil).status == 400
    assert leftovers(engine) == []


def test_dockerfile_parameter(engine, busybox):
    files = {"sub/Build.df": BUSYBOX_DF + "CMD [\"echo\", \"sub\"]\n",
             "dockerfile": BUSYBOX_DF + "CMD [\"echo\", \"lower\"]\n"}
    sub = build(engine, files, query={"dockerfile": "./sub/Build.df"}).check()
    assert image_config(engine, sub)["Config"]["Cmd"] == ["echo", "sub"]
    lower = build(engine, files).check()  # "Dockerfile" missing: falls back to "dockerfile"
    assert image_config(engine, lower)["Config"]["Cmd"] == ["echo", "lower"]
    assert build(engine, files, query={"dockerfile": "nope"}).error == "Cannot locate specified Dockerfile: nope"


def test_output_is_streamed_live(engine, busybox):
    df = BUSYBOX_DF + "RUN echo first; sleep 2; echo second\n"
    arrivals: dict[str, float] = {}
    with engine.api.stream("POST", "/build", params={"nocache": 1}, content=context_tar({"Dockerfile": df})) as r:
        for line in r.iter_lines():
            if line.strip():
                text = json.loads(line).get("stream", "")
                if text in ("first\n", "second\n"):
                    arrivals[text] = time.monotonic()
    assert arrivals["second\n"] - arrivals["first\n"] > 1.5


def test_daemon_serves_during_a_build(engine, busybox):
    df = BUSYBOX_DF + "RUN sleep 2\n"
    result: dict[str, object] = {}
    t = threading.Thread(target=lambda: result.update(b=build(engine, dockerfile=df, nocache=True)))
    t.start()
    time.sleep(0.5)
    started = time.monotonic()
    for _ in range(5):
        assert engine.api.get("/_ping").status_code == 200
        assert engine.api.get("/images/json").status_code == 200
    assert time.monotonic() - started < 1.0
    t.join(30)
    image = result["b"].check()
    remove_image(engine, image)


def test_network_is_none_unless_host(engine, busybox):
    none = build(engine, dockerfile=BUSYBOX_DF + "RUN ls /sys/class/net > /nets\n", nocache=True).check()
    assert run_logs(engine, none, ["cat", "/nets"]) == (0, "lo\n")
    host = build(engine, dockerfile=BUSYBOX_DF + "RUN ls /sys/class/net > /nets\n"
                                          "RUN --network=none ls /sys/class/net > /isolated\n", nocache=True,
                 networkmode="host").check()
    code, out = run_logs(engine, host, ["cat", "/nets"])
    assert code == 0 and len(out.split()) > 1
    assert run_logs(engine, host, ["cat", "/isolated"]) == (0, "lo\n")  # RUN --network overrides
    for image in (none, host):
        remove_image(engine, image)


def test_resources_and_extra_hosts(engine, busybox):
    df = BUSYBOX_DF + "RUN grep -q 'db.local' /etc/hosts && df -k /dev/shm | tail -1 | awk '{print $2}' > /shm\n"
    b = build(engine, dockerfile=df, nocache=True, memory=64 << 20, cpuquota=50000, cpuperiod=100000,
              shmsize=8 << 20, extrahosts="db.local:10.1.2.3")
    image = b.check()
    assert run_logs(engine, image, ["cat", "/shm"]) == (0, "8192\n")
    remove_image(engine, image)


def test_build_prune_endpoint(engine, busybox):
    build(engine, dockerfile=BUSYBOX_DF + "ENV PRUNE=1\n").check()
    r = engine.api.post("/build/prune")
    assert r.status_code == 200 and r.json()["SpaceReclaimed"] == 0
    again = build(engine, dockerfile=BUSYBOX_DF + "ENV PRUNE=1\n")
    assert " ---> Using cache\n" not in again.text


def test_context_entry_kinds(engine, busybox):
    files = {"d": Entry(kind="dir", mode=0o750), "d/x": Entry(b"x", mode=0o600),
             "link": Entry(kind="symlink", target="d/x")}
    image = build(engine, files, dockerfile=BUSYBOX_DF + "COPY . /ctx/\n").check()
    assert run_logs(engine, image, ["sh", "-c", "stat -c '%a %n' /ctx/d /ctx/d/x; readlink /ctx/link"]) == \
        (0, "750 /ctx/d\n600 /ctx/d/x\nd/x\n")
    remove_image(engine, image)


def test_context_without_final_padding_is_accepted_but_truncated_data_is_not(engine, busybox):
    raw = context_tar({"Dockerfile": BUSYBOX_DF + "COPY last /last\n", "last": "tail-data"})
    end = raw.rfind(b"tail-data") + len(b"tail-data")  # what the docker CLI sends for `-f` outside the context
    image = build(engine, body=raw[:end]).check()
    assert run_logs(engine, image, ["cat", "/last"]) == (0, "tail-data")
    assert build(engine, body=raw[:end - 3]).status == 400
    remove_image(engine, image)


def test_concurrent_builds(engine, busybox):
    results: dict[int, object] = {}

    def one(n: int) -> None:
        df = BUSYBOX_DF + f"COPY f /f\nRUN sleep 0.3; cat /f > /g{n}\n"
        results[n] = build(engine, {"f": f"{n}\n"}, dockerfile=df, nocache=True)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for n in range(3):
        image = results[n].check()
        assert run_logs(engine, image, ["cat", f"/g{n}"]) == (0, f"{n}\n")
        remove_image(engine, image)
    assert leftovers(engine) == []
