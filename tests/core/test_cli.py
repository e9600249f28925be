"""The pashmap command: demo and info."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pashmap.cli import main


def test_demo_runs_every_context_and_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--size", "20000", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "local" in out
    assert "WRONG" not in out
    assert "all results verified" in out


def test_info_lists_versions_contexts_and_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for expected in ("pashmap-core", "numpy", "pashmap.contexts", "local", "sequence", "cpus"):
        assert expected in out


def test_usage_errors_exit_2_with_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pashmap", "frobnicate"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pashmap", "demo", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--size" in result.stdout


def test_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--size", "-5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pashmap: error:")
    assert len(err.strip().splitlines()) == 1
