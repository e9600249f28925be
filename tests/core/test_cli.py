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


def test_bench_quick_runs_workloads_in_fresh_processes(
    tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    from pathlib import Path

    out_file = Path(str(tmp_path)) / "bench.json"
    status = main(
        [
            "bench",
            "--quick",
            "--workloads",
            "latency",
            "overhead",
            "--contexts",
            "local",
            "--json",
            str(out_file),
        ]
    )
    assert status == 0
    table = capsys.readouterr().out
    assert "latency" in table
    assert "overhead" in table
    data = json.loads(out_file.read_text())
    assert [r["workload"] for r in data["results"]] == ["latency", "overhead"]
    assert all(r["seconds"] > 0 and r["speedup"] == 1.0 for r in data["results"])


def test_bench_unknown_workload_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--workloads", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown workload or context: nope" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("workload", ["latency", "overhead", "uniform", "skewed", "zero_copy"])
def test_every_workload_computes_right_results_locally(workload: str) -> None:
    from pashmap.workloads import WORKLOADS, Sizes

    tiny = Sizes(
        latency_maps=2,
        overhead_elements=1000,
        compute_elements=8,
        compute_iterations=100,
        output_bytes=2**22,
        element_bytes=2**20,
    )
    result = WORKLOADS[workload].run(tiny)
    assert result["seconds"] > 0
