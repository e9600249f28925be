"""Benchmarks (pashmap.bench): the standard workloads and the ``pashmap bench`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pashmap.bench import WORKLOADS, Sizes
from pashmap.cli import main


def test_bench_quick_runs_workloads_in_fresh_processes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "bench.json"
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
    assert "usable" in data["cpus"]


def test_bench_unknown_workload_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--workloads", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown workload or context: nope" in err
    assert len(err.strip().splitlines()) == 1


def test_bench_usage_errors_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pashmap", "bench", "--frobnicate"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "pashmap bench: error: unrecognized arguments: --frobnicate" in result.stderr


def test_one_workload_runs_as_a_module_and_prints_one_json_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pashmap.bench.workloads", "latency", "--quick"],
        check=True,
        capture_output=True,
        text=True,
    )
    line = json.loads(result.stdout)
    assert line["workload"] == "latency"
    assert line["context"] == "local"
    assert line["seconds"] > 0


@pytest.mark.parametrize("workload", ["latency", "overhead", "uniform", "skewed", "zero_copy"])
def test_every_workload_computes_right_results_locally(workload: str) -> None:
    tiny = Sizes(
        latency_maps=2,
        overhead_elements=1000,
        compute_elements=8,
        compute_iterations=100,
        output_bytes=2**22,
        element_bytes=2**20,
    )
    result = WORKLOADS[workload].run(tiny)  # raises RuntimeError on a wrong result
    assert result["seconds"] > 0
