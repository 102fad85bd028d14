"""THE parser: docker's verbs, flags and spellings; errors raised, never sys.exit."""

from __future__ import annotations

import pytest

from workbench.cli.commands import COMMANDS
from workbench.cli.parser import HelpRequested, UsageError, build_parser, commands, parse
from workbench.cli.render import RENDERERS
from workbench.errors import WorkbenchError


@pytest.mark.parametrize("argv,command", [
    (["images"], "image_ls"), (["image", "ls"], "image_ls"), (["image", "list"], "image_ls"),
    (["rmi", "x"], "image_rm"), (["image", "rm", "x"], "image_rm"), (["image", "remove", "x"], "image_rm"),
    (["ps"], "container_ls"), (["container", "ls"], "container_ls"), (["container", "ps"], "container_ls"),
    (["container", "list"], "container_ls"), (["rm", "c"], "container_rm"),
    (["container", "rm", "c"], "container_rm"), (["history", "i"], "image_history"),
    (["image", "history", "i"], "image_history"), (["import", "-", "x"], "image_import"),
    (["load"], "image_load"), (["save", "x"], "image_save"), (["tag", "a", "b"], "image_tag"),
    (["pull", "x"], "image_pull"), (["push", "x"], "image_push"), (["build", "."], "image_build"),
    (["image", "build", "."], "image_build"), (["image", "prune"], "image_prune"),
    (["image", "inspect", "x"], "image_inspect"), (["image", "bootstrap", "busybox"], "image_bootstrap"),
    (["run", "busybox"], "container_run"), (["container", "run", "busybox"], "container_run"),
    (["create", "busybox"], "container_create"), (["start", "c"], "container_start"),
    (["stop", "c"], "container_stop"), (["kill", "c"], "container_kill"),
    (["restart", "c"], "container_restart"), (["pause", "c"], "container_pause"),
    (["unpause", "c"], "container_unpause"), (["wait", "c"], "container_wait"),
    (["logs", "c"], "container_logs"), (["rename", "a", "b"], "container_rename"),
    (["top", "c"], "container_top"), (["diff", "c"], "container_diff"), (["export", "c"], "container_export"),
    (["cp", "c:/a", "b"], "container_cp"), (["port", "c"], "container_port"),
    (["exec", "c", "ls"], "container_exec"), (["attach", "c"], "container_attach"),
    (["commit", "c"], "container_commit"), (["container", "prune"], "container_prune"),
    (["container", "inspect", "c"], "container_inspect"), (["inspect", "x"], "inspect"),
    (["version"], "version"), (["info"], "info"), (["system", "info"], "info"), (["system", "df"], "system_df"),
    (["system", "prune"], "system_prune"), (["login"], "login"), (["logout"], "logout"),
    (["network", "create", "n"], "network_create"), (["network", "ls"], "network_ls"),
    (["network", "inspect", "n"], "network_inspect"), (["network", "rm", "n"], "network_rm"),
    (["network", "connect", "n", "c"], "network_connect"),
    (["network", "disconnect", "n", "c"], "network_disconnect"), (["network", "prune"], "network_prune"),
    (["volume", "create"], "volume_create"), (["volume", "ls"], "volume_ls"),
    (["volume", "inspect", "v"], "volume_inspect"), (["volume", "rm", "v"], "volume_rm"),
    (["volume", "prune"], "volume_prune"),
    (["registry", "serve", "--root", "/r"], "registry_serve"), (["registry", "gc", "--root", "/r"], "registry_gc"),
    (["registry", "ls", "127.0.0.1:5000"], "registry_ls"), (["engine", "start"], "engine_start"),
    (["engine", "stop"], "engine_stop"), (["engine", "status"], "engine_status"),
])
def test_verbs_map_to_canonical_commands(argv, command):
    assert parse(argv).command == command


def test_every_command_has_a_function_and_the_parser_makes_all_of_them():
    assert set(commands()) == set(COMMANDS)


def test_renderers_only_name_real_commands():
    assert set(RENDERERS) <= set(COMMANDS)


def test_run_flags():
    a = parse(["run", "--rm", "-d", "-it", "--name", "web", "-e", "A=1", "-e", "B=2", "-w", "/app", "-u", "1000",
               "-v", "data:/data", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "20", "--entrypoint", "sh",
               "--restart", "on-failure:3", "-p", "8080:80", "-P", "--network", "appnet", "--network-alias", "api",
               "--mount", "type=tmpfs,target=/t", "-l", "k=v", "-h", "box", "--stop-signal", "SIGINT",
               "--stop-timeout", "3", "busybox", "sh", "-c", "echo $A", "--not-a-flag"])
    assert (a.rm, a.detach, a.interactive, a.tty, a.name) == (True, True, True, True, "web")
    assert a.env == ["A=1", "B=2"] and a.workdir == "/app" and a.user == "1000" and a.volume == ["data:/data"]
    assert a.memory == "64m" and a.cpus == 0.5 and a.pids_limit == 20 and a.entrypoint == "sh"
    assert a.restart == "on-failure:3" and a.publish == ["8080:80"] and a.publish_all
    assert a.network == "appnet" and a.network_alias == ["api"] and a.mount == ["type=tmpfs,target=/t"]
    assert a.label == ["k=v"] and a.hostname == "box" and a.stop_signal == "SIGINT" and a.stop_timeout == 3
    assert a.image == "busybox" and a.cmd == ["sh", "-c", "echo $A", "--not-a-flag"]


def test_flags_after_the_image_belong_to_the_command():
    a = parse(["run", "busybox", "--rm", "-d"])
    assert not a.rm and not a.detach and a.cmd == ["--rm", "-d"]
    e = parse(["exec", "-i", "c1", "ls", "-l"])
    assert e.interactive and e.container == "c1" and e.cmd == ["ls", "-l"]


def test_list_flags_and_global_host():
    a = parse(["-H", "unix:///tmp/x.sock", "ps", "-a", "-q", "--filter", "name=web", "-f", "status=exited",
               "-n", "3", "--no-trunc"])
    assert a.host == "unix:///tmp/x.sock" and a.all and a.quiet and a.last == 3 and a.no_trunc
    assert a.filter == ["name=web", "status=exited"]
    i = parse(["images", "-a", "-q", "--digests", "busybox"])
    assert i.all and i.quiet and i.digests and i.reference == "busybox"
    lg = parse(["logs", "-f", "--tail", "10", "-t", "--since", "5m", "c"])
    assert lg.follow and lg.tail == "10" and lg.timestamps and lg.since == "5m"


def test_build_flags():
    b = parse(["build", "-t", "a:1", "-t", "a:latest", "-f", "Dockerfile.dev", "--build-arg", "K=V", "--target",
               "final", "--no-cache", "--label", "x=y", "-q", "--no-rm", "ctx"])
    assert b.tag == ["a:1", "a:latest"] and b.file == "Dockerfile.dev" and b.build_arg == ["K=V"]
    assert b.target == "final" and b.no_cache and b.label == ["x=y"] and b.quiet and b.rm is False
    assert b.context == "ctx"


def test_engine_and_registry_flags():
    e = parse(["engine", "start", "--root", "/r", "--host", "unix:///s.sock", "--registry", "127.0.0.1:5000", "-d"])
    assert (e.root, e.listen, e.registry, e.detach) == ("/r", ["unix:///s.sock"], "127.0.0.1:5000", True)
    s = parse(["registry", "serve", "--root", "/r", "--addr", "0.0.0.0:5001", "--htpasswd", "h", "--read-only"])
    assert (s.root, s.addr, s.htpasswd, s.read_only) == ("/r", "0.0.0.0:5001", "h", True)
    g = parse(["registry", "gc", "--root", "/r", "--dry-run"])
    assert g.dry_run
    b = parse(["image", "bootstrap", "busybox", "--tag", "bb:1"])
    assert b.tag == "bb:1" and b.flavour == "busybox"


@pytest.mark.parametrize("argv", [["nope"], ["run"], ["ps", "--bogus"], ["image"], ["rm"], [],
                                  ["run", "--cpus", "lots", "busybox"], ["run", "--pull", "sometimes", "b"]])
def test_usage_errors_raise_instead_of_exiting(argv):
    with pytest.raises(UsageError) as caught:
        parse(argv)
    assert isinstance(caught.value, WorkbenchError) and caught.value.exit_code == 125
    assert caught.value.hint.startswith("See 'workbench")


def test_help_and_version_are_not_failures():
    with pytest.raises(HelpRequested) as caught:
        parse(["ps", "--help"])
    assert "usage: workbench ps" in caught.value.text and caught.value.exit_code == 0
    with pytest.raises(HelpRequested):
        parse(["images", "-h"])
    with pytest.raises(HelpRequested) as v:
        parse(["--version"])
    assert v.value.text.startswith("Workbench version")


def test_run_keeps_dash_h_for_hostname():
    assert parse(["run", "-h", "box", "busybox"]).hostname == "box"
    with pytest.raises(HelpRequested):
        parse(["run", "--help"])


def test_build_parser_gives_fresh_trees():
    assert build_parser() is not build_parser()
