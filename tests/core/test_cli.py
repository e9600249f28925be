"""The pashmap command: demo and info (bench: test_bench.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pashmap as pm
from pashmap.cli import main, quick_guide


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


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["demo", "--size", "-5"], "argument --size: must be at least 1, got -5"),
        (["demo", "--workers", "0"], "argument --workers: must be at least 1, got 0"),
        (["demo", "--size", "many"], "argument --size: expected a whole number"),
        (["demo", "--sizee", "10"], "unrecognized arguments: --sizee 10"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(
    arguments: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no header, no local demo run first
    assert captured.err.startswith("usage: pashmap demo")  # the command's own usage
    assert f"pashmap demo: error: {says}" in captured.err


def test_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    pm.set_default_context("local")
    assert main(["info"]) == 0
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("pashmap.cli._info", _fail)
        assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pashmap: error:")
    assert len(err.strip().splitlines()) == 1


def _fail(args: object) -> int:
    raise ValueError("something went wrong")


def test_demo_checks_every_element_of_the_quick_guide() -> None:
    seconds, ok = quick_guide(1000)
    assert ok
    assert seconds > 0


@pytest.mark.parametrize("command", [["info"], ["demo", "--size", "1000", "--workers", "1"]])
def test_info_and_demo_never_import_the_benchmark_code(command: list[str]) -> None:
    code = (
        "import sys\n"
        "from pashmap.cli import main, quick_guide\n"
        f"assert main({command!r}) == 0\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('pashmap'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = done.stdout.splitlines()[-1].split()
    assert "pashmap.cli" in loaded
    assert not [m for m in loaded if m.startswith(("pashmap.bench", "pashmap_xfel.bench"))]


def test_bench_is_dispatched_to_the_bench_module(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pashmap bench")
    assert "--workloads" in out
