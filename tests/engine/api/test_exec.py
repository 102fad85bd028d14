"""docker exec over the API: output frames, exit codes, stdin with half-close, detach, errors."""

from __future__ import annotations

import socket
import time

from tests.engine.api.test_containers import create, frames


def _hijack(engine, path: str, body: bytes, stdin: bytes = b"") -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(engine.sock))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    if stdin:
        s.sendall(stdin)
    s.shutdown(socket.SHUT_WR)      # what the docker CLI does when its stdin ends
    data = b""
    s.settimeout(20)
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return data


def _exec(engine, cid, cmd, **extra):
    r = engine.api.post(f"/containers/{cid}/exec", json={"Cmd": cmd, "AttachStdout": True,
                                                          "AttachStderr": True, **extra})
    assert r.status_code == 201, r.text
    return r.json()["Id"]


def test_exec_output_exit_code_and_inspect(engine, busybox):
    cid = create(engine, ["sleep", "60"], Env=["FROM_CONTAINER=1"])
    engine.api.post(f"/containers/{cid}/start")
    eid = _exec(engine, cid, ["sh", "-c", "echo out $FROM_CONTAINER $EXTRA; echo err >&2; exit 3"],
                Env=["EXTRA=2"])
    out = frames(_hijack(engine, f"/v1.41/exec/{eid}/start", b'{"Detach":false,"Tty":false}'))
    assert sorted(out) == [(1, b"out 1 2\n"), (2, b"err\n")]
    info = engine.api.get(f"/exec/{eid}/json").json()
    assert info["ExitCode"] == 3 and info["Running"] is False and info["ContainerID"] == cid
    assert engine.api.post(f"/exec/{eid}/start", json={}).status_code == 409
    engine.api.delete(f"/containers/{cid}", params={"force": 1})


def test_exec_stdin_user_workdir(engine, busybox):
    cid = create(engine, ["sleep", "60"])
    engine.api.post(f"/containers/{cid}/start")
    eid = _exec(engine, cid, ["sh", "-c", "cat; id -u; pwd"], AttachStdin=True, User="65534",
                WorkingDir="/tmp")
    out = frames(_hijack(engine, f"/exec/{eid}/start", b"{}", stdin=b"from stdin\n"))
    assert b"".join(d for s, d in out if s == 1) == b"from stdin\n65534\n/tmp\n"
    engine.api.delete(f"/containers/{cid}", params={"force": 1})


def test_exec_detached_and_errors(engine, busybox):
    cid = create(engine, ["sleep", "60"])
    r = engine.api.post(f"/containers/{cid}/exec", json={"Cmd": ["true"]})
    assert r.status_code == 409
    engine.api.post(f"/containers/{cid}/start")
    eid = _exec(engine, cid, ["sh", "-c", "touch /tmp/detached"])
    assert engine.api.post(f"/exec/{eid}/start", json={"Detach": True}).status_code == 200
    for _ in range(50):
        if engine.api.get(f"/exec/{eid}/json").json()["ExitCode"] == 0:
            break
        time.sleep(0.05)
    assert engine.api.get(f"/exec/{eid}/json").json()["ExitCode"] == 0
    missing = _exec(engine, cid, ["/nope"])
    out = _hijack(engine, f"/exec/{missing}/start", b"{}")
    assert b"no such file or directory" in out.lower()
    assert engine.api.get(f"/exec/{missing}/json").json()["ExitCode"] == 127
    # a process that cannot even be set up (no such user): the hijacked stream carries the error
    # on stdout, as dockerd writes it there, and the exit code is dockerd's 126
    nouser = engine.api.post(f"/containers/{cid}/exec", json={"Cmd": ["id"], "User": "nobody-here",
                                                              "AttachStdout": True}).json()["Id"]
    out = frames(_hijack(engine, f"/exec/{nouser}/start", b"{}"))
    assert out == [(1, b"unable to find user nobody-here: no matching entries in passwd file\r\n")]
    assert engine.api.get(f"/exec/{nouser}/json").json()["ExitCode"] == 126
    detached = _exec(engine, cid, ["id"], User="nobody-here")     # detached: the start answers the error
    r = engine.api.post(f"/exec/{detached}/start", json={"Detach": True})
    assert r.status_code == 400 and r.json()["message"].startswith("unable to find user nobody-here")
    nodir = _exec(engine, cid, ["pwd"], WorkingDir="/no-such-dir")  # not the command's fault: 126
    assert b"no-such-dir" in _hijack(engine, f"/exec/{nodir}/start", b"{}")
    assert engine.api.get(f"/exec/{nodir}/json").json()["ExitCode"] == 126
    assert engine.api.get("/exec/nonexistent/json").status_code == 404
    assert engine.api.post(f"/containers/{cid}/exec", json={"Cmd": []}).status_code == 400
    engine.api.delete(f"/containers/{cid}", params={"force": 1})


def test_supplementary_groups_start_with_the_primary_one(engine, busybox):
    """As dockerd sets them since 20.10.18 (CVE-2022-36109): the primary group first, then the
    user's memberships, then `HostConfig.GroupAdd`, for the container's process and for execs."""
    from tests.engine.api.test_containers import run

    def groups(cid: str) -> bytes:
        r = engine.api.get(f"/containers/{cid}/logs", params={"stdout": 1})
        return b"".join(d for _, d in frames(r.content))

    cid, res = run(engine, ["id", "-G"], User="1234:5", HostConfig={"GroupAdd": ["7"]})
    assert res["StatusCode"] == 0 and groups(cid) == b"5 7\n"
    cid, res = run(engine, ["id", "-G"])
    assert res["StatusCode"] == 0 and groups(cid) == b"0\n"
    bad = create(engine, ["true"], HostConfig={"GroupAdd": ["no-such-group"]})
    r = engine.api.post(f"/containers/{bad}/start")
    assert r.status_code >= 400 and "Unable to find group no-such-group" in r.json()["message"]
    box = create(engine, ["sleep", "60"], HostConfig={"GroupAdd": ["9"]})
    engine.api.post(f"/containers/{box}/start")
    eid = _exec(engine, box, ["id", "-G"], User="1000:1000")
    assert frames(_hijack(engine, f"/exec/{eid}/start", b"{}")) == [(1, b"1000 9\n")]
    for c in (bad, box):
        engine.api.delete(f"/containers/{c}", params={"force": 1})
