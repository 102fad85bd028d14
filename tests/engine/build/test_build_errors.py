"""Builds that fail: clear messages (file and line for syntax errors, exit code and output for RUN),
nothing half-built tagged, nothing left mounted or running, the daemon still serving."""

from __future__ import annotations

import json
import socket
import time

from tests.engine.build.build_support import BUSYBOX_DF, build, context_tar, leftovers, remove_image, unique


def test_syntax_errors_name_the_file_and_line(engine, busybox):
    b = build(engine, dockerfile="FROM busybox\nRUN true\nFOO bar\n")
    assert b.status == 400 and b.error == "Dockerfile parse error on line 3: unknown instruction: FOO"
    other = build(engine, {"ci/Build.df": "FROM busybox\nENV\n"}, query={"dockerfile": "ci/Build.df"})
    assert other.status == 400 and other.error.startswith("ci/Build.df parse error on line 2:")
    assert "no build stage in current context" in build(engine, dockerfile="RUN echo hi\n").error
    dup = build(engine, dockerfile="FROM busybox AS a\nFROM busybox AS a\n")
    assert dup.error == 'Dockerfile parse error on line 2: duplicate stage name "a"'
    assert build(engine, dockerfile="").error == "the Dockerfile (Dockerfile) cannot be empty"
    assert build(engine, dockerfile=BUSYBOX_DF + "EXPOSE 80/bogus\n").error == "invalid proto: bogus"


def test_unknown_base_and_stage(engine, busybox):
    b = build(engine, dockerfile="FROM no-such-image:1\nRUN true\n")
    assert b.status == 200 and b.text == "Step 1/2 : FROM no-such-image:1\n"
    assert "no-such-image" in b.error and b.code is None  # the pull from docker.io fails offline
    c = build(engine, dockerfile=BUSYBOX_DF + "COPY --from=nostage /a /a\n")
    assert c.error.startswith("invalid from flag value nostage:")
    assert build(engine, dockerfile="FROM busybox AS a\nRUN true\n", target="b").error == \
        'target stage "b" could not be found'


def test_failing_run_reports_code_and_output_and_tags_nothing(engine, busybox):
    name = unique()
    good = build(engine, dockerfile=BUSYBOX_DF + "ENV V=1\n", t=name).check()
    b = build(engine, dockerfile=BUSYBOX_DF + "ENV V=2\nRUN echo 'last words' >&2; exit 7\n", t=name)
    assert b.status == 200 and b.code == 7
    assert b.error == "The command '/bin/sh -c echo 'last words' >&2; exit 7' returned a non-zero code: 7"
    assert "last words\n" in b.text and "Successfully" not in b.text
    assert b.events[-1] == {"errorDetail": {"code": 7, "message": b.error}, "error": b.error}
    assert engine.api.get(f"/images/{name}/json").json()["Id"] == good  # the old tag is untouched
    assert leftovers(engine) == []
    assert engine.api.get("/_ping").status_code == 200
    json_form = build(engine, dockerfile=BUSYBOX_DF + 'RUN ["/no/such/binary"]\n')
    assert json_form.code and json_form.code != 0 and "no/such/binary" in json_form.error
    remove_image(engine, name)


def test_copy_errors_and_missing_dockerfile(engine, busybox):
    assert build(engine, {"x": "x"}, query={"dockerfile": "Nope"}).error == "Cannot locate specified Dockerfile: Nope"
    b = build(engine, dockerfile=BUSYBOX_DF + "COPY missing /x\n")
    assert b.status == 200 and "file not found in build context" in b.error
    assert leftovers(engine) == []


def _runtime_containers(engine) -> list[str]:
    """Containers the OCI runtime (runc or crun) holds state for under the engine's --root."""
    root = engine.root / "run" / "runtime"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if root.is_dir() else []


def test_client_disconnect_stops_the_build_and_cleans_up(engine, busybox):
    before = set(_runtime_containers(engine))
    body = context_tar({"Dockerfile": BUSYBOX_DF + "RUN echo mark-$((1+1)); sleep 60\n"})
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(engine.sock))
    s.sendall(b"POST /build?nocache=1&t=abandoned HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    seen = b""
    deadline = time.monotonic() + 30
    while b"mark-2" not in seen and time.monotonic() < deadline:
        seen += s.recv(65536)
    assert b"mark-2" in seen
    assert set(_runtime_containers(engine)) - before  # the RUN container is live
    s.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (leftovers(engine) or set(_runtime_containers(engine)) - before):
        time.sleep(0.2)
    assert leftovers(engine) == [] and set(_runtime_containers(engine)) - before == set()
    assert engine.api.get("/images/abandoned/json").status_code == 404
    assert engine.api.get("/_ping").status_code == 200


def test_in_stream_errors_are_docker_json(engine, busybox):
    b = build(engine, dockerfile=BUSYBOX_DF + "USER nobody\nRUN touch /root/x\n")
    assert b.code == 1 and "returned a non-zero code: 1" in b.error
    assert json.dumps(b.events[-1]).startswith('{"errorDetail": {"code": 1')


def test_daemon_killed_mid_build_cleans_up_on_restart(engine, busybox):
    before = set(_runtime_containers(engine))
    body = context_tar({"Dockerfile": BUSYBOX_DF + "RUN echo mark-$((1+1)); sleep 60\n"})
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(engine.sock))
    s.sendall(b"POST /build?nocache=1&t=killed HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    seen = b""
    deadline = time.monotonic() + 30
    while b"mark-2" not in seen and time.monotonic() < deadline:
        seen += s.recv(65536)
    assert b"mark-2" in seen and leftovers(engine)  # a build directory and its mounts exist now
    assert set(_runtime_containers(engine)) - before
    engine.restart(kill=True)
    s.close()
    assert leftovers(engine) == [] and set(_runtime_containers(engine)) - before == set()
    assert engine.api.get("/images/killed/json").status_code == 404
    assert build(engine, dockerfile=BUSYBOX_DF + "RUN echo after-restart\n").ok
