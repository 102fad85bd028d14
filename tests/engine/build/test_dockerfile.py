"""Dockerfile parser and shell-word substitution: Docker's reference semantics.

Cases come from Docker's Dockerfile reference and from BuildKit's parser/lexer test tables.
"""

from __future__ import annotations

import pytest

from workbench.engine.build.dockerfile import (
    Heredoc, parse, parse_duration, parse_heredoc_marker, parse_instruction)
from workbench.engine.build.shell_words import Lexer, ShellWordError, env_from_list, go_quote
from workbench.errors import BuildError


def instrs(text: str):
    """All instructions of the last stage."""
    return parse(text).stages[-1].instructions


def one(text: str):
    return instrs("FROM scratch\n" + text)[0]


def err(text: str, name: str = "Dockerfile") -> BuildError:
    with pytest.raises(BuildError) as info:
        parse(text, name)
    return info.value


# --------------------------------------------------------------------------- structure


def test_stages_global_args_and_names():
    df = parse("ARG A=1\nARG B\nFROM busybox AS Build\nRUN x\nFROM build\nFROM alpine:3.19 as final\n")
    assert [i.original for i in df.global_args] == ["ARG A=1", "ARG B"]
    assert [(s.index, s.name, s.base) for s in df.stages] == [
        (0, "build", "busybox"), (1, "", "build"), (2, "final", "alpine:3.19")]
    assert df.stages[0].instructions[0].args == ("x",)
    assert df.stage("BUILD").index == 0 and df.stage("2").name == "final"
    assert df.stage("nope") is None and df.stage("7") is None


def test_lowercase_instructions_are_accepted():
    df = parse("from busybox\nrun echo hi\ncopy a b\n")
    assert [i.cmd for i in df.stages[0].instructions] == ["RUN", "COPY"]


def test_line_numbers_with_continuations_and_heredocs():
    df = parse("FROM a\n\nRUN a \\\n  b \\\n  c\nRUN <<EOF\nx\nEOF\nUSER me\n")
    run1, run2, user = df.stages[0].instructions
    assert (run1.line, run1.end_line) == (3, 5)
    assert (run2.line, run2.end_line) == (6, 8)
    assert (user.line, user.end_line) == (9, 9)


def test_crlf_line_endings_and_bom():
    df = parse("\ufeffFROM busybox\r\nRUN echo \\\r\n  hi\r\nENV A=b\r\n")
    run, env = df.stages[0].instructions
    assert run.args == ("echo   hi",)
    assert env.args == ("A", "b")


# --------------------------------------------------------------------------- directives, comments


def test_escape_directive_backtick_windows_example():
    # From Docker's reference: with `, a trailing \ is an ordinary character.
    df = parse("# escape=`\n\nFROM microsoft/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\n")
    copy, run = df.stages[0].instructions
    assert df.escape == "`"
    assert copy.args == ("testfile.txt", "c:\\")
    assert run.args == ("dir c:\\",)


def test_escape_directive_backtick_continuation():
    df = parse("# escape=`\nFROM x\nRUN echo a `\n    b\n")
    assert df.stages[0].instructions[0].args == ("echo a     b",)


def test_default_escape_windows_paths():
    # Docker's reference example without the directive: `c:\\` ends in an escaped escape,
    # which current BuildKit does not treat as a continuation; `c:\` at the end does continue.
    df = parse("FROM microsoft/nanoserver\nCOPY testfile.txt c:\\\\\nRUN dir c:\\\n")
    copy, run = df.stages[0].instructions
    assert copy.args == ("testfile.txt", "c:\\\\")
    assert run.args == ("dir c:",)


def test_syntax_and_check_directives_accepted():
    df = parse("# syntax=docker/dockerfile:1.7\n# check=skip=all\nFROM x\n")
    assert df.directives == {"syntax": "docker/dockerfile:1.7", "check": "skip=all"}


@pytest.mark.parametrize("text", [
    "# comment\n# escape=`\nFROM x\nRUN a `\n",       # after a comment: just a comment
    "\n# escape=`\nFROM x\nRUN a `\n",                # after an empty line
    "FROM x\n# escape=`\nRUN a `\n",                  # after an instruction
    "# unknowndirective=x\n# escape=`\nFROM x\nRUN a `\n",
])
def test_directives_only_at_the_very_top(text):
    df = parse(text)
    assert df.escape == "\\"
    assert df.stages[0].instructions[-1].args == ("a `",)


def test_directive_spelling_variants():
    assert parse("#escape=`\nFROM x\n").escape == "`"
    assert parse("# ESCAPE = `\nFROM x\n").escape == "`"
    assert parse("   #  escape= `  \nFROM x\n").escape == "`"


def test_directive_errors():
    e = err("# escape=`\n# escape=\\\nFROM x\n")
    assert str(e) == "Dockerfile parse error on line 2: only one escape parser directive can be used"
    assert e.line == 2
    e = err("# escape=x\nFROM x\n")
    assert "invalid escape token 'x' does not match ` or \\" in str(e)


def test_comments_and_hash_inside_arguments():
    df = parse("# top\nFROM x\n  # indented comment\nRUN echo hi # not a comment\n")
    run, = df.stages[0].instructions
    assert run.args == ("echo hi # not a comment",)


def test_comments_inside_continuations_are_dropped():
    # Docker's reference example
    df = parse("FROM x\nRUN echo hello \\\n# comment\nworld\n")
    assert df.stages[0].instructions[0].args == ("echo hello world",)


def test_empty_continuation_lines_warn():
    df = parse("FROM x\nRUN apt-get update \\\n\n    && apt-get install -y foo\n")
    run, = df.stages[0].instructions
    assert run.args == ("apt-get update     && apt-get install -y foo",)
    assert any("Empty continuation line" in w for w in df.warnings)


def test_escaped_escape_is_not_a_continuation():
    df = parse("FROM x\nRUN echo \\\\\nUSER me\n")
    run, user = df.stages[0].instructions
    assert run.args == ("echo \\\\",)
    assert user.args == ("me",)


def test_continuation_with_trailing_blanks_and_lone_escape_line():
    df = parse("FROM x\nRUN a \\  \t\n  b \\\n\\\n  c\n")
    assert df.stages[0].instructions[0].args == ("a   b   c",)


def test_continuation_at_end_of_file():
    assert parse("FROM x\nRUN echo hi \\").stages[0].instructions[0].args == ("echo hi",)


# --------------------------------------------------------------------------- JSON and shell forms


@pytest.mark.parametrize("text,args,is_json", [
    ('CMD ["echo", "hi"]', ("echo", "hi"), True),
    ('CMD [ "echo" , "a b" ]', ("echo", "a b"), True),
    ("CMD []", (), True),
    ("CMD ['echo', 'hi']", ("['echo', 'hi']",), False),       # single quotes are not JSON
    ('CMD ["echo", "hi"] extra', ('["echo", "hi"] extra',), False),
    ('CMD [ "unterminated', ('[ "unterminated',), False),
    ('ENTRYPOINT ["/bin/sh", "-c"]', ("/bin/sh", "-c"), True),
    ('RUN ["echo", "\\u00e9\\n"]', ("echo", "é\n"), True),
    ("CMD echo $HOME", ("echo $HOME",), False),
    ("CMD [NaN]", ("[NaN]",), False),
    ('COPY ["a b.txt", "/dst dir/"]', ("a b.txt", "/dst dir/"), True),
    ("COPY a  b   /dst/", ("a", "b", "/dst/"), False),
    ('VOLUME ["/data", "/logs"]', ("/data", "/logs"), True),
    ("VOLUME /data /logs", ("/data", "/logs"), False),
])
def test_json_and_shell_forms(text, args, is_json):
    ins = one(text)
    assert ins.args == args
    assert ins.json_form is is_json


def test_json_array_of_non_strings_is_an_error():
    e = err('FROM x\nCMD ["a", 1]\n')
    assert "arrays must be comprised of strings only" in str(e)
    assert e.line == 2


# --------------------------------------------------------------------------- heredocs


HEREDOC_FILE = """FROM alpine:3.6

ENV NAME=me

RUN ls

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN "<<NOHEREDOC"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<EOF /quotes
"foo"
'bar'
EOF

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

COPY <<file.txt /dest
hello world
file.txt

RUN <<eo'f'
echo foo
eof

RUN <<eo\\'f
echo foo
eo'f

RUN <<'e'o\\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF

RUN <<  EOF
EOF
"""

HEREDOC_EXPECT = [
    None,                                                   # ENV
    None,                                                   # RUN ls
    [Heredoc("EMPTY", "", False, True)],
    [Heredoc("EMPTY2", "", False, True, 3)],
    None,
    [Heredoc("INDENT", "\tfoo\n\tbar\n", False, True)],
    [Heredoc("UNINDENT", "\tbaz\n\tquux\n", True, True)],
    [Heredoc("UNINDENT2", "\tbaz\n\tquux\n", True, True)],
    [Heredoc("NOEXPAND", "\tdon't expand $NAME\n", True, False)],
    [Heredoc("COMMENT", "# internal comment\necho hello world\necho foo bar # trailing comment\n",
             False, True)],
    [Heredoc("MOUNT", "echo hello\n", False, True)],
    [Heredoc("FILE1", "content 1\n", False, True), Heredoc("FILE2", "content 2\n", False, True)],
    [Heredoc("EOF", "\"foo\"\n'bar'\n", False, True)],
    [Heredoc("X", "Y\n", False, True), Heredoc("Y", "X\n", False, True)],
    [Heredoc("COMPLEX", "print('hello world')\n", False, True)],
    [Heredoc("file.txt", "hello world\n", False, True)],
    [Heredoc("eof", "echo foo\n", False, False)],
    [Heredoc("eo'f", "echo foo\n", False, True)],
    [Heredoc("eo'f", "echo foo\n", False, False)],
    [Heredoc("one two", "echo bar\n", False, False)],
    [Heredoc("$EOF", "", False, True)],
    [Heredoc("EOF", "", False, True)],
]


def test_heredocs_buildkit_table():
    got = [list(i.heredocs) or None for i in instrs(HEREDOC_FILE)]
    assert got == HEREDOC_EXPECT


def test_heredoc_chomp_data_and_raw_content():
    ins = one("RUN <<-EOT\n\techo a\n\t\techo b\n\tEOT\n")
    doc, = ins.heredocs
    assert doc.content == "\techo a\n\t\techo b\n"
    assert doc.data == "echo a\necho b\n"


def test_heredoc_in_json_form_is_not_a_heredoc():
    df = parse('FROM x\nRUN ["<<EOF"]\nRUN ["<<\'EOF\'"]\nUSER me\n')
    assert all(not i.heredocs for i in df.stages[0].instructions)
    assert df.stages[0].instructions[-1].cmd == "USER"


def test_heredoc_only_for_run_copy_add():
    # USER takes no heredoc: the next line is read as an instruction, and INVALID is unknown
    with pytest.raises(BuildError, match="unknown instruction: INVALID"):
        parse("FROM x\nUSER <<INVALID\nINVALID\n")


def test_heredoc_with_shell_command_and_redirect():
    ins = one("RUN cat <<EOF > /file\nhello\nEOF\n")
    assert ins.args == ("cat <<EOF > /file",)
    assert ins.heredocs == (Heredoc("EOF", "hello\n"),)


def test_heredoc_under_onbuild():
    ins = one("ONBUILD RUN <<EOF\necho hi\nEOF\n")
    assert ins.trigger is not None and ins.trigger.heredocs == (Heredoc("EOF", "echo hi\n"),)
    assert ins.args == ("RUN <<EOF\necho hi\nEOF",)


def test_unterminated_heredoc():
    e = err("FROM x\nRUN <<EOF\necho hi\n")
    assert str(e) == "Dockerfile parse error on line 2: unterminated heredoc"


def test_heredoc_marker_helper():
    for src in ("<<EOF", "<<'EOF'", '<<"EOF"', "<<-EOF", "<<-'EOF'", '<<-"EOF"', '<<EO"F"',
                "<< EOF", "<<- EOF"):
        assert parse_heredoc_marker(src).name == "EOF", src
    for src in ("", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"):
        assert parse_heredoc_marker(src) is None, src
    assert parse_heredoc_marker("<<'EOF'").expand is False
    assert parse_heredoc_marker("<<-EOF").chomp is True
    assert parse_heredoc_marker("4<<EOF").fd == 4


def test_copy_heredoc_destination_is_an_error():
    assert "COPY cannot accept a heredoc as a destination" in str(err("FROM x\nCOPY a <<EOF\nx\nEOF\n"))


# --------------------------------------------------------------------------- instructions


def test_from_variants_and_errors():
    st = parse("FROM --platform=linux/arm64 busybox:1.36 AS Web\n").stages[0]
    assert (st.base, st.platform, st.name) == ("busybox:1.36", "linux/arm64", "web")
    assert "FROM requires either one or three arguments" in str(err("FROM a b\n"))
    assert "FROM requires either one or three arguments" in str(err("FROM\n"))
    assert "FROM requires either one or three arguments" in str(err("FROM a AS\n"))
    e = err("FROM a AS 1abc\n")
    assert 'invalid name for build stage: "1abc", name can\'t start with a number or contain symbols' in str(e)
    assert 'duplicate stage name "x"' in str(err("FROM a AS x\nFROM b AS X\n"))
    assert "Unknown flag: foo" in str(err("FROM --foo=bar a\n"))


def test_arg_forms():
    ins = one('ARG A B=2 C="three four" D=')
    assert ins.args == ("A", "B=2", 'C="three four"', "D=")
    assert "ARG requires at least one argument" in str(err("FROM x\nARG\n"))
    assert "ARG names can not be blank" in str(err("FROM x\nARG =x\n"))


def test_env_forms():
    assert one("ENV A=1 B=two").args == ("A", "1", "B", "two")
    assert one('ENV MY_NAME="John Doe" MY_DOG=Rex\\ The\\ Dog MY_CAT=fluffy').args == (
        "MY_NAME", '"John Doe"', "MY_DOG", "Rex\\ The\\ Dog", "MY_CAT", "fluffy")
    assert one("ENV MY_VAR my-value with spaces").args == ("MY_VAR", "my-value with spaces")
    assert one('ENV A="" B=').args == ("A", '""', "B", "")


def test_env_errors():
    assert "ENV names can not be blank" in str(err("FROM x\nENV =x\n"))
    assert "ENV must have two arguments" in str(err("FROM x\nENV ONLYNAME\n"))
    e = err("FROM x\nENV A=1 B\n")
    assert 'Syntax error - can\'t find = in "B". Must be of the form: name=value' in str(e)
    assert "ENV requires at least one argument" in str(err("FROM x\nENV\n"))


def test_env_legacy_form_warns():
    df = parse("FROM x\nENV A b\n")
    assert any("legacy" in w for w in df.warnings)


def test_label_forms():
    # Docker's reference examples
    ins = one('LABEL "com.example.vendor"="ACME Incorporated" com.example.label-with-value="foo" '
              'version="1.0" description="This text illustrates \\\n that label-values can span lines."')
    assert ins.args[0::2] == ('"com.example.vendor"', "com.example.label-with-value", "version",
                              "description")
    assert one("LABEL key value here").args == ("key", "value here")
    assert "LABEL names can not be blank" in str(err("FROM x\nLABEL =v\n"))


def test_copy_add_flags_and_args():
    ins = one("COPY --from=build --chown=55:mygroup --chmod=644 --link files* /somedir/")
    assert ins.flags == (("from", "build"), ("chown", "55:mygroup"), ("chmod", "644"), ("link", "true"))
    assert ins.flag("from") == "build" and ins.flag("missing") is None
    assert ins.args == ("files*", "/somedir/")
    assert one("COPY --link=false a b").flag("link") == "false"
    assert one("COPY --exclude=*.md --exclude=*.txt . /x").flag_all("exclude") == ("*.md", "*.txt")
    assert one('COPY --chown="a b" x y').flag("chown") == "a b"
    add = one("ADD --checksum=sha256:abc --keep-git-dir https://x/y.tar /z")
    assert add.flag("checksum") == "sha256:abc" and add.flag("keep-git-dir") == "true"
    assert one("COPY -- --weird /x").args == ("--weird", "/x")


@pytest.mark.parametrize("text,message", [
    ("COPY --from=a --from=b x y", "Duplicate flag specified: from"),
    ("COPY --bogus=1 x y", "Unknown flag: bogus"),
    ("COPY --from x y", "Missing a value on flag: from"),
    ("COPY --link= x y", "Missing a value on flag: link"),
    ("COPY --link=maybe x y", "Expecting boolean value for flag link, not: maybe"),
    ("ADD --from=x a b", "Unknown flag: from"),
    ("COPY onlyone", "COPY requires at least two arguments, but only one was provided. "
                     "Destination could not be determined"),
    ("ADD onlyone", "ADD requires at least two arguments"),
    ("ENV --foo=bar A=b", "Unknown flag: foo"),
    ("WORKDIR", "WORKDIR requires exactly one argument"),
    ("USER", "USER requires exactly one argument"),
    ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
    ("MAINTAINER", "MAINTAINER requires exactly one argument"),
    ("EXPOSE", "EXPOSE requires at least one argument"),
    ("VOLUME", "VOLUME requires at least one argument"),
    ('VOLUME [""]', "VOLUME specified can not be an empty string"),
    ("SHELL /bin/bash -c", "SHELL requires the arguments to be in JSON form"),
    ("SHELL []", "SHELL requires at least one argument"),
    ("RUN", "RUN requires at least one argument"),
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD maintainer me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD BOGUS x", "unknown instruction: BOGUS"),
])
def test_instruction_errors(text, message):
    e = err("FROM x\n" + text + "\n")
    assert message in str(e)
    assert str(e).startswith("Dockerfile parse error on line 2: ")
    assert e.line == 2


def test_run_flags():
    ins = one("RUN --mount=type=cache,target=/root/.cache --mount=type=bind,from=b,target=/x "
              "--network=none pip install x")
    assert ins.flag_all("mount") == ("type=cache,target=/root/.cache", "type=bind,from=b,target=/x")
    assert ins.flag("network") == "none"
    assert ins.args == ("pip install x",)


def test_expose_sorted_and_volume_trimmed():
    assert one("EXPOSE 8080 80/udp 443").args == ("443", "80/udp", "8080")
    assert one('VOLUME [" /a ", "/b"]').args == ("/a", "/b")


def test_user_workdir_stopsignal_maintainer_are_one_string():
    assert one("USER app:staff").args == ("app:staff",)
    assert one("WORKDIR /path with spaces").args == ("/path with spaces",)
    assert one("STOPSIGNAL SIGKILL").args == ("SIGKILL",)
    df = parse("FROM x\nMAINTAINER Jane Doe <jane@example.com>\n")
    assert df.stages[0].instructions[0].args == ("Jane Doe <jane@example.com>",)
    assert any("MAINTAINER" in w for w in df.warnings)


def test_stopsignal_ignores_flags_like_docker():
    assert one("STOPSIGNAL --x=y SIGTERM").args == ("SIGTERM",)


def test_shell_json():
    assert one('SHELL ["powershell", "-command"]').args == ("powershell", "-command")


def test_onbuild_expression_and_trigger():
    ins = one("ONBUILD ADD . /app/src")
    assert ins.args == ("ADD . /app/src",)
    assert ins.trigger.cmd == "ADD" and ins.trigger.args == (".", "/app/src")
    ins = one("onbuild   run --mount=type=cache,target=/c echo hi")
    assert ins.args == ("run --mount=type=cache,target=/c echo hi",)
    assert ins.trigger.flag_all("mount") == ("type=cache,target=/c",)


def test_healthcheck_forms():
    ins = one("HEALTHCHECK --interval=5m --timeout=3s CMD curl -f http://localhost/ || exit 1")
    h = ins.health
    assert h.test == ("CMD-SHELL", "curl -f http://localhost/ || exit 1")
    assert (h.interval, h.timeout, h.start_period, h.retries) == (300 * 10**9, 3 * 10**9, 0, 0)
    ins = one('HEALTHCHECK --retries=3 --start-period=1m30s --start-interval=2s CMD ["/bin/check", "-q"]')
    assert ins.health.test == ("CMD", "/bin/check", "-q")
    assert ins.health.retries == 3
    assert ins.health.start_period == 90 * 10**9 and ins.health.start_interval == 2 * 10**9
    assert one("HEALTHCHECK NONE").health.test == ("NONE",)
    assert one("healthcheck none").health.test == ("NONE",)
    assert one("HEALTHCHECK --interval=0s CMD true").health.interval == 0


@pytest.mark.parametrize("text,message", [
    ("HEALTHCHECK NONE extra", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK RUN x", 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK --interval=1us CMD x", 'Interval "interval" cannot be less than 1ms'),
    ("HEALTHCHECK --timeout=-1s CMD x", 'Interval "timeout" cannot be less than 1ms'),
    ("HEALTHCHECK --interval=abc CMD x", 'time: invalid duration "abc"'),
    ("HEALTHCHECK --interval=10 CMD x", 'time: missing unit in duration "10"'),
    ("HEALTHCHECK --interval=1d CMD x", 'time: unknown unit "d" in duration "1d"'),
    ("HEALTHCHECK --retries=x CMD x", 'strconv.ParseInt: parsing "x": invalid syntax'),
    ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
    ("HEALTHCHECK --bogus=1 CMD x", "Unknown flag: bogus"),
])
def test_healthcheck_errors(text, message):
    assert message in str(err("FROM x\n" + text + "\n"))


@pytest.mark.parametrize("text,ns", [
    ("0", 0), ("1s", 10**9), ("1.5h", 5400 * 10**9), ("1m30s", 90 * 10**9), ("300ms", 3 * 10**8),
    ("2us", 2000), ("2µs", 2000), ("7ns", 7), (".5s", 5 * 10**8), ("1h2m3s", 3723 * 10**9),
    ("-2s", -2 * 10**9), ("+3s", 3 * 10**9),
])
def test_go_durations(text, ns):
    assert parse_duration(text) == ns


# --------------------------------------------------------------------------- errors as a whole


def test_unknown_instruction_message_and_file_name():
    e = err("FROM busybox\nRUN true\nFOO bar\n")
    assert str(e) == "Dockerfile parse error on line 3: unknown instruction: FOO"
    assert e.line == 3
    e = err("FROM busybox\nfoo bar\n", name="build/app.Dockerfile")
    assert str(e) == "build/app.Dockerfile parse error on line 2: unknown instruction: foo"


def test_no_from():
    e = err("RUN echo hi\n")
    assert str(e) == "Dockerfile parse error on line 1: no build stage in current context"
    e = err("ARG A=1\n\nENV X=y\nFROM z\n")
    assert str(e) == "Dockerfile parse error on line 3: no build stage in current context"
    assert "dockerfile contains no stages to build" in str(err("ARG A=1\n"))


def test_empty_and_comment_only_files():
    assert str(err("")) == "the Dockerfile (Dockerfile) cannot be empty"
    assert "file with no instructions" in str(err("# just a comment\n\n"))


def test_error_line_is_the_first_line_of_a_multiline_instruction():
    e = err("FROM x\nRUN ok\nHEALTHCHECK \\\n  --interval=bogus \\\n  CMD x\n")
    assert e.line == 3


def test_parse_accepts_bytes():
    assert parse(b"FROM x\nRUN caf\xc3\xa9\n").stages[0].instructions[0].args == ("café",)


def test_parse_instruction_for_triggers():
    ins = parse_instruction("RUN echo hi")
    assert (ins.cmd, ins.args) == ("RUN", ("echo hi",))
    with pytest.raises(BuildError, match="single expression"):
        parse_instruction("RUN a\nRUN b")
    with pytest.raises(BuildError, match="unknown instruction: NOPE"):
        parse_instruction("NOPE x")


# --------------------------------------------------------------------------- shell words

# BuildKit's envVarTest table (Unix rows): input | expected ("error" = must fail).
ENV_VAR_TABLE = r"""hello                    |     hello
he'll'o                  |     hello
he'llo                   |     error
he\'llo                  |     he'llo
he\\'llo                 |     error
abc\tdef                 |     abctdef
"abc\tdef"               |     abc\tdef
"abc\\tdef"              |     abc\tdef
'abc\tdef'               |     abc\tdef
hello\                   |     hello
hello\\                  |     hello\
"hello                   |     error
"hello\"                 |     error
"hel'lo"                 |     hel'lo
'hello                   |     error
'hello\'                 |     hello\
'hello\there'            |     hello\there
'hello\\there'           |     hello\\there
"''"                     |     ''
$.                       |     $.
he$1x                    |     hex
he$.x                    |     he$.x
he$pwd.                  |     he.
he$PWD                   |     he/home
he\$PWD                  |     he$PWD
he\\$PWD                 |     he\/home
"he\$PWD"                |     he$PWD
"he\\$PWD"               |     he\/home
\${}                     |     ${}
\${}aaa                  |     ${}aaa
he\${}                   |     he${}
he\${}xx                 |     he${}xx
${}                      |     error
${}aaa                   |     error
he${}                    |     error
he${}xx                  |     error
he${hi}                  |     he
he${hi}xx                |     hexx
he${PWD}                 |     he/home
he${.}                   |     error
he${XXX:-000}xx          |     he000xx
he${PWD:-000}xx          |     he/homexx
he${XXX:-$PWD}xx         |     he/homexx
he${XXX:-${PWD:-yyy}}xx  |     he/homexx
he${XXX:-${YYY:-yyy}}xx  |     heyyyxx
he${XXX:YYY}             |     error
he${XXX:+${PWD}}xx       |     hexx
he${PWD:+${XXX}}xx       |     hexx
he${PWD:+${SHELL}}xx     |     hebashxx
he${XXX:+000}xx          |     hexx
he${PWD:+000}xx          |     he000xx
'he${XX}'                |     he${XX}
"he${PWD}"               |     he/home
"he'$PWD'"               |     he'/home'
"$PWD"                   |     /home
'$PWD'                   |     $PWD
'\$PWD'                  |     \$PWD
'"hello"'                |     "hello"
he${PWD                  |     error
he${PWD:=000}xx          |     error
he${PWD:+${PWD}:}xx      |     he/home:xx
he${XXX:-\$PWD:}xx       |     he$PWD:xx
he${XXX:-\${PWD}z}xx     |     he${PWDz}xx
안녕하세요                 |     안녕하세요
안'녕'하세요               |     안녕하세요
안'녕하세요                |     error
안녕\'하세요               |     안녕'하세요
$KOREAN                  |     한국어
안녕$KOREAN              |     안녕한국어
${{aaa}                  |     error
${aaa}}                  |     }
${aaa                    |     error
${{aaa:-bbb}             |     error
${aaa:-bbb}}             |     bbb}
${aaa:-bbb               |     error
${aaa:-bbb}              |     bbb
${aaa:-${bbb:-ccc}}      |     ccc
${aaa:-bbb ${foo}        |     error
${aaa:-bbb {foo}         |     bbb {foo
${:}                     |     error
${:-bbb}                 |     error
${:+bbb}                 |     error
${XXX-default}           |     default
${EMPTY-default}         |
${EMPTY:-default}        |     default
${XXX+set}               |
${EMPTY+set}             |     set
${EMPTY:+set}            |
${PWD#/h*}               |     ome
${PWD##/*o}              |     me
${PWD%o*}                |     /h
${PWD%%/*}               |
${PWD/o/0}               |     /h0me
${SHELL//a/A}            |     bAsh
${SHELL/#ba/BA}          |     bash
"""

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "EMPTY": ""}


def _table():
    for row in ENV_VAR_TABLE.strip("\n").split("\n"):
        src, _, want = row.partition("|")
        yield src.strip(), want.strip()


@pytest.mark.parametrize("src,want", list(_table()))
def test_envvar_table(src, want):
    if want == "error":
        with pytest.raises(ShellWordError):
            Lexer().word(src, ENV)
    else:
        assert Lexer().word(src, ENV) == want


# BuildKit's wordsTest: ENV lines set variables, other lines are input | comma-joined words.
WORDS_TABLE = [
    ({}, "hello", ["hello"]),
    ({}, "hello${hi}bye", ["hellobye"]),
    ({"hi": "hi"}, "hello${hi}bye", ["hellohibye"]),
    ({"space": "abc  def"}, "hello${space}bye", ["helloabc", "defbye"]),
    ({"space": "abc  def"}, 'hello"${space}"bye', ["helloabc  defbye"]),
    ({"space": "abc  def"}, 'hello "${space}"bye', ["hello", "abc  defbye"]),
    ({"leading": "  ab c"}, "hello${leading}def", ["hello", "ab", "cdef"]),
    ({"leading": "  ab c"}, 'hello"${leading}" def', ["hello  ab c", "def"]),
    ({"leading": "  ab c"}, 'hello"${leading}"', ["hello  ab c"]),
    ({"leading": "  ab c"}, "hello${leading}", ["hello", "ab", "c"]),
    ({"trailing": "ab c   "}, "hello${trailing}", ["helloab", "c"]),
    ({"trailing": "ab c   "}, "hello${trailing}d", ["helloab", "c", "d"]),
    ({"trailing": "ab c   "}, 'hello"${trailing}"d', ["helloab c   d"]),
    ({"trailing": "ab c   "}, 'hel"lo${trailing}"', ["helloab c   "]),
    ({}, 'hello" there  "', ["hello there  "]),
    ({}, "hello there     ", ["hello", "there"]),
    ({}, "hello\\ there", ["hello there"]),
    ({}, 'hello\\" there', ['hello"', "there"]),
    ({}, '"" x ""', ["x"]),
]


@pytest.mark.parametrize("env,src,want", WORDS_TABLE)
def test_words_table(env, src, want):
    assert Lexer().words(src, env) == want


def test_backtick_escape_lexer():
    lex = Lexer("`")
    assert lex.word("a`$b", {"b": "x"}) == "a$b"
    assert lex.word("c:\\dir", {}) == "c:\\dir"
    assert lex.word('"q`"q"', {}) == 'q"q'


def test_matched_and_unmatched_variables():
    res = Lexer().process("${A}-$B-${C:-x}-'$D'", {"A": "1", "C": ""})
    assert res.text == "1--x-$D"
    assert res.matched == {"A", "C"} and res.unmatched == {"B"}


def test_question_modifier_messages():
    with pytest.raises(ShellWordError, match=r'failed to process "\$\{X:\?must be set\}": X: must be set'):
        Lexer().word("${X:?must be set}", {})
    with pytest.raises(ShellWordError, match="X: is not allowed to be empty"):
        Lexer().word("${X:?}", {"X": ""})
    assert Lexer().word("${X?}", {"X": ""}) == ""


def test_skip_quotes_keeps_quotes_for_heredoc_bodies():
    lex = Lexer("\\", skip_quotes=True)
    assert lex.word("echo \"$A\" '$A'\n", {"A": "v"}) == "echo \"v\" 'v'\n"


def test_skip_unset_and_raw_modes():
    assert Lexer(skip_unset=True).word("$X ${Y} ${Z:-d} $A", {"A": "a"}) == "$X ${Y} ${Z:-d} a"
    assert Lexer(raw_quotes=True).word("'a'\"b\"", {}) == "'a'\"b\""
    assert Lexer(raw_escapes=True).word("a\\ b", {}) == "a\\ b"


def test_env_from_list_and_go_quote():
    assert env_from_list(["A=1", "B=x=y", "C", "A=2"]) == {"A": "2", "B": "x=y", "C": ""}
    assert go_quote('a"b\\c\n\t\x01é') == '"a\\"b\\\\c\\n\\t\\x01é"'


# --------------------------------------------------------------------------- moby parser test files

CONTINUE_INDENT = """FROM ubuntu:14.04

RUN echo hello\\
  world\\
  goodnight  \\
  moon\\
  light\\
ning
RUN echo hello  \\
  world
RUN echo hello  \\
world
RUN echo hello \\
goodbye\\
frog
RUN echo hi \\
 \\
 world \\
\\
 good\\
\\
night
RUN echo goodbye\\
frog
RUN echo good\\
bye\\
frog
"""


def test_moby_continue_indent():
    assert [i.args[0] for i in instrs(CONTINUE_INDENT)] == [
        "echo hello  world  goodnight    moon  lightning", "echo hello    world",
        "echo hello  world", "echo hello goodbyefrog", "echo hi   world  goodnight",
        "echo goodbyefrog", "echo goodbyefrog"]


ESCAPES = """FROM ubuntu:14.04
MAINTAINER Erik \\\\Hollensbe <erik@hollensbe.org>\\"

RUN apt-get \\update && \\
  apt-get \\"install znc -y
ADD \\conf\\\\" /.znc

RUN foo \\
bar \\
baz

CMD [ "\\/usr\\\\\\"/bin/znc", "-f", "-r" ]
"""


def test_moby_escapes():
    maintainer, run1, add, run2, cmd = instrs(ESCAPES)
    assert maintainer.args == ('Erik \\\\Hollensbe <erik@hollensbe.org>\\"',)
    assert run1.args == ('apt-get \\update &&   apt-get \\"install znc -y',)
    assert add.args == ('\\conf\\\\"', "/.znc")
    assert run2.args == ("foo bar baz",)
    assert cmd.json_form and cmd.args == ('/usr\\"/bin/znc', "-f", "-r")
