"""The figures that pashmap-core's and pashmap-xfel's docstrings lean on, measured.

The code says *why* a choice was made ("cheaper than the protocol check", "fewer shares
and closer to the ideal time", "a fixed cost per share", "less time per byte"); how much,
on a given machine, is measured here, so that the numbers can be refreshed rather than
go stale in comments. Each row names the module whose docstring makes the claim.

Run:  hatch run bench:python benchmarks/code_figures.py [--quick]
Prints a Markdown section; ``hatch run bench:suite`` appends it to RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable

import numpy as np

import pashmap as pm
from pashmap.bench.workloads import busy, sizes, skewed_iterations
from pashmap.contexts import guided_sizes
from pashmap.targets import MapTarget, is_map_target


def per_call(function: Callable[[], object], calls: int) -> float:
    """Seconds per call of ``function``: the best of 5 runs of ``calls`` calls."""
    return min(timeit.repeat(function, number=calls, repeat=5)) / calls


def map_target_check(quick: bool) -> list[tuple[str, str, str]]:
    calls = 20_000 if quick else 200_000
    rows = []
    for label, obj in (("a numpy array", np.zeros(3)), ("a list", [1, 2, 3])):
        fast = per_call(lambda obj=obj: is_map_target(obj), calls)
        protocol = per_call(lambda obj=obj: isinstance(obj, MapTarget), calls)
        rows.append(
            (
                f"`is_map_target` against `isinstance(obj, MapTarget)`, for {label}",
                f"{fast * 1e9:.0f} ns against {protocol * 1e9:.0f} ns: "
                f"{protocol / fast:.0f} times cheaper",
                "pashmap/registry.py",
            )
        )
    return rows


def busy_cost(quick: bool) -> list[tuple[str, str, str]]:
    iterations = 100_000 if quick else 1_000_000
    seconds = per_call(lambda: busy(iterations), 1)
    return [
        (
            "`busy(iterations)`, the pure-Python work of `uniform` and `skewed`",
            f"{seconds / iterations * 1e9:.0f} ns per iteration",
            "pashmap/bench/workloads.py",
        )
    ]


def guided_against_equal(quick: bool, workers: int) -> list[tuple[str, str, str]]:
    try:
        import pashmap_shm  # noqa: F401
    except ImportError as exc:
        return [("guided against equal shares", f"not measured: {exc}", "pashmap/shares.py")]
    s = sizes(quick)
    n = s.compute_elements
    iterations = [skewed_iterations(i, n, s.compute_iterations) for i in range(n)]
    equal = 32 * workers
    times: dict[str, list[float]] = {"guided": [], "equal": []}
    with pm.use_context("processes", num_workers=workers):
        out = pm.zeros(n, dtype=np.int64)

        def kernel(worker_id: int, index: int, count: int) -> None:
            out[index] = busy(count)

        for _ in range(3 if quick else 5):
            for name, options in (("guided", {}), ("equal", {"shares": equal})):
                start = time.perf_counter()
                pm.map(kernel, iterations, **options)
                times[name].append(time.perf_counter() - start)
    start = time.perf_counter()
    for count in iterations:
        busy(count)
    serial = time.perf_counter() - start
    guided, equal_time = (statistics.median(times[k]) for k in ("guided", "equal"))
    return [
        (
            f"the `skewed` workload ({n} elements) on {workers} processes: guided shares "
            f"against {equal} equal ones",
            f"{len(guided_sizes(n, workers))} shares in {guided * 1000:.0f} ms against "
            f"{equal} in {equal_time * 1000:.0f} ms; the ideal (serial / {workers}) is "
            f"{serial / workers * 1000:.0f} ms",
            "pashmap/shares.py",
        )
    ]


def xfel_reads(quick: bool) -> list[tuple[str, str, str]]:
    try:
        import extra_data

        from pashmap_xfel.demo import AGIPD, write_demo_run
        from pashmap_xfel.layout import TrainLayout
    except ImportError as exc:
        return [("KeyData reads", f"not measured: {exc}", "pashmap_xfel/layout.py")]
    trains, frames = (16, 8) if quick else (48, 16)
    with tempfile.TemporaryDirectory(prefix="pashmap-code-figures-") as path:
        write_demo_run(path, trains=trains, frames=frames)
        for name in os.listdir(path):  # from the page cache, as a repeated analysis reads
            with open(os.path.join(path, name), "rb") as stream:
                while stream.read(1 << 24):
                    pass
        kd = extra_data.RunDirectory(path)[AGIPD, "image.data"]
        layout = TrainLayout.of(kd)
        assert layout is not None
        positions = range(len(kd.train_ids))

        def through_select_trains() -> None:
            for i in positions:
                next(iter(kd.select_trains(np.s_[i : i + 1]).trains()))

        def through_layout() -> None:
            for i in positions:
                layout.read(int(layout.file_number[i]), int(layout.first[i]), 1)

        per_share = per_call(through_select_trains, 1) / trains
        per_layout = per_call(through_layout, 1) / trains
        dataset = layout.files[0].file[layout.path]
        total = int(layout.first[-1] + layout.count[-1])
        direct = per_call(lambda: layout.read(0, 0, total), 1)
        sliced = per_call(lambda: dataset[0:total], 1)
        mb = dataset.dtype.itemsize * total * int(np.prod(dataset.shape[1:])) / 1e6
    return [
        (
            "a one-train share of a KeyData: `kd.select_trains(...).trains()` against "
            "`TrainLayout.read`, first train included",
            f"{per_share * 1000:.2f} ms against {per_layout * 1000:.2f} ms per share",
            "pashmap_xfel/layout.py",
        ),
        (
            f"reading {mb:.0f} MB of uncompressed AGIPD frames from the page cache: "
            "direct chunk reads (`TrainLayout.read`) against `dataset[first:stop]`",
            f"{direct / mb * 1e6:.0f} us/MB against {sliced / mb * 1e6:.0f} us/MB: "
            f"{1 - direct / sliced:.0%} less time per byte",
            "pashmap_xfel/layout.py",
        ),
    ]


def section(quick: bool, workers: int) -> str:
    rows: list[tuple[str, str, str]] = []
    for measure in (map_target_check, busy_cost, xfel_reads):
        rows += measure(quick)
    rows += guided_against_equal(quick, workers)
    lines = [
        "\n## Figures the code leans on\n",
        "`python benchmarks/code_figures.py`: what docstrings in pashmap-core and "
        "pashmap-xfel say in words, measured on this machine (load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + ").\n",
        "| what | measured | said in |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {what} | {value} | `{where}` |" for what, value, where in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    print(section(args.quick, args.workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
