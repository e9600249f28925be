"""Helpers shared by the shm_* benchmarks: interleaved runs, medians, ratios.

The benchmark machine is small and shared, so every comparison runs its candidates in
turn (A B C A B C ...) and reports medians: drift hits every candidate alike.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def effective_cores(workers: int = 2) -> float:
    """How many cores this machine gives right now: ``workers`` forked spinners vs one.

    Printed next to speedups: other users of a shared machine lower it.
    """
    import os

    def spin() -> None:
        total = 0
        for k in range(2_000_000):
            total += k

    serial = timed(spin)
    start = time.perf_counter()
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            spin()
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    return workers * serial / (time.perf_counter() - start)


def interleave(candidates: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each candidate once per round, in turn; each call returns one measurement."""
    results: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, measure in candidates.items():
            results[name].append(measure())
    return results


def timed(function: Callable[[], Any]) -> float:
    """Seconds one call of ``function`` takes."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def median_of(function: Callable[[], Any], repeat: int) -> float:
    """The median time of ``repeat`` calls."""
    return statistics.median(timed(function) for _ in range(repeat))


def report(
    title: str,
    results: dict[str, list[float]],
    baseline: str | None = None,
    unit: str = "ms",
    scale: float = 1e3,
) -> dict[str, float]:
    """Print medians (and min-max) and ratios to ``baseline``; return the medians."""
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"\n## {title}")
    for name, values in results.items():
        line = (
            f"  {name:<34} median {medians[name] * scale:9.3f} {unit}"
            f"  (min {min(values) * scale:.3f}, max {max(values) * scale:.3f}, n={len(values)})"
        )
        if baseline is not None and name != baseline:
            line += f"   ratio to {baseline}: {medians[name] / medians[baseline]:.3f}"
        print(line, flush=True)
    return medians


def run_fresh(script: Path, *args: str) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a fresh interpreter; it prints one JSON line last."""
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=900
    )
    if done.returncode:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
