"""Per-map latency of warm (persistent) workers against cold ones and other pools.

    hatch run bench:python benchmarks/shm_warm.py

A trivial kernel writing 16 elements into an output array, 2 workers; medians of
interleaved rounds:
- pashmap ProcessContext, cold: fork at every map (the default), forkserver and spawn
  starting workers at every map;
- pashmap ProcessContext, warm (persistent=True): fork and forkserver;
- concurrent.futures.ProcessPoolExecutor (kept alive; results returned, no shared output);
- mpire WorkerPool(keep_alive=True) (results returned).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing

import numpy as np
from mpire import WorkerPool
from shm_common import interleave, median_of, report

from pashmap_shm import ProcessContext

WORKERS = 2
ELEMENTS = 16


def triple(value: float) -> float:
    return 3 * value


def triple_mpire(value: float) -> float:
    return 3 * value


def main() -> None:
    data = np.arange(float(ELEMENTS))
    contexts = {
        "pashmap fork, cold (default)": ProcessContext(WORKERS),
        "pashmap forkserver, cold": ProcessContext(WORKERS, start_method="forkserver"),
        "pashmap spawn, cold": ProcessContext(WORKERS, start_method="spawn"),
        "pashmap fork, warm": ProcessContext(WORKERS, persistent=True),
        "pashmap forkserver, warm": ProcessContext(
            WORKERS, start_method="forkserver", persistent=True
        ),
    }
    outputs = {name: ctx.zeros(ELEMENTS) for name, ctx in contexts.items()}

    def make(ctx: ProcessContext, out: np.ndarray):  # type: ignore[no-untyped-def]
        def kernel(worker_id: int, index: int, value: float) -> None:
            out[index] = 3 * value

        return lambda: ctx.map(kernel, data)

    runs = {name: make(ctx, outputs[name]) for name, ctx in contexts.items()}
    executor = concurrent.futures.ProcessPoolExecutor(
        WORKERS, mp_context=multiprocessing.get_context("forkserver")
    )
    mpire_pool = WorkerPool(n_jobs=WORKERS, keep_alive=True, start_method="fork")
    runs["ProcessPoolExecutor (forkserver, kept)"] = lambda: list(executor.map(triple, data))
    runs["mpire WorkerPool(keep_alive=True)"] = lambda: mpire_pool.map(
        triple_mpire, data, progress_bar=False
    )
    for run in runs.values():  # start pools, warm caches
        run()
        run()
    repeats = {name: (3 if "cold" in name and "fork," not in name else 20) for name in runs}
    results = interleave(
        {name: (lambda run=run, n=repeats[name]: median_of(run, n)) for name, run in runs.items()},
        rounds=7,
    )
    medians = report(
        f"per-map latency, trivial kernel, {ELEMENTS} elements, {WORKERS} workers",
        results,
        "pashmap forkserver, warm",
    )
    fork = medians["pashmap fork, warm"] / medians["pashmap fork, cold (default)"]
    server = medians["pashmap forkserver, warm"] / medians["pashmap forkserver, cold"]
    print(f"  warm vs cold: fork {fork:.3f}x, forkserver {server:.4f}x")
    for out in outputs.values():
        np.testing.assert_array_equal(out, data * 3)
    executor.shutdown()
    mpire_pool.terminate()
    for ctx in contexts.values():
        ctx.close()


if __name__ == "__main__":
    main()
