"""Large outputs and repeated allocations: time and the caller's peak memory.

    hatch run bench:python benchmarks/shm_memory.py

- 1 GiB output, 1 MiB per element (1024 elements), 2 workers: pashmap ProcessContext
  writing into a shared array, pasha doing the same, and multiprocessing.Pool.map
  returning the arrays + np.stack (issue target: >= 3x faster than Pool, no slower than
  pasha, caller's peak RSS <= 1.1x the output size). Each run in a fresh process, so
  ru_maxrss is that run's own peak; the caller reads the whole result before measuring.
- repeated allocate + map cycles (256 MiB, 10 cycles) with the shared-block cache on
  (default) and off, and pasha: the first-touch page-fault cost must be paid once, not
  every cycle.
Medians of interleaved rounds.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from shm_common import interleave, report, run_fresh

WORKERS = 2
ELEMENTS = 1024
ROW = 2**20 // 8  # float64 per 1 MiB element
OUTPUT_BYTES = ELEMENTS * ROW * 8
CYCLE_ELEMENTS = 256
CYCLES = 10


def fill_row(index: int) -> np.ndarray:
    return np.full(ROW, float(index))


def big_output(impl: str) -> dict[str, float]:
    # Imports are not timed (importing pashmap costs ~40 ms, pasha ~5 ms).
    import multiprocessing

    import pasha

    from pashmap_shm import ProcessContext

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    if impl == "pashmap":
        ctx = ProcessContext(WORKERS)
        out = ctx.empty((ELEMENTS, ROW))

        def kernel(worker_id: int, index: int, value: int) -> None:
            out[index] = float(index)

        ctx.map(kernel, range(ELEMENTS))
    elif impl == "pasha":
        pctx = pasha.ProcessContext(num_workers=WORKERS)
        out = pctx.alloc(shape=(ELEMENTS, ROW), dtype=np.float64)

        def pkernel(worker_id: int, index: int, value: int) -> None:
            out[index] = float(index)

        pctx.map(pkernel, np.arange(ELEMENTS))
    else:
        with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
            out = np.stack(pool.map(fill_row, range(ELEMENTS)))
    elapsed = time.perf_counter() - start
    assert out[ELEMENTS - 1, 0] == ELEMENTS - 1
    checksum = float(out[:, ::4096].sum())  # the caller reads its result (every page)
    out[:, 0].copy()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": elapsed, "peak_rss": peak, "baseline_rss": baseline, "checksum": checksum}


def cycles(impl: str) -> dict[str, float | list[float]]:
    times = []
    if impl.startswith("pashmap"):
        import pashmap_shm
        from pashmap_shm import ProcessContext

        if impl == "pashmap, cache off":
            pashmap_shm.set_cache_limit(0)
        ctx = ProcessContext(WORKERS)
        for _ in range(CYCLES):
            start = time.perf_counter()
            out = ctx.empty((CYCLE_ELEMENTS, ROW))

            def kernel(worker_id: int, index: int, value: int, out: np.ndarray = out) -> None:
                out[index] = 1.0

            ctx.map(kernel, range(CYCLE_ELEMENTS))
            del out
            times.append(time.perf_counter() - start)
    else:
        import pasha

        pctx = pasha.ProcessContext(num_workers=WORKERS)
        for _ in range(CYCLES):
            start = time.perf_counter()
            pout = pctx.alloc(shape=(CYCLE_ELEMENTS, ROW), dtype=np.float64)

            def pkernel(worker_id: int, index: int, value: int, out: np.ndarray = pout) -> None:
                out[index] = 1.0

            pctx.map(pkernel, np.arange(CYCLE_ELEMENTS))
            del pout
            times.append(time.perf_counter() - start)
    return {"first": times[0], "later": statistics.median(times[1:]), "times": times}


def main() -> None:
    here = Path(__file__)
    impls = ["pashmap", "pasha", "Pool.map + np.stack"]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in impls}
    seconds = interleave(
        {
            name: (lambda name=name: _record(runs[name], run_fresh(here, "big", name)))
            for name in impls
        },
        rounds=3,
    )
    medians = report(
        "1 GiB output, 1 MiB per element, 2 workers (time)", seconds, "pashmap", "s", 1
    )
    print(
        f"  Pool / pashmap: {medians['Pool.map + np.stack'] / medians['pashmap']:.2f}x; "
        f"pasha / pashmap: {medians['pasha'] / medians['pashmap']:.2f}x"
    )
    for name in impls:
        peak = statistics.median(run["peak_rss"] for run in runs[name])
        base = statistics.median(run["baseline_rss"] for run in runs[name])
        print(
            f"  {name:<22} caller peak RSS {peak / 2**30:.2f} GiB = {peak / OUTPUT_BYTES:.2f}x "
            f"the output ({(peak - base) / OUTPUT_BYTES:.2f}x above the interpreter's "
            f"{base / 2**20:.0f} MiB)"
        )

    impls = ["pashmap, cache on", "pashmap, cache off", "pasha"]
    detail: dict[str, list[dict[str, float]]] = {name: [] for name in impls}
    later = interleave(
        {
            name: (lambda name=name: _later(detail[name], run_fresh(here, "cycles", name)))
            for name in impls
        },
        rounds=3,
    )
    report(
        f"repeated allocate + map, {CYCLE_ELEMENTS} MiB, cycles 2..{CYCLES} (median cycle)",
        later,
        "pashmap, cache on",
        "ms",
        1e3,
    )
    for name in impls:
        first = statistics.median(run["first"] for run in detail[name])
        print(
            f"  {name:<20} first cycle {first * 1e3:.0f} ms, later cycles "
            f"{statistics.median(later[name]) * 1e3:.0f} ms "
            f"({CYCLE_ELEMENTS / 1024 / statistics.median(later[name]):.2f} GiB/s)"
        )


def _record(store: list[dict[str, float]], result: dict[str, float]) -> float:
    store.append(result)
    return result["seconds"]


def _later(store: list[dict[str, float]], result: dict[str, float]) -> float:
    store.append(result)
    return result["later"]


if __name__ == "__main__":
    if len(sys.argv) == 3:
        what, impl = sys.argv[1:]
        print(json.dumps(big_output(impl) if what == "big" else cycles(impl)))
    else:
        main()
