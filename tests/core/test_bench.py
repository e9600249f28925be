"""Benchmarks (pashmap.bench): the standard workloads and the ``pashmap bench`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pashmap.bench.workloads import WORKLOADS, Sizes
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


def test_bench_prints_each_row_as_it_is_measured_with_progress_on_stderr() -> None:
    """The first workload's rows are out before the second workload starts."""
    arguments = "bench --quick --workloads latency overhead --contexts local threads --workers 2"
    process = subprocess.Popen(
        [sys.executable, "-m", "pashmap", *arguments.split()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("latency    threads"):
            break
    stderr_so_far = []
    for line in process.stderr:  # the progress lines written so far, and the rest
        stderr_so_far.append(line)
        if "[3/4]" in line:
            break
    assert any(line.startswith("latency    local") for line in lines)
    assert "[1/4] latency on local" in "".join(stderr_so_far)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "overhead   threads" in out
    assert "latency: threads slower than serial" in out  # the reason, in words


@pytest.mark.parametrize(
    ("ratio", "shown"), [(1.0, "1.00x"), (0.73, "0.73x"), (0.0014, "0.0014x"), (2.5, "2.50x")]
)
def test_small_ratios_stay_readable(ratio: float, shown: str) -> None:
    from pashmap.bench.command import format_ratio

    assert format_ratio(ratio) == shown
