"""COPY and ADD on real builds: destinations, globs, ownership and modes, --from, archives, URLs,
.dockerignore on the daemon side, and sources that try to leave the context."""

from __future__ import annotations

import email.utils
import hashlib
import http.server
import io
import tarfile
import threading

import pytest

from tests.engine.build.build_support import (
    BUSYBOX_DF, Entry, build, filesystem, make, remove_image, run_logs, saved)


def sh(engine, image, script):
    code, out = run_logs(engine, image, ["sh", "-c", script])
    assert code == 0, out
    return out


CTX = {
    "a.txt": "A\n", "b.txt": "B\n", "c.md": "C\n",
    "dir": Entry(kind="dir"), "dir/one": "1\n", "dir/sub": Entry(kind="dir"), "dir/sub/two": Entry(b"2\n", mode=0o755),
    "dir/link": Entry(kind="symlink", target="one"),
}


def test_file_dir_and_destination_rules(engine, busybox, images):
    df = BUSYBOX_DF + """\
COPY a.txt /renamed
COPY a.txt /into/
COPY dir /copied
COPY dir/ /copied2/
WORKDIR /w
COPY b.txt .
COPY b.txt rel/
"""
    image = make(engine, images, df, CTX)
    out = sh(engine, image, "cat /renamed /into/a.txt /copied/one /copied/sub/two /copied2/one /w/b.txt /w/rel/b.txt;"
                            " readlink /copied/link; stat -c '%a %u:%g' /copied/sub/two /renamed")
    assert out == "A\nA\n1\n2\n1\nB\nB\none\n755 0:0\n644 0:0\n"
    assert "dir" not in sh(engine, image, "ls /copied")


def test_globs_and_several_sources(engine, busybox, images):
    image = make(engine, images, BUSYBOX_DF + "COPY *.txt c.?d /many/\nCOPY [ab].txt /cls/\nCOPY d*/s* /glob/\n", CTX)
    assert sh(engine, image, "ls /many /cls /glob") == \
        "/cls:\na.txt\nb.txt\n\n/glob:\ntwo\n\n/many:\na.txt\nb.txt\nc.md\n"
    bad = build(engine, CTX, dockerfile=BUSYBOX_DF + "COPY a.txt b.txt /notadir\n")
    assert bad.error == ("When using COPY with more than one source file, the destination must be a directory "
                         "and end with a /")
    missing = build(engine, CTX, dockerfile=BUSYBOX_DF + "COPY nope.txt /\n")
    assert "COPY failed: file not found in build context or excluded by .dockerignore: stat nope.txt" in missing.error
    none = build(engine, CTX, dockerfile=BUSYBOX_DF + "COPY *.zip /\n")
    assert none.error == "COPY failed: no source files were specified"


def test_chown_and_chmod(engine, busybox, images):
    df = BUSYBOX_DF + """\
COPY --chown=nobody a.txt /by-name
COPY --chown=12:34 dir /by-id/
COPY --chmod=600 b.txt /private
COPY --chown=1:1 --chmod=750 dir /both/
ADD --chown=5:6 --chmod=640 a.txt /added
"""
    image = make(engine, images, df, CTX)
    out = sh(engine, image, "stat -c '%u:%g %a' /by-name /by-id /by-id/one /by-id/sub /private /both/sub/two /both/one"
                            " /added")
    assert out == "65534:65534 644\n12:34 755\n12:34 644\n12:34 755\n0:0 600\n1:1 750\n1:1 750\n5:6 640\n"
    for flag in ("--exclude=*.md", "--parents"):
        unsupported = build(engine, CTX, dockerfile=BUSYBOX_DF + f"COPY {flag} a.txt /\n")
        assert unsupported.error == f"COPY {flag.split('=')[0]} is not supported by this builder"
    bad = build(engine, CTX, dockerfile=BUSYBOX_DF + "COPY --chown=ghost a.txt /\n")
    assert bad.error == ("unable to convert uid/gid chown string to host mapping: can't find uid for user ghost: "
                         "no such user: ghost")


def test_copy_from_stage_by_name_and_index_and_from_image(engine, busybox, images):
    df = """\
FROM busybox AS builder
RUN mkdir /out && echo built > /out/artifact && echo skip > /out/other
FROM scratch AS unused
COPY missing-in-context /
FROM busybox
COPY --from=builder /out/artifact /a
COPY --from=0 /out/other /b
COPY --from=busybox /bin/busybox /c
COPY --link --from=builder /out/ /d/
"""
    b = build(engine, CTX, dockerfile=df)
    image = b.check()
    images.append(image)
    assert "FROM scratch AS unused" not in b.text  # stages the target does not need are skipped
    assert sh(engine, image, "cat /a /b /d/artifact; test -x /c && echo exe") == "built\nskip\nbuilt\nexe\n"
    bad = build(engine, dockerfile=BUSYBOX_DF + "COPY --from=nosuchthing /x /x\n")
    assert "invalid from flag value nosuchthing" in bad.error


def test_target_stops_at_a_stage(engine, busybox, images):
    df = "FROM busybox AS first\nRUN echo 1 > /one\nFROM first AS second\nRUN echo 2 > /two\nFROM busybox\nRUN false\n"
    b = build(engine, dockerfile=df, target="second")
    image = b.check()
    images.append(image)
    assert "RUN false" not in b.text
    assert sh(engine, image, "cat /one /two") == "1\n2\n"


def tar_of(files: dict[str, bytes], gz: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.uid, ti.gid, ti.mode = len(data), 7, 8, 0o640
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_add_extracts_local_archives_but_copy_does_not(engine, busybox, images):
    files = {"pkg.tar.gz": tar_of({"pkg/x": b"X\n"}, gz=True), "plain.tar": tar_of({"p": b"P\n"}, gz=False)}
    df = BUSYBOX_DF + "ADD pkg.tar.gz /opt/\nADD plain.tar /plain\nCOPY pkg.tar.gz /kept/\n"
    image = make(engine, images, df, files)
    assert sh(engine, image, "cat /opt/pkg/x /plain/p; stat -c '%u:%g %a' /opt/pkg/x; ls /kept") == \
        "X\nP\n7:8 640\npkg.tar.gz\n"
    evil = tar_of({"../../../../etc/evil": b"x"}, gz=False)
    bad = build(engine, {"evil.tar": evil}, dockerfile=BUSYBOX_DF + "ADD evil.tar /x/\n")
    assert bad.error and "outside" in bad.error


@pytest.fixture(scope="module")
def http_server():
    payload = b"downloaded content\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/missing"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Last-Modified", email.utils.formatdate(1_600_000_000, usegmt=True))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", payload
    srv.shutdown()


def test_add_url(engine, busybox, images, http_server):
    base, payload = http_server
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    df = BUSYBOX_DF + f"ADD {base}/files/data.txt /dl/\nADD --checksum={digest} {base}/x /named\n"
    image = make(engine, images, df)
    assert sh(engine, image, "cat /dl/data.txt /named; stat -c '%a %Y' /dl/data.txt") == \
        payload.decode() * 2 + "600 1600000000\n"
    bad = build(engine, dockerfile=BUSYBOX_DF + f"ADD --checksum=sha256:{'0' * 64} {base}/x /x\n")
    assert "digest mismatch" in bad.error
    missing = build(engine, dockerfile=BUSYBOX_DF + f"ADD {base}/missing /x\n")
    assert "HTTP 404" in missing.error
    assert build(engine, dockerfile=BUSYBOX_DF + f"COPY {base}/x /x\n").error == "source can't be a URL for COPY"


def test_sources_cannot_leave_the_context(engine, busybox, images):
    files = {"inside.txt": "in\n", "abs-link": Entry(kind="symlink", target="/etc/passwd"),
             "up-link": Entry(kind="symlink", target="../../../../inside.txt")}
    df = BUSYBOX_DF + "COPY ../../inside.txt /1\nCOPY /inside.txt /2\nCOPY up-link /3\n"
    image = make(engine, images, df, files)
    assert sh(engine, image, "cat /1 /2 /3") == "in\nin\nin\n"
    bad = build(engine, files, dockerfile=BUSYBOX_DF + "COPY abs-link /x\n")
    assert "file not found in build context" in bad.error  # /etc/passwd of the context, which has none


def test_dockerignore_applies_on_the_daemon_side(engine, busybox, images):
    files = {
        ".dockerignore": "*.md\nsecret/\n!secret/keep\n**/*.tmp\n.dockerfile.*\nDockerfile.other\n",
        "a.txt": "a", "c.md": "c", "secret/key": "k", "secret/keep": "kept", "deep/x/y.tmp": "t",
        "deep/x/z": "z", ".dockerfile.0123abcd": BUSYBOX_DF + "COPY . /ctx/\n", "Dockerfile.other": "x",
    }
    b = build(engine, files, query={"dockerfile": ".dockerfile.0123abcd"})
    image = b.check()
    images.append(image)
    listing = sh(engine, image, "cd /ctx && find . | sort")
    assert listing.split() == [".", "./.dockerignore", "./a.txt", "./deep", "./deep/x", "./deep/x/z", "./secret",
                               "./secret/keep"]


def test_copy_layer_content_and_history(engine, busybox, images):
    image = make(engine, images, BUSYBOX_DF + "COPY dir /opt/dir\nCOPY a.txt b.txt /opt/\n", CTX)
    config, layers, _ = saved(engine, image)
    assert layers[-2].names == ["opt", "opt/dir", "opt/dir/link", "opt/dir/one", "opt/dir/sub", "opt/dir/sub/two"]
    assert layers[-2].members["opt/dir/one"].mtime == 1_700_000_000
    assert all(m.uname == "" and m.gname == "" for m in layers[-2].members.values())
    hist = [h["created_by"] for h in config["history"][-2:]]
    assert hist[0].startswith("/bin/sh -c #(nop) COPY dir:") and hist[0].endswith(" in /opt/dir ")
    assert hist[1].startswith("/bin/sh -c #(nop) COPY multi:") and hist[1].endswith(" in /opt/ ")
    fs = filesystem(layers)
    assert fs["opt/b.txt"][1] == b"B\n"


@pytest.fixture
def registry(tmp_path):
    from tests.client.helpers import start_registry
    proc, addr = start_registry(tmp_path)
    yield addr
    proc.terminate()
    proc.wait(10)


def test_from_pulls_a_missing_base_and_pull_refreshes(engine, busybox, images, registry):
    remote = f"{registry}/wbtest/base"
    assert engine.api.post(f"/images/{busybox}/tag", params={"repo": remote, "tag": "1"}).status_code == 201
    push = engine.api.post(f"/images/{remote}/push", params={"tag": "1"}, headers={"X-Registry-Auth": "e30="})
    assert push.status_code == 200 and "digest: sha256:" in push.text
    assert engine.api.delete(f"/images/{remote}:1").status_code == 200
    b = build(engine, dockerfile=f"FROM {remote}:1\nRUN echo pulled > /p\n")
    image = b.check()
    images.append(image)
    statuses = [e["status"] for e in b.events if "status" in e]
    assert any(s.startswith("Pulling from wbtest/base") or "Pulling" in s for s in statuses), statuses
    assert engine.api.get(f"/images/{remote}:1/json").json()["Id"] == busybox
    again = build(engine, dockerfile=f"FROM {remote}:1\nRUN echo pulled > /p\n", pull=True)
    assert again.check() == image and any("up to date" in e.get("status", "") for e in again.events)
    remove_image(engine, f"{remote}:1")
