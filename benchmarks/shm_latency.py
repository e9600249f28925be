"""Per-map latency, per-element overhead and scaling of ProcessContext, against pasha.

    hatch run bench:python benchmarks/shm_latency.py

Two workers. Reported as medians of interleaved rounds, with ratios:
- latency: a trivial kernel over 16 elements (issue target: <= 0.3x pasha);
  two bare fork()+waitpid() for reference;
- overhead: out[i] = 3 * v over 1e6 float64 (target: <= 0.6x pasha);
- scaling: the same kernel from 1e4 to 1e7 elements (target: time linear in N).
"""

from __future__ import annotations

import os

import numpy as np
import pasha
from shm_common import interleave, median_of, report, timed

import pashmap as pm
from pashmap_shm import ProcessContext

WORKERS = 2


def bare_forks() -> None:
    pids = []
    for _ in range(WORKERS):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)


def latency() -> None:
    ours = ProcessContext(WORKERS)
    theirs = pasha.ProcessContext(num_workers=WORKERS)
    data = np.arange(16.0)

    def trivial(worker_id: int, index: int, value: float) -> None:
        pass

    for _ in range(5):  # warm up both (imports, caches)
        ours.map(trivial, data)
        theirs.map(trivial, data)
    results = interleave(
        {
            "pashmap ProcessContext": lambda: median_of(lambda: ours.map(trivial, data), 20),
            "pasha ProcessContext": lambda: median_of(lambda: theirs.map(trivial, data), 20),
            "2x bare fork+waitpid": lambda: median_of(bare_forks, 20),
        },
        rounds=9,
    )
    report("per-map latency, trivial kernel, 16 elements", results, "pasha ProcessContext")


def overhead() -> None:
    n = 10**6
    inp = np.random.rand(n)
    ours = ProcessContext(WORKERS)
    theirs = pasha.ProcessContext(num_workers=WORKERS)
    out_ours = ours.empty(n)
    out_theirs = theirs.alloc(shape=n, dtype=np.float64)
    out_local = np.empty(n)

    def kernel_ours(worker_id: int, index: int, value: float) -> None:
        out_ours[index] = 3 * value

    def kernel_theirs(worker_id: int, index: int, value: float) -> None:
        out_theirs[index] = 3 * value

    def kernel_local(worker_id: int, index: int, value: float) -> None:
        out_local[index] = 3 * value

    local = pm.LocalContext()
    results = interleave(
        {
            "pashmap ProcessContext": lambda: timed(lambda: ours.map(kernel_ours, inp)),
            "pasha ProcessContext": lambda: timed(lambda: theirs.map(kernel_theirs, inp)),
            "pashmap LocalContext (1 core)": lambda: timed(lambda: local.map(kernel_local, inp)),
        },
        rounds=5,
    )
    assert np.allclose(out_ours, 3 * inp)
    assert np.allclose(out_theirs, 3 * inp)
    medians = report(
        "per-element overhead, out[i] = 3*v, 1e6 float64", results, "pasha ProcessContext"
    )
    for name, value in medians.items():
        print(f"  {name:<34} {value / n * 1e9:.0f} ns per element")
    # The kernel's own cost, run serially, spread over the workers: what no parallel map
    # can beat. What a context adds on top of it is its overhead.
    ideal = medians["pashmap LocalContext (1 core)"] / WORKERS
    ours = medians["pashmap ProcessContext"] - ideal
    theirs = medians["pasha ProcessContext"] - ideal
    print(
        f"  overhead above the ideal (serial / {WORKERS} = {ideal / n * 1e9:.0f} ns): pashmap "
        f"{ours / n * 1e9:.0f} ns, pasha {theirs / n * 1e9:.0f} ns per element, "
        f"ratio {ours / theirs:.3f}"
    )


def scaling() -> None:
    ctx = ProcessContext(WORKERS)
    sizes = [10**4, 10**5, 10**6, 10**7]
    inputs = {n: np.random.rand(n) for n in sizes}
    outputs = {n: ctx.empty(n) for n in sizes}

    def run(n: int) -> float:
        out = outputs[n]

        def kernel(worker_id: int, index: int, value: float) -> None:
            out[index] = 3 * value

        return timed(lambda: ctx.map(kernel, inputs[n]))

    results = interleave({f"N={n:.0e}": (lambda n=n: run(n)) for n in sizes}, rounds=3)
    medians = report("scaling, out[i] = 3*v, ProcessContext", results, unit="s", scale=1)
    base = sizes[-2]
    for n in sizes:
        per = medians[f"N={n:.0e}"] / n
        print(
            f"  N={n:.0e}: {per * 1e9:.0f} ns per element "
            f"({per / (medians[f'N={base:.0e}'] / base):.2f}x the per-element time at N=1e6)"
        )


if __name__ == "__main__":
    latency()
    overhead()
    scaling()
