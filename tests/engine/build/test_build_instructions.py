"""Every Dockerfile instruction on real builds: the image config it leaves, and what RUN sees."""

from __future__ import annotations


from tests.engine.build.build_support import (
    BUSYBOX_DF, build, filesystem, image_config, make, run_logs, saved)


def test_env_label_expose_volume_stopsignal_healthcheck_cmd_entrypoint(engine, busybox, images):
    df = BUSYBOX_DF + """\
ENV A=1 B="two words"
ENV C=${A}-${B:+set}-${NOPE:-dflt}
LABEL version="1.0" "multi word"=value
EXPOSE 80 443/udp 8000-8001
VOLUME ["/data", "/logs"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD ["true"]
ENTRYPOINT ["/bin/echo"]
CMD ["from", "cmd"]
"""
    cfg = image_config(engine, make(engine, images, df))["Config"]
    assert "A=1" in cfg["Env"] and "B=two words" in cfg["Env"] and "C=1-set-dflt" in cfg["Env"]
    assert any(e.startswith("PATH=") for e in cfg["Env"])
    assert cfg["Labels"] == {"version": "1.0", "multi word": "value"}
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "443/udp", "8000/tcp", "8001/tcp"}
    assert set(cfg["Volumes"]) == {"/data", "/logs"}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5_000_000_000, "Timeout": 2_000_000_000,
                                  "Retries": 4}
    assert cfg["Entrypoint"] == ["/bin/echo"] and cfg["Cmd"] == ["from", "cmd"]
    assert run_logs(engine, images[-1], None) == (0, "from cmd\n")


def test_run_sees_env_args_workdir_and_shell_forms(engine, busybox, images):
    df = BUSYBOX_DF + """\
ARG GREETING=hello
ENV WHO=world
WORKDIR /srv/app
RUN echo "$GREETING $WHO from $(pwd)" > out.txt
RUN ["/bin/sh", "-c", "echo json form >> /srv/app/out.txt"]
WORKDIR sub
RUN pwd >> ../out.txt && echo "home=$HOME host=$(hostname | wc -c)" >> ../out.txt
"""
    image = make(engine, images, df, buildargs={"GREETING": "bonjour"})
    code, out = run_logs(engine, image, ["cat", "/srv/app/out.txt"])
    assert out == "bonjour world from /srv/app\njson form\n/srv/app/sub\nhome=/root host=13\n"
    assert image_config(engine, image)["Config"]["WorkingDir"] == "/srv/app/sub"


def test_shell_instruction_changes_shell_form(engine, busybox, images):
    df = BUSYBOX_DF + 'SHELL ["/bin/sh", "-e", "-c"]\nRUN echo $0 $- > /shell\nCMD cat /shell\n'
    image = make(engine, images, df)
    cfg = image_config(engine, image)["Config"]
    assert cfg["Shell"] == ["/bin/sh", "-e", "-c"] and cfg["Cmd"] == ["/bin/sh", "-e", "-c", "cat /shell"]
    code, out = run_logs(engine, image, ["cat", "/shell"])
    assert out.startswith("/bin/sh") and "e" in out.split()[1]


def test_user_by_name_and_ids(engine, busybox, images):
    df = BUSYBOX_DF + """\
RUN echo "app:x:1234:2345:app:/home/app:/bin/sh" >> /etc/passwd && echo "grp:x:2345:" >> /etc/group \\
    && mkdir -p /home/app && chown 1234:2345 /home/app
USER app
RUN id -u > /home/app/ids && id -g >> /home/app/ids && echo $HOME >> /home/app/ids
USER 1234:0
RUN id -g >> /home/app/ids
USER root
"""
    image = make(engine, images, df)
    assert run_logs(engine, image, ["cat", "/home/app/ids"]) == (0, "1234\n2345\n/home/app\n0\n")
    bad = build(engine, dockerfile=BUSYBOX_DF + "USER ghost\nRUN true\n")
    assert bad.error == "unable to find user ghost: no matching entries in passwd file"


def test_workdir_is_created_as_a_layer_only_when_missing(engine, busybox, images):
    image = make(engine, images, BUSYBOX_DF + "WORKDIR /tmp\nWORKDIR /made/here\n")
    config, layers, _ = saved(engine, image)
    hist = config["history"][-2:]
    assert hist[0]["created_by"] == "/bin/sh -c #(nop) WORKDIR /tmp" and hist[0]["empty_layer"] is True
    assert hist[1]["created_by"] == "/bin/sh -c #(nop) WORKDIR /made/here" and "empty_layer" not in hist[1]
    assert layers[-1].names == ["made", "made/here"]
    assert layers[-1].members["made/here"].isdir() and layers[-1].members["made/here"].uid == 0


def test_maintainer_sets_author(engine, busybox, images):
    image = make(engine, images, BUSYBOX_DF + "MAINTAINER someone <a@b.c>\n")
    config, _, _ = saved(engine, image)
    assert config["author"] == "someone <a@b.c>"


def test_onbuild_is_recorded_then_triggered(engine, busybox, images):
    df = BUSYBOX_DF + "ONBUILD COPY trigger.txt /trigger.txt\nONBUILD RUN cat /trigger.txt > /ran\n"
    base = make(engine, images, df, t="onbuild-base:1")
    images.append("onbuild-base:1")
    assert image_config(engine, base)["Config"]["OnBuild"] == ["COPY trigger.txt /trigger.txt",
                                                               "RUN cat /trigger.txt > /ran"]
    b = build(engine, {"trigger.txt": "triggered\n"}, dockerfile="FROM onbuild-base:1\nENV X=1\n")
    child = b.check()
    images.append(child)
    assert "# Executing 2 build triggers\n" in b.text
    assert run_logs(engine, child, ["cat", "/ran"]) == (0, "triggered\n")
    assert image_config(engine, child)["Config"]["OnBuild"] is None


def test_heredocs(engine, busybox, images):
    df = BUSYBOX_DF + """\
RUN <<EOF
echo line one > /here
echo line two >> /here
EOF
RUN <<-SCRIPT
	#!/bin/sh
	echo "script $0" > /script
	SCRIPT
ARG NAME=world
COPY <<EOT /etc/greeting
hello ${NAME}
EOT
COPY <<'RAW' <<EXP /files/
literal ${NAME}
RAW
expanded ${NAME}
EXP
"""
    image = make(engine, images, df, buildargs={"NAME": "doc"})
    code, out = run_logs(engine, image, ["sh", "-c", "cat /here /script /etc/greeting /files/RAW /files/EXP"])
    assert out == "line one\nline two\nscript /dev/pipes/SCRIPT\nhello doc\nliteral ${NAME}\nexpanded doc\n"


def test_escape_directive_continuations_and_comments(engine, busybox, images):
    df = """# escape=`
FROM busybox
# a comment
RUN echo one `
    two `
# inside a continuation
    three > /words
ENV P=C:\\path
"""
    image = make(engine, images, df)
    assert run_logs(engine, image, ["cat", "/words"]) == (0, "one two three\n")
    assert "P=C:\\path" in image_config(engine, image)["Config"]["Env"]


def test_global_args_in_from_and_predefined_proxy_args(engine, busybox, images):
    df = "ARG BASE=busybox\nFROM ${BASE}\nARG http_proxy\nRUN echo \"proxy=$http_proxy\" > /p\n"
    b = build(engine, dockerfile=df, buildargs={"http_proxy": "http://proxy:3128", "BASE": "busybox"})
    image = b.check()
    images.append(image)
    assert b.text.startswith("Step 1/4 : ARG BASE=busybox\nStep 2/4 : FROM ${BASE}\n")
    assert run_logs(engine, image, ["cat", "/p"]) == (0, "proxy=http://proxy:3128\n")


def test_run_mounts_tmpfs_cache_and_bind(engine, busybox, images):
    df = BUSYBOX_DF + """\
RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/x && cat /scratch/x > /from-tmpfs
RUN --mount=type=cache,target=/cache,id=wbtest echo $(( $(cat /cache/n 2>/dev/null || echo 0) + 1 )) > /cache/n \\
    && cp /cache/n /cache-count
RUN --mount=type=bind,source=ctx.txt,target=/mnt/ctx.txt cat /mnt/ctx.txt > /from-bind
"""
    image = make(engine, images, df, {"ctx.txt": "bound\n"})
    code, out = run_logs(engine, image, ["sh", "-c", "cat /from-tmpfs /from-bind; ls /scratch /mnt 2>&1 | wc -l"])
    assert out.startswith("t\nbound\n")
    _, layers, _ = saved(engine, image)
    names = {n for layer in layers[-3:] for n in layer.names}
    assert not any(n.startswith(("scratch", "cache/", "mnt")) for n in names)
    again = make(engine, images, df, {"ctx.txt": "bound\n"}, nocache=True)
    count = int(run_logs(engine, again, ["cat", "/cache-count"])[1])
    assert count >= 2  # the cache mount kept its content between builds


def test_run_changes_under_a_volume_are_discarded(engine, busybox, images):
    df = BUSYBOX_DF + "RUN mkdir /vol && echo before > /vol/a\nVOLUME /vol\nRUN echo after > /vol/b && echo x > /keep\n"
    image = make(engine, images, df)
    fs = filesystem(saved(engine, image)[1])
    assert "vol/a" in fs and "vol/b" not in fs and "keep" in fs


def test_from_scratch_and_config_only_image(engine, busybox, images):
    image = make(engine, images, "FROM scratch\nCOPY hello /hello\nCMD [\"/hello\"]\n", {"hello": "hi"})
    config, layers, _ = saved(engine, image)
    assert [layer.names for layer in layers] == [["hello"]]
    assert config["config"]["Cmd"] == ["/hello"] and config["os"] == "linux"
    empty = build(engine, dockerfile="FROM scratch\n")
    assert empty.error == "No image was generated. Is your Dockerfile empty?"


def test_syntax_directive_is_accepted(engine, busybox, images):
    df = "# syntax=docker/dockerfile:1\n# check=skip=all\nFROM --platform=$BUILDPLATFORM busybox\n" \
         "ARG TARGETARCH\nRUN echo ok-$TARGETARCH > /ok\n"
    image = make(engine, images, df)
    arch = image_config(engine, image)["Architecture"]
    assert run_logs(engine, image, ["cat", "/ok"]) == (0, f"ok-{arch}\n")
