"""The real docker CLI (`DOCKER_BUILDKIT=0 docker build`) and the docker SDK building against our
daemon; and our own client and `workbench build`."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import docker
import pytest

from tests.engine.build.build_support import image_config, remove_image, run_logs, unique, write_tree

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
REPO = Path(__file__).resolve().parents[3]

DF = """\
FROM busybox
ARG WHO=world
LABEL stage=final
COPY . /ctx/
RUN echo "hello $WHO" > /hello && ls -a /ctx > /listing
CMD ["cat", "/hello"]
"""


@pytest.fixture
def ctx(tmp_path):
    return write_tree(tmp_path / "ctx", {"Dockerfile": DF, "keep.txt": "keep\n", "skip.log": "skip\n",
                                         ".dockerignore": "*.log\n", "sub/deep.txt": "deep\n"})


@pytest.fixture
def docker_cli(engine, busybox, tmp_path):
    if not os.path.exists(DOCKER):
        pytest.fail("the docker CLI is required (/usr/local/bin/docker)")
    env = {"DOCKER_CONFIG": str(tmp_path / "dockercfg"), "PATH": "/usr/bin:/bin:/usr/local/bin",
           "DOCKER_BUILDKIT": "0"}

    def run(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([DOCKER, "-H", engine.host, *args], input=input, capture_output=True, timeout=180,
                           env=env)
        if check:
            assert p.returncode == 0, f"docker {' '.join(args)} failed ({p.returncode}): {p.stderr.decode()}"
        return p
    return run


def test_docker_cli_build_tag_args_labels_ignore(engine, docker_cli, ctx):
    name = unique("cli")
    p = docker_cli("build", "-t", f"{name}:1", "--build-arg", "WHO=docker", "--label", "via=cli", str(ctx))
    out = p.stdout.decode()
    assert "Step 1/7 : FROM busybox" in out and "Step 7/7 : LABEL via=cli" in out and " ---> Running in " in out
    assert f"Successfully tagged {name}:1" in out
    doc = image_config(engine, f"{name}:1")
    assert doc["Config"]["Labels"] == {"stage": "final", "via": "cli"}
    assert run_logs(engine, f"{name}:1", None) == (0, "hello docker\n")
    code, listing = run_logs(engine, f"{name}:1", ["cat", "/listing"])
    assert "keep.txt" in listing and "skip.log" not in listing and ".dockerignore" in listing
    again = docker_cli("build", "-t", f"{name}:2", "--build-arg", "WHO=docker", "--label", "via=cli", str(ctx))
    assert again.stdout.decode().count("Using cache") == 6
    quiet = docker_cli("build", "-q", "--build-arg", "WHO=docker", "--label", "via=cli", str(ctx)).stdout.decode()
    assert quiet.strip() == doc["Id"]
    history = docker_cli("history", "--no-trunc", "--format", "{{.CreatedBy}}", f"{name}:1").stdout.decode()
    assert "|1 WHO=docker /bin/sh -c echo \"hello $WHO\" > /hello && ls -a /ctx > /listing" in history
    docker_cli("rmi", f"{name}:1", f"{name}:2")


def test_docker_cli_dockerfile_outside_context_target_nocache(engine, docker_cli, ctx, tmp_path):
    name = unique("cli")
    outside = tmp_path / "Dockerfile.outside"
    outside.write_text("FROM busybox AS base\nCOPY . /ctx/\nRUN ls -a /ctx > /listing\nFROM base\nRUN false\n")
    docker_cli("build", "-f", str(outside), "--target", "base", "--no-cache", "-t", name, str(ctx))
    code, listing = run_logs(engine, name, ["cat", "/listing"])
    assert "keep.txt" in listing and ".dockerfile." not in listing
    docker_cli("rmi", name)


def test_docker_cli_stdin_dockerfile_and_tar_context(engine, docker_cli, ctx):
    name = unique("cli")
    docker_cli("build", "-t", name, "-", input=b"FROM busybox\nCMD [\"echo\", \"from stdin\"]\n")
    assert image_config(engine, name)["Config"]["Cmd"] == ["echo", "from stdin"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(ctx, arcname=".")
    docker_cli("build", "-t", f"{name}:tar", "-", input=buf.getvalue())
    assert run_logs(engine, f"{name}:tar", None) == (0, "hello world\n")
    docker_cli("rmi", name, f"{name}:tar")


def test_docker_cli_failures(engine, docker_cli):
    p = docker_cli("build", "-", input=b"FROM busybox\nRUN echo doomed; exit 7\n", check=False)
    assert p.returncode != 0
    assert "doomed" in p.stdout.decode()
    assert "The command '/bin/sh -c echo doomed; exit 7' returned a non-zero code: 7" in p.stderr.decode()
    p = docker_cli("build", "-", input=b"FROM busybox\nFOO bar\n", check=False)
    assert p.returncode != 0
    assert "Dockerfile parse error on line 2: unknown instruction: FOO" in p.stderr.decode()


@pytest.fixture
def sdk(engine, busybox):
    client = docker.DockerClient(base_url=engine.host)
    yield client
    client.close()


def test_docker_sdk_build(engine, sdk, ctx):
    name = unique("sdk")
    image, logs = sdk.images.build(path=str(ctx), tag=name, buildargs={"WHO": "sdk"}, labels={"via": "sdk"},
                                   rm=True)
    text = "".join(chunk.get("stream", "") for chunk in logs)
    assert "Successfully built" in text and image.id == image_config(engine, name)["Id"]
    assert image.labels == {"stage": "final", "via": "sdk"} and f"{name}:latest" in image.tags
    assert run_logs(engine, name, None) == (0, "hello sdk\n")
    events = list(sdk.api.build(path=str(ctx), tag=name, buildargs={"WHO": "sdk"}, labels={"via": "sdk"},
                                decode=True))
    assert events[-2] == {"stream": f"Successfully built {image.id[7:19]}\n"}
    assert sum("Using cache" in e.get("stream", "") for e in events) == 6
    one_file, _ = sdk.images.build(fileobj=io.BytesIO(b"FROM busybox\nENV SDK=1\n"), tag=f"{name}:f")
    assert "SDK=1" in one_file.attrs["Config"]["Env"]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        t.add(ctx, arcname=".")
    gz, _ = sdk.images.build(fileobj=io.BytesIO(gzip.compress(raw.getvalue())), custom_context=True,
                             encoding="gzip", tag=f"{name}:gz")
    assert run_logs(engine, gz.id, None) == (0, "hello world\n")
    for t in ("latest", "f", "gz"):
        remove_image(engine, f"{name}:{t}")


def test_docker_sdk_build_error(sdk):
    with pytest.raises(docker.errors.BuildError) as caught:
        sdk.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN echo sdk-fail; exit 3\n"))
    assert "returned a non-zero code: 3" in str(caught.value)
    assert any("sdk-fail" in (c.get("stream") or "") for c in caught.value.build_log)
    with pytest.raises(docker.errors.APIError) as bad:
        sdk.images.build(fileobj=io.BytesIO(b"FROM busybox\nNOPE x\n"))
    assert "unknown instruction: NOPE" in str(bad.value)


def test_workbench_client_and_cli_build(engine, busybox, ctx):
    name = unique("wb")
    client = engine.client()
    with client.build(ctx, tags=[name], buildargs={"WHO": "client"}) as stream:
        text = "".join(e.stream or "" for e in stream)
    assert "Successfully tagged" in text and stream.image_id == image_config(engine, name)["Id"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "workbench.cli.main", "-H", engine.host, "build", "-q", "-t",
                        f"{name}:cli", "--build-arg", "WHO=client", str(ctx)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == stream.image_id
    p = subprocess.run([sys.executable, "-m", "workbench.cli.main", "-H", engine.host, "build", "-"],
                       input="FROM busybox\nRUN exit 4\n", capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode != 0 and "returned a non-zero code: 4" in p.stderr
    for t in ("latest", "cli"):
        remove_image(engine, f"{name}:{t}")
    assert json.loads(json.dumps(text))  # plain text stream, no framing
