"""One benchmark run: one implementation, one workload, printed as a JSON line.

    python benchmarks/peers.py IMPLEMENTATION WORKLOAD [--quick] [--workers N]

Implementations: the pashmap contexts (``pashmap-local``, ``pashmap-threads``,
``pashmap-processes``, which run the workloads of ``pashmap.bench.workloads``), a plain serial
loop, pasha 0.1.2's process context, ``multiprocessing.Pool``, ``concurrent.futures``'
process pool, joblib (loky) and mpire. ``serial-heap`` is the yardstick of the large
outputs (issue 15): a serial loop writing the same rows into one ordinary numpy array.

Workload ``zero_copy_reused`` (here, not in ``pashmap.bench``) is ``zero_copy`` written a
second time into the same output: the time of writing output memory already in use,
which only the implementations that write in place run. Workload ``large_return`` maps
kernels that each return one large array (4 of 128 MiB; 16 MiB with ``--quick``): the
time, the caller's peak RSS and the largest worker's (issue 15 §3).

Each peer does the same work the way its users write it: pools return results that the
caller collects (they cannot write into the caller's memory); pasha, like pashmap,
writes into its own shared arrays. Pools are created inside the timed region, as
pashmap's process context forks per map.

``suite.py`` calls this once per run, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from pashmap.bench import workloads as pmw

Sizes = pmw.Sizes


# ------------------------------------------------------- picklable work items
def triple(value: float) -> float:
    return 3 * value


def trivial(value: int) -> None:
    return None


def block(index: int, element_bytes: int = 2**20) -> np.ndarray:
    return np.full(element_bytes // 8, float(index))


def large_block(index: int) -> np.ndarray:
    """The large_return work item: one large array per element (see LARGE_RETURN_BYTES)."""
    return np.full(LARGE_RETURN_BYTES[0] // 8, float(index))


# The size of each value of large_return: [full, quick] (set in main from --quick).
LARGE_RETURN_BYTES = [2**27, 2**24]
LARGE_RETURN_ELEMENTS = 4


# ------------------------------------------------------------- pool adapters
PoolMap = Callable[[Callable[[Any], Any], Iterable[Any]], list[Any]]


def pool_map(workers: int) -> PoolMap:
    import multiprocessing

    def run(function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(function, items)

    return run


def futures_map(workers: int) -> PoolMap:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    def run(function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        items = list(items)
        chunksize = max(1, len(items) // (4 * workers))
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as ex:
            return list(ex.map(function, items, chunksize=chunksize))

    return run


def joblib_map(workers: int) -> PoolMap:
    import joblib

    def run(function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        return joblib.Parallel(n_jobs=workers, backend="loky", batch_size="auto")(
            joblib.delayed(function)(item) for item in items
        )

    return run


def mpire_map(workers: int) -> PoolMap:
    import mpire

    def run(function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        with mpire.WorkerPool(n_jobs=workers, start_method="fork") as pool:
            return pool.map(function, list(items), concatenate_numpy_output=False)

    return run


def serial_map(workers: int) -> PoolMap:
    def run(function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        return [function(item) for item in items]

    return run


POOLS: dict[str, Callable[[int], PoolMap]] = {
    "serial": serial_map,
    "mp-pool": pool_map,
    "futures": futures_map,
    "joblib": joblib_map,
    "mpire": mpire_map,
}


def run_pool(impl: str, workload: str, s: Sizes, workers: int) -> dict[str, Any]:
    pmap = POOLS[impl](workers)
    if workload == "latency":
        times = []
        for _ in range(s.latency_maps):
            start = time.perf_counter()
            pmap(trivial, range(s.latency_elements))
            times.append(time.perf_counter() - start)
        return {"seconds": float(np.median(times))}
    if workload in ("overhead", "scaling"):
        ns = s.scaling if workload == "scaling" else (s.overhead_elements,)
        per_element, total = {}, 0.0
        for n in ns:
            inp = np.random.default_rng(0).random(n)
            start = time.perf_counter()
            out = np.array(pmap(triple, inp))
            seconds = time.perf_counter() - start
            assert np.allclose(out, 3 * inp)
            per_element[str(n)] = seconds / n * 1e9
            total += seconds
        return {"seconds": total, "ns_per_element": per_element}
    if workload in ("uniform", "skewed"):
        n = s.compute_elements
        iterations = (
            [s.compute_iterations] * n
            if workload == "uniform"
            else [pmw.skewed_iterations(i, n, s.compute_iterations) for i in range(n)]
        )
        start = time.perf_counter()
        pmap(pmw.busy, iterations)
        return {"seconds": time.perf_counter() - start}
    if workload == "zero_copy":
        n = s.output_bytes // s.element_bytes
        start = time.perf_counter()
        out = np.stack(pmap(block, range(n)))
        seconds = time.perf_counter() - start
        assert out[-1, -1] == n - 1
        return {"seconds": seconds, "output_mb": out.nbytes / 2**20}
    if workload == "large_return":
        start = time.perf_counter()
        values = pmap(large_block, range(LARGE_RETURN_ELEMENTS))
        seconds = time.perf_counter() - start
        _check_large(values)
        return {"seconds": seconds, "value_mb": LARGE_RETURN_BYTES[0] / 2**20}
    raise SystemExit(f"{impl} does not implement {workload!r}")


def _check_large(values: list[Any]) -> None:
    assert len(values) == LARGE_RETURN_ELEMENTS
    for index, value in enumerate(values):
        assert value.nbytes == LARGE_RETURN_BYTES[0]
        assert value[-1] == index


def run_pashmap_large_return(context: str, workers: int) -> dict[str, Any]:
    """large_return on a pashmap context: kernels returning one large array each."""
    import pashmap as pm

    def kernel(worker_id: int, index: int, value: int) -> np.ndarray:
        return large_block(value)

    kwargs = {} if context == "local" else {"num_workers": workers}
    with pm.use_context(context, **kwargs):
        start = time.perf_counter()
        values = pm.map(kernel, range(LARGE_RETURN_ELEMENTS))
        seconds = time.perf_counter() - start
    _check_large(values)
    return {"seconds": seconds, "value_mb": LARGE_RETURN_BYTES[0] / 2**20}


def run_pasha(workload: str, s: Sizes, workers: int) -> dict[str, Any]:
    import pasha

    ctx = pasha.ProcessContext(num_workers=workers)
    if workload == "latency":
        times = []
        data = list(range(s.latency_elements))
        for _ in range(s.latency_maps):
            start = time.perf_counter()
            ctx.map(lambda w, i, v: None, data)
            times.append(time.perf_counter() - start)
        return {"seconds": float(np.median(times))}
    if workload in ("overhead", "scaling"):
        ns = s.scaling if workload == "scaling" else (s.overhead_elements,)
        per_element, total = {}, 0.0
        for n in ns:
            inp = np.random.default_rng(0).random(n)
            out = ctx.alloc(shape=n, dtype=np.float64)

            def kernel(worker_id: int, index: int, value: float, out: Any = out) -> None:
                out[index] = 3 * value

            start = time.perf_counter()
            ctx.map(kernel, inp)
            seconds = time.perf_counter() - start
            assert np.allclose(out, 3 * inp)
            per_element[str(n)] = seconds / n * 1e9
            total += seconds
        return {"seconds": total, "ns_per_element": per_element}
    if workload in ("uniform", "skewed"):
        n = s.compute_elements
        iterations = (
            [s.compute_iterations] * n
            if workload == "uniform"
            else [pmw.skewed_iterations(i, n, s.compute_iterations) for i in range(n)]
        )
        res = ctx.alloc(shape=n, dtype=np.int64)

        def busy_kernel(worker_id: int, index: int, count: int) -> None:
            res[index] = pmw.busy(count)

        start = time.perf_counter()
        ctx.map(busy_kernel, iterations)
        return {"seconds": time.perf_counter() - start}
    if workload in ("zero_copy", "zero_copy_reused"):
        n = s.output_bytes // s.element_bytes
        start = time.perf_counter()
        big = ctx.alloc(shape=(n, s.element_bytes // 8), dtype=np.float64)

        def fill(worker_id: int, index: int, value: int) -> None:
            big[index] = value

        ctx.map(fill, list(range(n)))
        if workload == "zero_copy_reused":
            start = time.perf_counter()
            ctx.map(fill, list(range(n)))
        seconds = time.perf_counter() - start
        assert big[-1, -1] == n - 1
        return {"seconds": seconds, "output_mb": big.nbytes / 2**20}
    raise SystemExit(f"pasha does not implement {workload!r}")


def run_heap(workload: str, s: Sizes) -> dict[str, Any]:
    """The serial loop writing each row into one ordinary (heap) array: the yardstick."""
    n = s.output_bytes // s.element_bytes
    start = time.perf_counter()
    out = np.empty((n, s.element_bytes // 8))
    for index in range(n):
        out[index] = index
    if workload == "zero_copy_reused":
        start = time.perf_counter()
        for index in range(n):
            out[index] = index
    elif workload != "zero_copy":
        raise SystemExit(f"serial-heap does not implement {workload!r}")
    seconds = time.perf_counter() - start
    assert out[-1, -1] == n - 1
    return {"seconds": seconds, "output_mb": out.nbytes / 2**20}


def run_pashmap_reused(context: str, s: Sizes, workers: int) -> dict[str, Any]:
    """zero_copy_reused on a pashmap context: the second map writing the same output."""
    import pashmap as pm

    n = s.output_bytes // s.element_bytes
    kwargs = {} if context == "local" else {"num_workers": workers}
    with pm.use_context(context, **kwargs):
        out = pm.array((n, s.element_bytes // 8))

        def kernel(worker_id: int, index: int, value: int) -> None:
            out[index] = value + 1

        pm.map(kernel, range(n))
        start = time.perf_counter()
        pm.map(kernel, range(n))
        seconds = time.perf_counter() - start
    assert out[-1, -1] == n
    assert out[0, 0] == 1
    return {"seconds": seconds, "output_mb": out.nbytes / 2**20}


# Workloads of this file only (not in pashmap.bench.workloads).
PEER_WORKLOADS = ["zero_copy_reused", "large_return"]
IMPLEMENTATIONS = [
    "pashmap-local",
    "pashmap-threads",
    "pashmap-processes",
    "pasha",
    *POOLS,
    "serial-heap",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("implementation", choices=IMPLEMENTATIONS)
    parser.add_argument("workload", choices=sorted([*pmw.WORKLOADS, *PEER_WORKLOADS]))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    s = pmw.sizes(args.quick)
    if args.quick:
        LARGE_RETURN_BYTES[0] = LARGE_RETURN_BYTES[1]
    if args.implementation.startswith("pashmap-") and args.workload == "large_return":
        result = run_pashmap_large_return(
            args.implementation.removeprefix("pashmap-"), args.workers
        )
    elif args.implementation.startswith("pashmap-") and args.workload in PEER_WORKLOADS:
        context = args.implementation.removeprefix("pashmap-")
        result = run_pashmap_reused(context, s, args.workers)
    elif args.implementation.startswith("pashmap-"):
        context = args.implementation.removeprefix("pashmap-")
        argv = [args.workload, "--context", context, "--workers", str(args.workers)]
        return pmw.main(argv + (["--quick"] if args.quick else []))
    elif args.implementation == "serial-heap":
        result = run_heap(args.workload, s)
    elif args.implementation == "pasha":
        result = run_pasha(args.workload, s, args.workers)
    else:
        result = run_pool(args.implementation, args.workload, s, args.workers)
    result.update(
        workload=args.workload,
        context=args.implementation,
        workers=1 if args.implementation.startswith("serial") else args.workers,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        peak_worker_rss_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        pid=os.getpid(),
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
