"""Build plan: stage selection, ARG scoping, substitution, config changes, history, cache keys."""

from __future__ import annotations

import re

import pytest

from workbench.engine.build.dockerfile import parse
from workbench.engine.build.plan import (
    ConfigAction, CopyAction, InlineFile, RunAction, SourceEntry, cache_key, combine_source_hashes,
    dest_path, evaluate_stage, hash_sources, plan_build, source_hash, unused_args_warning,
    workdir_path)
from workbench.errors import BuildError, InvalidArgument

BUSYBOX = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
           "Cmd": ["sh"]}


def steps(text: str, base=BUSYBOX, **kw):
    """Plan `text` and evaluate its target stage on `base`."""
    plan = plan_build(parse(text), **kw)
    return evaluate_stage(plan, plan.stages[-1], base)


def step(text: str, base=BUSYBOX, **kw):
    """The last step of the target stage."""
    return steps(text, base, **kw).steps[-1]


# --------------------------------------------------------------------------- stages


MULTI = """\
ARG GO=1.22
FROM golang:${GO} AS build
RUN go build -o /app
FROM alpine AS tools
RUN apk add curl
FROM build AS test
RUN go test
FROM scratch AS final
COPY --from=build /app /app
COPY --from=tools /usr/bin/curl /curl
"""


def test_default_target_is_last_stage_and_unneeded_stages_are_skipped():
    plan = plan_build(parse(MULTI))
    assert [s.name for s in plan.stages] == ["build", "tools", "final"]
    assert plan.target == 3
    final = plan.stages[-1]
    assert final.base == "scratch" and final.deps == (0, 1)
    assert plan.stages[0].base == "golang:1.22"


def test_target_selects_a_stage_case_insensitively():
    plan = plan_build(parse(MULTI), target="TEST")
    assert [s.name for s in plan.stages] == ["build", "test"]
    test = plan.stages[-1]
    assert test.base == "build" and test.base_stage == 0 and test.deps == (0,)


def test_unknown_target():
    with pytest.raises(InvalidArgument, match='target stage "nope" could not be found'):
        plan_build(parse(MULTI), target="nope")


def test_step_numbers_count_global_args_and_built_stages():
    plan = plan_build(parse(MULTI))
    assert plan.meta_steps == ((1, "ARG GO=1.22"),)
    assert [(s.name, s.number) for s in plan.stages] == [("build", 2), ("tools", 4), ("final", 6)]
    assert plan.total_steps == 8
    final = evaluate_stage(plan, plan.stages[-1], None)
    assert [s.number for s in final.steps] == [7, 8]
    assert [s.display for s in final.steps] == ["COPY --from=build /app /app",
                                                "COPY --from=tools /usr/bin/curl /curl"]


def test_copy_from_index_and_run_mount_from_are_dependencies():
    df = parse("FROM a\nFROM b\nFROM c\nCOPY --from=0 /x /x\n"
               "RUN --mount=type=bind,from=1,target=/m true\n")
    plan = plan_build(df)
    assert [s.index for s in plan.stages] == [0, 1, 2]
    assert plan.stages[-1].deps == (0, 1)


def test_copy_from_a_later_stage_builds_it_first():
    df = parse("FROM a AS first\nCOPY --from=second /x /x\nFROM b AS second\nRUN true\n")
    plan = plan_build(df, target="first")
    assert [s.name for s in plan.stages] == ["second", "first"]


def test_circular_and_bad_stage_references():
    with pytest.raises(BuildError, match="circular dependency detected on stage: [ab]$"):
        plan_build(parse("FROM x AS a\nCOPY --from=b / /\nFROM y AS b\nCOPY --from=a / /\n"))
    with pytest.raises(BuildError, match="circular dependency detected on stage: self"):
        plan_build(parse("FROM x AS self\nCOPY --from=self / /\n"))
    with pytest.raises(BuildError, match="invalid stage index 5"):
        plan_build(parse("FROM x\nCOPY --from=5 / /\n"))


def test_copy_from_an_image_is_not_a_stage():
    s = step("FROM x\nCOPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf\n")
    assert s.action.from_stage is None and s.action.from_image == "nginx:latest"


def test_from_uses_global_args_and_build_arg_overrides():
    df = parse("ARG BASE=busybox\nARG TAG=${BASE}-1\nFROM ${BASE}:${TAG}\n")
    assert plan_build(df).stages[0].base == "busybox:busybox-1"
    assert plan_build(df, build_args={"BASE": "alpine"}).stages[0].base == "alpine:alpine-1"
    assert plan_build(df, build_args={"TAG": "edge"}).stages[0].base == "busybox:edge"
    assert plan_build(df, build_args={"BASE": None}).stages[0].base == "busybox:busybox-1"


def test_from_with_platform_args_and_blank_base():
    df = parse("ARG IMG\nFROM --platform=$BUILDPLATFORM golang AS b\nFROM ${IMG}\n")
    plan = plan_build(df, platform_args={"BUILDPLATFORM": "linux/amd64"}, target="b",
                      build_args={"IMG": "x"})
    assert plan.stages[0].platform == "linux/amd64"
    assert plan_build(df, build_args={"IMG": "alpine"}).stages[-1].base == "alpine"
    # an undeclared global is not substituted, even when given as a build arg
    with pytest.raises(BuildError, match="should not be blank"):
        plan_build(parse("FROM ${IMG}\n"), build_args={"IMG": "x"})
    # like BuildKit, every FROM is expanded, also in stages the target does not need
    with pytest.raises(BuildError, match=r"base name \(\$\{IMG\}\) should not be blank"):
        plan_build(df, target="b")


def test_from_and_target_take_names_not_indexes():
    df = parse("FROM a AS builder\nFROM 0\n")
    plan = plan_build(df)
    assert plan.stages[-1].base == "0" and plan.stages[-1].base_stage is None
    assert [s.index for s in plan.stages] == [1]
    with pytest.raises(InvalidArgument, match='target stage "0" could not be found'):
        plan_build(df, target="0")


def test_from_a_later_stage_name_is_an_image():
    plan = plan_build(parse("FROM later AS first\nFROM x AS later\n"), target="first")
    assert plan.stages[0].base_stage is None and plan.stages[0].base == "later"


# --------------------------------------------------------------------------- ARG scoping


def test_global_arg_needs_redeclaration_inside_a_stage():
    df = "ARG VERSION=latest\nFROM busybox\nRUN echo $VERSION\nARG VERSION\nRUN echo $VERSION\n"
    ss = steps(df)
    first, decl, second = ss.steps
    assert first.used_args == () and first.created_by() == "/bin/sh -c echo $VERSION"
    assert decl.created_by() == "/bin/sh -c #(nop)  ARG VERSION"
    assert second.used_args == (("VERSION", "latest"),)
    assert second.created_by() == "|1 VERSION=latest /bin/sh -c echo $VERSION"
    assert "VERSION=latest" in second.action.env


def test_arg_default_and_build_arg_override():
    df = 'FROM busybox\nARG GREETING=hello\nRUN echo "$GREETING"\n'
    assert step(df).created_by() == '|1 GREETING=hello /bin/sh -c echo "$GREETING"'
    s = step(df, build_args={"GREETING": "hi"})
    assert s.created_by() == '|1 GREETING=hi /bin/sh -c echo "$GREETING"'
    assert s.used_args == (("GREETING", "hi"),)
    assert s.action.env[-1] == "GREETING=hi"


def test_arg_without_value_is_unset():
    s = step("FROM busybox\nARG NOVALUE\nRUN env\n")
    assert s.used_args == () and s.created_by() == "/bin/sh -c env"


def test_env_overrides_arg_of_the_same_name():
    # Docker's reference: ENV always wins over an ARG of the same name
    ss = steps("FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nRUN echo $CONT_IMG_VER\n",
               build_args={"CONT_IMG_VER": "v2.0.1"})
    run = ss.steps[-1]
    assert run.created_by() == "/bin/sh -c echo $CONT_IMG_VER"
    assert "CONT_IMG_VER=v1.0.0" in run.action.env and "CONT_IMG_VER=v2.0.1" not in run.action.env


def test_env_from_arg_pattern():
    ss = steps("FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n",
               build_args={"CONT_IMG_VER": "v2.0.1"})
    env_step = ss.steps[-1]
    assert env_step.config["Env"][-1] == "CONT_IMG_VER=v2.0.1"
    assert env_step.used_args == (("CONT_IMG_VER", "v2.0.1"),)
    assert steps("FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n"
                 ).config["Env"][-1] == "CONT_IMG_VER=v1.0.0"


def test_arg_is_in_scope_only_after_its_line():
    ss = steps("FROM busybox\nUSER ${user:-some_user}\nARG user\nUSER $user\n",
               build_args={"user": "what_user"})
    assert ss.steps[0].config["User"] == "some_user"
    assert ss.steps[2].config["User"] == "what_user"


def test_args_do_not_leak_between_stages():
    df = parse("FROM a AS one\nARG X=1\nFROM b AS two\nRUN echo $X\n")
    plan = plan_build(df)
    two = evaluate_stage(plan, plan.stages[-1], None)
    assert two.steps[0].used_args == ()


def test_several_args_sorted_in_history():
    s = step("FROM busybox\nARG B=2 A=1\nARG C\nRUN true\n", build_args={"C": "3"})
    assert s.created_by() == "|3 A=1 B=2 C=3 /bin/sh -c true"


def test_proxy_args_work_undeclared_but_stay_out_of_history():
    s = step("FROM busybox\nRUN wget x\n", build_args={"HTTP_PROXY": "http://proxy:3128"})
    assert "HTTP_PROXY=http://proxy:3128" in s.action.env
    assert s.created_by() == "|0 /bin/sh -c wget x"
    assert s.used_args == ()
    declared = step("FROM busybox\nARG HTTP_PROXY\nRUN wget x\n",
                    build_args={"HTTP_PROXY": "http://p"})
    assert declared.created_by() == "|1 HTTP_PROXY=http://p /bin/sh -c wget x"


def test_unused_build_args_warning():
    plan = plan_build(parse("ARG USED1\nFROM x\nARG USED2\n"),
                      build_args={"USED1": "a", "USED2": "b", "Z": "1", "A": None,
                                  "HTTPS_PROXY": "p"})
    assert plan.unused_build_args() == ["A", "Z"]
    assert unused_args_warning(plan.unused_build_args()) == \
        "[Warning] One or more build-args [A Z] were not consumed"
    assert unused_args_warning([]) == ""
    assert plan.unused_build_args(also_consumed={"Z"}) == ["A"]


def test_args_in_skipped_stages_are_not_consumed():
    plan = plan_build(parse("FROM a AS skipped\nARG ONLY_HERE\nFROM b\n"),
                      build_args={"ONLY_HERE": "1"})
    assert plan.unused_build_args() == ["ONLY_HERE"]


def test_global_proxy_arg_value_reaches_stages_like_docker():
    s = step("ARG HTTP_PROXY=http://g\nFROM busybox\nRUN true\n")
    assert "HTTP_PROXY=http://g" in s.action.env


# --------------------------------------------------------------------------- substitution scope


def test_substitution_only_where_docker_applies_it():
    ss = steps('FROM busybox\nENV D=/data N=app P=8080 S=SIGINT\n'
               'WORKDIR $D\nUSER $N\nEXPOSE $P\nVOLUME $D/vol\nSTOPSIGNAL $S\nLABEL dir=$D\n'
               'CMD echo $D\nENTRYPOINT ["echo", "$D"]\nSHELL ["/bin/sh", "-c", "$D"]\n'
               'ONBUILD RUN echo $D\nHEALTHCHECK CMD echo $D\nRUN echo $D\n')
    c = ss.config
    assert c["WorkingDir"] == "/data" and c["User"] == "app" and c["StopSignal"] == "SIGINT"
    assert c["ExposedPorts"] == {"8080/tcp": {}} and c["Volumes"] == {"/data/vol": {}}
    assert c["Labels"] == {"dir": "/data"}
    assert c["Entrypoint"] == ["echo", "$D"] and c["Shell"] == ["/bin/sh", "-c", "$D"]
    assert c["OnBuild"] == ["RUN echo $D"]
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "echo $D"]}
    assert ss.steps[-1].action.argv == ("/bin/sh", "-c", "$D", "echo $D")
    cmd_step = next(s for s in ss.steps if s.instruction.cmd == "CMD")
    assert cmd_step.config["Cmd"] == ["/bin/sh", "-c", "echo $D"]


def test_env_pairs_in_one_instruction_see_the_previous_values():
    # Docker's reference: def gets the value abc had before this ENV
    ss = steps("FROM busybox\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    env = dict(e.split("=", 1) for e in ss.config["Env"])
    assert (env["abc"], env["def"], env["ghi"]) == ("bye", "hello", "bye")


def test_env_replaces_in_place_and_escapes():
    ss = steps('FROM busybox\nENV PATH=/opt/bin:$PATH FOO=\\$HOME BAR="a b"\n')
    assert ss.config["Env"][0] == "PATH=/opt/bin:" + BUSYBOX["Env"][0][5:]
    assert ss.config["Env"][1:] == ["FOO=$HOME", "BAR=a b"]
    assert ss.steps[0].created_by().endswith("#(nop)  ENV PATH=/opt/bin:" + BUSYBOX["Env"][0][5:]
                                             + " FOO=$HOME BAR=a b")


def test_escape_directive_applies_to_substitution():
    s = step("# escape=`\nFROM busybox\nENV A=`$x B=c:\\dir\n")
    assert s.config["Env"][-2:] == ["A=$x", "B=c:\\dir"]


def test_bad_substitution_is_a_positioned_error():
    with pytest.raises(BuildError) as info:
        steps("FROM busybox\nRUN true\nWORKDIR ${oops\n")
    assert info.value.line == 3
    assert "failed to process \"${oops\": syntax error: missing '}'" in str(info.value)


def test_used_args_track_only_referenced_build_args():
    ss = steps("FROM busybox\nARG SRC=a.txt OTHER=x\nENV SHADOW=1\nARG SHADOW=2\n"
               "COPY $SRC /dst/\nLABEL v=$SHADOW\n")
    copy_step, label = ss.steps[-2], ss.steps[-1]
    assert copy_step.used_args == (("SRC", "a.txt"),)
    assert copy_step.action.sources == ("a.txt",)
    assert label.used_args == () and label.config["Labels"] == {"v": "1"}


# --------------------------------------------------------------------------- config changes


def test_workdir_relative_absolute_and_history():
    ss = steps("FROM busybox\nWORKDIR /a\nWORKDIR b\nWORKDIR ../c/\nWORKDIR /abs/\n")
    assert [s.config["WorkingDir"] for s in ss.steps] == ["/a", "/a/b", "/a/c", "/abs/"]
    assert ss.steps[0].created_by() == "/bin/sh -c #(nop) WORKDIR /a"
    assert steps("FROM busybox\nWORKDIR rel\n", {"WorkingDir": "/base"}).config["WorkingDir"] == \
        "/base/rel"
    with pytest.raises(BuildError, match="cannot normalize nothing"):
        steps("FROM busybox\nWORKDIR $UNSET\n")
    assert workdir_path("", "x") == "/x"


def test_cmd_entrypoint_interplay():
    base = {"Cmd": ["sh"], "Entrypoint": None}
    ss = steps('FROM busybox\nENTRYPOINT ["/bin/app"]\n', base)
    assert ss.config["Entrypoint"] == ["/bin/app"] and ss.config["Cmd"] is None
    ss = steps('FROM busybox\nCMD ["--help"]\nENTRYPOINT ["/bin/app"]\n', base)
    assert ss.config["Cmd"] == ["--help"]
    ss = steps("FROM busybox\nENTRYPOINT exec top -b\n", base)
    assert ss.config["Entrypoint"] == ["/bin/sh", "-c", "exec top -b"]
    assert steps("FROM busybox\nENTRYPOINT []\n", base).config["Entrypoint"] is None
    assert steps("FROM busybox\nCMD []\n", base).config["Cmd"] == []
    assert steps("FROM busybox\nCMD\n", base).config["Cmd"] == ["/bin/sh", "-c"]


def test_shell_changes_later_shell_forms_and_history():
    ss = steps('FROM busybox\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nRUN a | b\nCMD run\nENV X=1\n')
    shell, run, cmd, env = ss.steps
    assert shell.created_by() == "/bin/sh -c #(nop)  SHELL [/bin/bash -o pipefail -c]"
    assert run.action.argv == ("/bin/bash", "-o", "pipefail", "-c", "a | b")
    assert run.created_by() == "/bin/bash -o pipefail -c a | b"
    assert cmd.config["Cmd"] == ["/bin/bash", "-o", "pipefail", "-c", "run"]
    assert env.created_by() == "/bin/bash -o pipefail -c #(nop)  ENV X=1"


def test_expose_ports_ranges_protocols_and_word_splitting():
    ss = steps('FROM busybox\nENV PORTS="80 443/tcp"\nEXPOSE $PORTS 53/UDP 7000-7002\n')
    assert ss.config["ExposedPorts"] == {f"{p}": {} for p in (
        "80/tcp", "443/tcp", "53/udp", "7000/tcp", "7001/tcp", "7002/tcp")}
    # the words are sorted as written (before substitution), as Docker's parser does
    assert ss.steps[-1].created_by() == "/bin/sh -c #(nop)  EXPOSE 80 443/tcp 53/UDP 7000-7002"
    for bad, msg in (("EXPOSE 80/xyz", "invalid proto: xyz"),
                     ("EXPOSE abc", "invalid containerPort: abc"),
                     ("EXPOSE 90-80", "invalid containerPort: 90-80"),
                     ("EXPOSE 70000", "invalid containerPort: 70000")):
        with pytest.raises(BuildError, match=msg):
            steps("FROM busybox\n" + bad + "\n")


def test_stopsignal_validation():
    for sig in ("SIGKILL", "kill", "9", "SIGRTMIN+3", "USR1"):
        assert step(f"FROM busybox\nSTOPSIGNAL {sig}\n").config["StopSignal"] == sig
    for bad in ("SIGFOO", "0", "RTMIN+99"):
        with pytest.raises(BuildError, match=re.escape(f"Invalid signal: {bad}")):
            steps(f"FROM busybox\nSTOPSIGNAL {bad}\n")


def test_labels_merge_and_volumes():
    ss = steps('FROM busybox\nLABEL a=1 "b c"="d e"\nLABEL a=2\nVOLUME /x ["/not-json"]\n',
               {"Labels": {"base": "yes"}})
    assert ss.config["Labels"] == {"base": "yes", "a": "2", "b c": "d e"}
    assert ss.steps[0].created_by() == "/bin/sh -c #(nop)  LABEL a=1 b c=d e"
    # a JSON-looking word in the shell form is just a word; substitution removes its quotes
    assert ss.config["Volumes"] == {"/x": {}, "[/not-json]": {}}


def test_maintainer_sets_the_author():
    ss = steps("FROM busybox\nMAINTAINER Jane <j@x>\nRUN true\n")
    assert ss.steps[0].author == "Jane <j@x>" and ss.author == "Jane <j@x>"
    assert ss.steps[0].created_by() == "/bin/sh -c #(nop)  MAINTAINER Jane <j@x>"


def test_base_config_is_not_mutated():
    base = {"Env": ["A=1"], "Labels": {"x": "y"}}
    steps("FROM busybox\nENV A=2\nLABEL x=z\n", base)
    assert base == {"Env": ["A=1"], "Labels": {"x": "y"}}


# --------------------------------------------------------------------------- history text


@pytest.mark.parametrize("line,created_by", [
    ("WORKDIR /app", "/bin/sh -c #(nop) WORKDIR /app"),
    ('ENTRYPOINT ["/bin/sh" , "-c"]', '/bin/sh -c #(nop)  ENTRYPOINT ["/bin/sh" "-c"]'),
    ("CMD echo hi", '/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "echo hi"]'),
    ('CMD ["say", "a \\"b\\""]', '/bin/sh -c #(nop)  CMD ["say" "a \\"b\\""]'),
    ("ENV A=1 B=2", "/bin/sh -c #(nop)  ENV A=1 B=2"),
    ("ARG X=1 Y", "/bin/sh -c #(nop)  ARG X=1 Y"),
    ("USER 1000:1000", "/bin/sh -c #(nop)  USER 1000:1000"),
    ("EXPOSE 8080 80", "/bin/sh -c #(nop)  EXPOSE 80 8080"),
    ('VOLUME ["/a", "/b"]', "/bin/sh -c #(nop)  VOLUME [/a /b]"),
    ("STOPSIGNAL SIGTERM", "/bin/sh -c #(nop)  STOPSIGNAL SIGTERM"),
    ("ONBUILD RUN make", "/bin/sh -c #(nop)  ONBUILD RUN make"),
    ("HEALTHCHECK NONE", '/bin/sh -c #(nop)  HEALTHCHECK &{["NONE"] "0s" "0s" "0s" "0s" \'\\x00\'}'),
    ("HEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD curl -f http://localhost/ || exit 1",
     '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "curl -f http://localhost/ || exit 1"] '
     '"5m0s" "3s" "0s" "0s" \'\\x03\'}'),
    ('HEALTHCHECK --interval=1h1m1.5s --start-period=250ms CMD ["check"]',
     '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD" "check"] "1h1m1.5s" "0s" "250ms" "0s" \'\\x00\'}'),
    ("RUN echo hi", "/bin/sh -c echo hi"),
    ('RUN ["echo", "hi"]', "echo hi"),
])
def test_created_by(line, created_by):
    assert step("FROM busybox\n" + line + "\n").created_by() == created_by


def test_run_created_by_with_build_args_and_json():
    s = step('FROM busybox\nARG GREETING=hi\nRUN ["echo", "$GREETING"]\n')
    assert s.created_by() == "|1 GREETING=hi echo $GREETING"


def test_copy_created_by():
    s = step("FROM busybox\nCOPY hello.txt ./hello.txt\n")
    assert s.created_by("file:abc") == "/bin/sh -c #(nop) COPY file:abc in ./hello.txt "
    s = step("FROM busybox\nADD --chown=1000:1000 src /app\n")
    assert s.created_by("dir:def") == "/bin/sh -c #(nop) ADD --chown=1000:1000dir:def in /app "


def test_config_only_flags():
    ss = steps("FROM busybox\nENV A=1\nRUN true\nCOPY a b\nWORKDIR /x\n")
    assert [s.config_only for s in ss.steps] == [True, False, False, True]


# --------------------------------------------------------------------------- RUN and COPY actions


def test_run_action_env_workdir_user():
    ss = steps("FROM busybox\nARG V=1\nWORKDIR /w\nUSER nobody\nRUN id\n", {"Env": ["A=b"]})
    run = ss.steps[-1].action
    assert isinstance(run, RunAction)
    assert run.argv == ("/bin/sh", "-c", "id")
    assert run.env == ("A=b", "V=1") and run.workdir == "/w" and run.user == "nobody"
    assert steps("FROM scratch\nRUN x\n", None).steps[0].action.workdir == "/"


def test_run_flags_are_passed_and_mounts_substituted():
    s = step("FROM busybox\nENV C=/cache\nRUN --mount=type=cache,target=$C --network=none make\n")
    assert s.action.mounts == ("type=cache,target=/cache",) and s.action.network == "none"


def test_run_heredoc_simple_shebang_and_complex():
    simple = step("FROM busybox\nRUN <<EOF\napk add curl\necho done\nEOF\n").action
    assert simple.argv == ("/bin/sh", "-c", "apk add curl\necho done\n") and simple.files == ()
    chomped = step("FROM busybox\nRUN <<-EOF\n\techo a\n\tEOF\n").action
    assert chomped.argv[-1] == "echo a\n"
    shebang = step("FROM busybox\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n").action
    assert shebang.argv == ("/bin/sh", "-c", "/dev/pipes/EOF")
    assert shebang.files == (InlineFile("/dev/pipes/EOF", "#!/usr/bin/env python3\nprint(1)\n",
                                        0o755),)
    complex_ = step("FROM busybox\nRUN python3 <<EOF > /out\nprint('hi')\nEOF\n").action
    assert complex_.argv == ("/bin/sh", "-c", "python3 <<EOF > /out\nprint('hi')\nEOF")
    two = step("FROM busybox\nRUN cat <<A <<-B\na\nA\n\tb\n\tB\n").action
    assert two.argv[-1] == "cat <<A <<-B\na\nA\n\tb\nB"


def test_copy_action_fields():
    ss = steps("FROM busybox\nARG U=app\nWORKDIR /srv\n"
               "COPY --chown=$U:$U --chmod=0755 --link a* sub/ rel/\n")
    a = ss.steps[-1].action
    assert isinstance(a, CopyAction)
    assert (a.sources, a.dest, a.dest_path) == (("a*", "sub/"), "rel/", "/srv/rel/")
    assert (a.chown, a.chmod, a.link) == ("app:app", "0755", True)
    assert ss.steps[-1].used_args == (("U", "app"),)


def test_copy_json_form_and_add_flags():
    a = step('FROM busybox\nCOPY ["my file.txt", "/dst dir/"]\n').action
    assert a.sources == ("my file.txt",) and a.dest_path == "/dst dir/"
    a = step("FROM busybox\nADD --checksum=sha256:aa --keep-git-dir https://x/r.git /src\n").action
    assert (a.cmd, a.checksum, a.keep_git_dir, a.sources) == ("ADD", "sha256:aa", True,
                                                              ("https://x/r.git",))


def test_copy_heredoc_sources():
    ss = steps("FROM busybox\nENV NAME=me\n"
               "COPY <<EOF <<'RAW' <<-TABS /etc/\nhi $NAME \"q\"\nEOF\nhi $NAME\nRAW\n\tt\n\tTABS\n")
    a = ss.steps[-1].action
    assert a.sources == ()
    assert a.inline == (InlineFile("EOF", 'hi me "q"\n'), InlineFile("RAW", "hi $NAME\n"),
                        InlineFile("TABS", "t\n"))


def test_copy_from_resolution_uses_stage_env_and_global_args():
    df = parse("ARG SRC=build\nFROM a AS build\nFROM b\nCOPY --from=$SRC /x /x\n")
    plan = plan_build(df)
    a = evaluate_stage(plan, plan.stages[-1], None).steps[-1].action
    assert a.from_stage == 0


@pytest.mark.parametrize("workdir,dest,want", [
    ("", "x", "/x"), ("/app", ".", "/app"), ("/app", "./", "/app/"), ("/app", "sub/", "/app/sub/"),
    ("/app", "/abs", "/abs"), ("/app", "../up", "/up"), ("", "/", "/"), ("/a", "/", "/"),
])
def test_dest_path(workdir, dest, want):
    assert dest_path(workdir, dest) == want


# --------------------------------------------------------------------------- ONBUILD triggers


def test_onbuild_triggers_run_first_and_are_cleared():
    base = {"Env": ["A=1"], "OnBuild": ["ADD . /app/src", "RUN /usr/local/bin/build $A",
                                        "ARG FROM_TRIGGER"]}
    ss = steps("FROM base\nRUN echo mine\n", base)
    assert ss.trigger_count == 3
    assert [(s.trigger, s.number, s.display) for s in ss.steps] == [
        (True, None, "ADD . /app/src"), (True, None, "RUN /usr/local/bin/build $A"),
        (True, None, "ARG FROM_TRIGGER"), (False, 2, "RUN echo mine")]
    assert all(s.config.get("OnBuild") is None for s in ss.steps)
    assert "FROM_TRIGGER" in ss.declared_args


def test_onbuild_instruction_is_recorded_not_run():
    ss = steps("FROM base\nONBUILD RUN make\nONBUILD COPY . /src\n", {"OnBuild": None})
    assert ss.config["OnBuild"] == ["RUN make", "COPY . /src"]
    assert all(isinstance(s.action, ConfigAction) for s in ss.steps)


def test_bad_trigger_is_a_build_error():
    with pytest.raises(BuildError, match="unknown instruction: BOGUS"):
        steps("FROM base\n", {"OnBuild": ["BOGUS x"]})


# --------------------------------------------------------------------------- cache keys and sources


def test_cache_key_depends_on_each_input():
    base = cache_key("sha256:p", "RUN x", [("A", "1")], "")
    assert base.startswith("sha256:") and len(base) == 71
    assert base == cache_key("sha256:p", "RUN x", [("A", "1")], "")
    assert cache_key("sha256:q", "RUN x", [("A", "1")], "") != base
    assert cache_key("sha256:p", "RUN y", [("A", "1")], "") != base
    assert cache_key("sha256:p", "RUN x", [("A", "2")], "") != base
    assert cache_key("sha256:p", "RUN x", [], "") != base
    assert cache_key("sha256:p", "RUN x", [("A", "1")], "file:x") != base
    assert cache_key("p", "i", [("A", "1"), ("B", "2")]) == cache_key("p", "i", [("B", "2"), ("A", "1")])


def test_step_cache_keys_change_with_substitution_and_args():
    df = "FROM busybox\nARG V=1\nRUN echo $V\n"
    k1 = step(df).cache_key("sha256:parent")
    assert k1 == step(df).cache_key("sha256:parent")
    assert step(df, build_args={"V": "2"}).cache_key("sha256:parent") != k1
    assert step(df).cache_key("sha256:other") != k1
    c1 = step("FROM busybox\nENV D=/a\nCOPY x $D\n").cache_key("p", "file:1")
    c2 = step("FROM busybox\nENV D=/b\nCOPY x $D\n").cache_key("p", "file:1")
    assert c1 != c2
    assert step("FROM busybox\nENV D=/b\nCOPY x $D\n").cache_key("p", "file:2") != c2


def test_source_hashing():
    f = SourceEntry("a.txt", 0o100644, 0, 0, digest="sha256:" + "1" * 64)
    g = SourceEntry("b.txt", 0o100644, 0, 0, digest="sha256:" + "2" * 64)
    link = SourceEntry("l", 0o120777, link="a.txt")
    root = SourceEntry("", 0o40755)
    assert hash_sources([f, g, link]) == hash_sources([link, g, f])
    assert hash_sources([f]) != hash_sources([SourceEntry("a.txt", 0o100755, 0, 0, f.digest)])
    assert hash_sources([f]) != hash_sources([SourceEntry("a.txt", 0o100644, 1, 0, f.digest)])
    assert hash_sources([link]) != hash_sources([SourceEntry("l", 0o120777, link="b.txt")])
    fh = source_hash([f], is_dir=False)
    dh = source_hash([root, f, g], is_dir=True)
    assert fh.startswith("file:") and len(fh) == 5 + 64
    assert dh.startswith("dir:") and dh != "dir:" + fh[5:]
    assert combine_source_hashes([fh]) == fh
    multi = combine_source_hashes([fh, dh])
    assert multi.startswith("multi:") and multi != combine_source_hashes([dh, fh])


def test_copy_heredoc_expansion_processes_backslashes_like_buildkit():
    a = step("FROM busybox\nCOPY <<EOF /x\ncost \\$5 and C:\\\\dir\nEOF\n").action
    assert a.inline == (InlineFile("EOF", "cost $5 and C:\\dir\n"),)


def test_brief_examples():
    s = step('FROM busybox\nARG GREETING\nENV MSG=x\nRUN echo "$MSG"\n', build_args={"GREETING": "hi"})
    assert s.created_by() == '|1 GREETING=hi /bin/sh -c echo "$MSG"'
    s = step("FROM busybox\nCOPY . /app\n")
    assert s.created_by("dir:" + "0" * 64) == "/bin/sh -c #(nop) COPY dir:" + "0" * 64 + " in /app "
