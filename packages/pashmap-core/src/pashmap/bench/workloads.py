"""The standard benchmark workloads, shared by ``pashmap bench`` and ``benchmarks/``.

Each workload maps a kernel over a target on the *default context* and returns the
seconds of the part that is measured. Run one in a fresh process with:

```bash
python -m pashmap.bench.workloads WORKLOAD --context processes --workers 2 [--quick]
```

which prints one JSON line: ``{"workload", "context", "workers", "seconds", "peak_rss_mb",
...}``. The compute functions (:func:`busy`) are plain module-level functions so that
other libraries' pools can run the very same work for comparisons.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import pashmap as pm

__all__ = [
    "WORKLOADS",
    "WORKLOADS_GROUP",
    "Sizes",
    "Workload",
    "all_workloads",
    "busy",
    "sizes",
    "skewed_iterations",
]


@dataclass(frozen=True)
class Sizes:
    """The problem sizes of every workload, for a full or a quick run."""

    latency_elements: int = 16
    latency_maps: int = 20
    overhead_elements: int = 1_000_000
    compute_elements: int = 64
    compute_iterations: int = 500_000
    output_bytes: int = 2**30
    element_bytes: int = 2**20
    scaling: tuple[int, ...] = (10_000, 100_000, 1_000_000, 10_000_000)


def sizes(quick: bool) -> Sizes:
    """The sizes for a full run (as in ``benchmarks/RESULTS.md``) or a quick one (seconds)."""
    if not quick:
        return Sizes()
    return Sizes(
        latency_maps=5,
        overhead_elements=200_000,
        compute_iterations=60_000,
        output_bytes=2**27,
        scaling=(10_000, 100_000, 1_000_000),
    )


def busy(iterations: int) -> int:
    """Pure-Python work that holds the GIL (benchmarks/code_figures.py times an iteration)."""
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def skewed_iterations(index: int, elements: int, mean_iterations: int) -> int:
    """Iterations for element ``index`` of a workload whose cost ramps up with the index.

    The mean over all elements is ``mean_iterations``; the last element costs about twice
    the mean and the first almost nothing.
    """
    return 2 * mean_iterations * (index + 1) // (elements + 1)


# ----------------------------------------------------------------- workloads
def _latency(s: Sizes) -> dict[str, Any]:
    data = list(range(s.latency_elements))

    def trivial(worker_id: int, index: int, value: int) -> None:
        pass

    times = []
    for _ in range(s.latency_maps):
        start = time.perf_counter()
        pm.map(trivial, data)
        times.append(time.perf_counter() - start)
    return {"seconds": float(np.median(times)), "elements": s.latency_elements}


def _overhead(s: Sizes) -> dict[str, Any]:
    inp = np.random.default_rng(0).random(s.overhead_elements)
    out = pm.array(len(inp))

    def triple(worker_id: int, index: int, value: float) -> None:
        out[index] = 3 * value

    start = time.perf_counter()
    pm.map(triple, inp)
    seconds = time.perf_counter() - start
    _check(np.allclose(out, 3 * inp), "overhead")
    return {"seconds": seconds, "elements": len(inp)}


def _uniform(s: Sizes) -> dict[str, Any]:
    out = pm.zeros(s.compute_elements, dtype=np.int64)

    def kernel(worker_id: int, index: int, iterations: int) -> None:
        out[index] = busy(iterations)

    start = time.perf_counter()
    pm.map(kernel, [s.compute_iterations] * s.compute_elements)
    seconds = time.perf_counter() - start
    _check(bool((out == busy(s.compute_iterations)).all()), "uniform")
    return {"seconds": seconds, "elements": s.compute_elements}


def _skewed(s: Sizes) -> dict[str, Any]:
    n = s.compute_elements
    iterations = [skewed_iterations(i, n, s.compute_iterations) for i in range(n)]
    out = pm.zeros(n, dtype=np.int64)

    def kernel(worker_id: int, index: int, count: int) -> None:
        out[index] = busy(count)

    start = time.perf_counter()
    pm.map(kernel, iterations)
    seconds = time.perf_counter() - start
    _check(int(out[-1]) == busy(iterations[-1]), "skewed")
    return {"seconds": seconds, "elements": n}


def _zero_copy(s: Sizes) -> dict[str, Any]:
    per_element = s.element_bytes // 8
    n = s.output_bytes // s.element_bytes
    start = time.perf_counter()
    out = pm.array((n, per_element))

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index] = value

    pm.map(kernel, range(n))
    seconds = time.perf_counter() - start
    _check(bool(out[-1, -1] == n - 1 and out[0, 0] == 0), "zero_copy")
    return {"seconds": seconds, "elements": n, "output_mb": out.nbytes / 2**20}


def _scaling(s: Sizes) -> dict[str, Any]:
    per_element = {}
    total = 0.0
    for n in s.scaling:
        seconds = _overhead(Sizes(overhead_elements=n))["seconds"]
        per_element[str(n)] = seconds / n * 1e9
        total += seconds
    return {"seconds": total, "ns_per_element": per_element}


@dataclass(frozen=True)
class Workload:
    """A named workload: what it measures, and the function that runs it."""

    name: str
    description: str
    run: Callable[[Sizes], dict[str, Any]]


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("latency", "per-map latency, trivial kernel over 16 elements", _latency),
        Workload("overhead", "per-element overhead, out[i] = 3*v over float64", _overhead),
        Workload("uniform", "uniform pure-Python compute (GIL-bound)", _uniform),
        Workload("skewed", "compute whose cost ramps with the index", _skewed),
        Workload("zero_copy", "large output written in place, 1 MiB per element", _zero_copy),
        Workload("scaling", "per-element cost for N = 1e4 ... 1e7", _scaling),
    )
}


WORKLOADS_GROUP = "pashmap.workloads"


def all_workloads() -> dict[str, Workload]:
    """The built-in workloads and those plugins register in ``pashmap.workloads``.

    A plugin's entry point names a :class:`Workload` object (e.g. pashmap-xfel's
    ``xfel``, which maps over a mock EuXFEL run); one that fails to load is skipped.
    """
    from pashmap.registry import registrations

    found = dict(WORKLOADS)
    for name, registration in registrations(WORKLOADS_GROUP).items():
        try:
            workload = registration.load()
        except Exception:  # a broken plugin must not break the built-in workloads
            continue
        if isinstance(workload, Workload):
            found.setdefault(name, workload)
    return found


def _check(ok: bool, name: str) -> None:
    if not ok:
        raise RuntimeError(f"workload {name!r} computed a wrong result")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    """Run one workload on one context and print its result as a JSON line."""
    parser = argparse.ArgumentParser(prog="python -m pashmap.bench.workloads", description=__doc__)
    workloads = all_workloads()
    parser.add_argument("workload", choices=sorted(workloads))
    parser.add_argument("--context", default="local", help="context name (default: local)")
    parser.add_argument("--workers", type=int, default=None, help="workers (default: all CPUs)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a quick look")
    args = parser.parse_args(argv)
    kwargs = {} if args.context in ("local", "serial") else {"num_workers": args.workers}
    from pashmap.registry import target_factories

    target_factories()  # plugin discovery is once per process: not part of any workload
    with pm.use_context(args.context, **kwargs) as context:
        result = workloads[args.workload].run(sizes(args.quick))
        workers = context.num_workers
    result.update(
        workload=args.workload,
        context=args.context,
        workers=workers,
        peak_rss_mb=_peak_rss_mb(),
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    # Run the imported module's main, so that plugin workloads (which import
    # pashmap.bench.workloads) are instances of the same Workload class.
    from pashmap.bench import workloads

    sys.exit(workloads.main())
