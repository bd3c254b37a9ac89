"""Every ``vidloc`` subcommand answers ``--help`` with exit code 0."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from vidloc.cli import build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return sorted(action.choices)
    raise AssertionError("vidloc has no subcommands")


def test_user_commands_are_registered() -> None:
    assert {"api", "timeline", "watch", "submit", "worker"} <= set(_subcommands())


@pytest.mark.parametrize("command", _subcommands())
def test_help_exits_zero(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: vidloc {command}" in capsys.readouterr().out


def test_usage_errors_exit_two() -> None:
    """Through the real entrypoint: argparse's own usage errors are exit code 2."""
    for argv in (
        ["timeline"],
        ["timeline", "x", "--json", "--html", "f.html"],
        ["watch", "--count", "x"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "vidloc", *argv], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, (argv, done.stderr)
        assert "usage:" in done.stderr
