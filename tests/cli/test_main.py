"""The entry point's exit statuses and messages, without an engine."""

from __future__ import annotations

from workbench.cli.main import main


def test_usage_error_is_125(capsys):
    assert main(["nope"]) == 125
    err = capsys.readouterr().err
    assert "'nope' is not a workbench command" in err or "invalid choice" in err
    assert "See 'workbench --help'." in err


def test_help_is_0(capsys):
    assert main(["ps", "--help"]) == 0
    assert "usage: workbench ps" in capsys.readouterr().out


def test_no_engine_is_1_with_a_clear_line(capsys, tmp_path):
    host = f"unix://{tmp_path}/none.sock"
    assert main(["-H", host, "ps"]) == 1
    assert capsys.readouterr().err.strip() == (f"Cannot connect to the Workbench engine at {host}. "
                                               "Is the engine running?")


def test_run_without_engine_is_125(capsys, tmp_path):
    assert main(["-H", f"unix://{tmp_path}/none.sock", "run", "busybox"]) == 125


def test_version_without_engine_shows_the_client_and_fails(capsys, tmp_path):
    assert main(["-H", f"unix://{tmp_path}/none.sock", "version"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("Client:\n Version:") and "Cannot connect" in captured.err


def test_bad_filter_is_a_usage_style_error(capsys, tmp_path):
    assert main(["-H", f"unix://{tmp_path}/none.sock", "ps", "--filter", "nokey"]) == 1
    assert "bad format of filter" in capsys.readouterr().err


def test_prune_asks_first_and_stops_on_no(capsys, monkeypatch, tmp_path):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"n\n")))
    assert main(["-H", f"unix://{tmp_path}/none.sock", "container", "prune"]) == 0
    assert "Are you sure you want to continue? [y/N]" in capsys.readouterr().err
