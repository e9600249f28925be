"""BLAS-heavy kernel on 2 workers: with and without the per-worker BLAS thread limit.

    hatch run bench:python benchmarks/shm_blas.py

Each element is a few matrix products (numpy's BLAS, multi-threaded by default). Without
a limit every worker's BLAS starts one thread per CPU, so 2 workers on 2 CPUs run 4
busy threads; with ``blas_threads='auto'`` (the default of ProcessContext) each worker
runs 1. Also ThreadContext with and without ``blas_threads='auto'``, and LocalContext
(the caller's BLAS with all its threads) for reference. Medians of interleaved rounds.
"""

from __future__ import annotations

import numpy as np
from shm_common import effective_cores, interleave, report, timed
from threadpoolctl import threadpool_info

import pashmap as pm
from pashmap_shm import ProcessContext, ThreadContext

WORKERS = 2
ELEMENTS = 48
SIZE = 384
PRODUCTS = 4


def main() -> None:
    print(f"effective cores now: {effective_cores(WORKERS):.2f}")
    print("BLAS:", [(p["internal_api"], p["num_threads"]) for p in threadpool_info()])
    rng = np.random.default_rng(0)
    matrices = rng.normal(size=(ELEMENTS, SIZE, SIZE)) / SIZE**0.5
    contexts = {
        "LocalContext (BLAS: all CPUs)": pm.LocalContext(),
        "ProcessContext, blas_threads='auto'": ProcessContext(WORKERS),
        "ProcessContext, blas_threads=None": ProcessContext(WORKERS, blas_threads=None),
        "ThreadContext, blas_threads='auto'": ThreadContext(WORKERS, blas_threads="auto"),
        "ThreadContext, blas_threads=None": ThreadContext(WORKERS),
    }
    outputs = {name: ctx.zeros(ELEMENTS) for name, ctx in contexts.items()}

    def make(out: np.ndarray):  # type: ignore[no-untyped-def]
        def kernel(worker_id: int, index: int, matrix: np.ndarray) -> None:
            product = matrix
            for _ in range(PRODUCTS):
                product = product @ matrix
            out[index] = np.trace(product)

        return kernel

    kernels = {name: make(out) for name, out in outputs.items()}
    results = interleave(
        {
            name: (lambda ctx=ctx, kernel=kernels[name]: timed(lambda: ctx.map(kernel, matrices)))
            for name, ctx in contexts.items()
        },
        rounds=7,
    )
    medians = report(
        f"{ELEMENTS} elements x {PRODUCTS} products of {SIZE}x{SIZE} float64",
        results,
        "ProcessContext, blas_threads='auto'",
        "s",
        1,
    )
    for first, second in (
        ("ProcessContext, blas_threads=None", "ProcessContext, blas_threads='auto'"),
        ("ThreadContext, blas_threads=None", "ThreadContext, blas_threads='auto'"),
    ):
        per_round = sorted(a / b for a, b in zip(results[first], results[second], strict=True))
        print(
            f"  speedup of the limit, {second.split(',')[0]}: "
            f"{medians[first] / medians[second]:.2f}x (median per round "
            f"{per_round[len(per_round) // 2]:.2f}x)"
        )
    reference = next(iter(outputs.values()))
    for out in outputs.values():
        np.testing.assert_allclose(out, reference, rtol=1e-10)


if __name__ == "__main__":
    main()
