"""Pure-Python compute on 2 workers: uniform speedup, skewed makespan, threads vs processes.

    hatch run bench:python benchmarks/shm_compute.py

- uniform: every element costs the same, ~2.5 s serial in total; speedup of
  ProcessContext over LocalContext (issue target: >= 1.9x), next to the speedup of two
  bare forked children splitting the work in fixed halves (the most this machine gives
  two processes at the time);
- skewed: the cost of element i grows linearly with i; makespan against the ideal
  (serial time / 2) for ProcessContext and pasha (target: <= 1.1x; pasha: 1.71x);
- GIL-releasing numpy kernel: ThreadContext against ProcessContext (and LocalContext).
Medians of interleaved rounds.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pasha
from shm_common import effective_cores, interleave, report, timed

import pashmap as pm
from pashmap_shm import ProcessContext, ThreadContext

WORKERS = 2


def spin(iterations: int) -> int:
    total = 0
    for k in range(iterations):
        total += k * k
    return total


def calibrate(seconds: float) -> int:
    """Iterations of ``spin`` that take about ``seconds``."""
    start = time.perf_counter()
    spin(200_000)
    per_iteration = (time.perf_counter() - start) / 200_000
    return int(seconds / per_iteration)


def uniform() -> None:
    elements = 200
    per_element = calibrate(2.5) // elements
    local = pm.LocalContext()
    procs = ProcessContext(WORKERS)
    out = procs.empty(elements, dtype=np.int64)

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index] = spin(per_element) % 1000

    def bare_forks() -> None:
        # The ceiling: WORKERS plain forked children, each running a fixed half of the
        # elements, no pashmap at all (what the machine gives two processes right now).
        pids = []
        for worker in range(WORKERS):
            pid = os.fork()
            if pid == 0:
                for index in range(worker, elements, WORKERS):
                    kernel(worker, index, index)
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)

    results = interleave(
        {
            "LocalContext": lambda: timed(lambda: local.map(kernel, range(elements))),
            "pashmap ProcessContext": lambda: timed(lambda: procs.map(kernel, range(elements))),
            f"{WORKERS} bare forks, fixed halves": lambda: timed(bare_forks),
        },
        rounds=5,
    )
    medians = report("uniform pure-Python compute (~2.5 s serial)", results, "LocalContext", "s", 1)
    for name in ("pashmap ProcessContext", f"{WORKERS} bare forks, fixed halves"):
        per_round = [s / p for s, p in zip(results["LocalContext"], results[name], strict=False)]
        print(
            f"  speedup of {name} over LocalContext: "
            f"{medians['LocalContext'] / medians[name]:.2f}x (per round: "
            f"{[round(r, 2) for r in per_round]}, median {statistics.median(per_round):.2f}x)"
        )


def skewed() -> None:
    elements = 400
    total = calibrate(2.5)
    # cost of element i proportional to i + 1
    unit = total // (elements * (elements + 1) // 2)
    local = pm.LocalContext()
    procs = ProcessContext(WORKERS)
    theirs = pasha.ProcessContext(num_workers=WORKERS)
    out = procs.empty(elements, dtype=np.int64)
    out_theirs = theirs.alloc(shape=elements, dtype=np.int64)

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index] = spin(unit * (index + 1)) % 1000

    def kernel_theirs(worker_id: int, index: int, value: int) -> None:
        out_theirs[index] = spin(unit * (index + 1)) % 1000

    results = interleave(
        {
            "LocalContext (serial)": lambda: timed(lambda: local.map(kernel, range(elements))),
            "pashmap ProcessContext": lambda: timed(lambda: procs.map(kernel, range(elements))),
            "pasha ProcessContext": lambda: timed(
                lambda: theirs.map(kernel_theirs, np.arange(elements))
            ),
        },
        rounds=5,
    )
    medians = report("skewed compute (cost ~ index)", results, "LocalContext (serial)", "s", 1)
    ideal = medians["LocalContext (serial)"] / WORKERS
    for name in ("pashmap ProcessContext", "pasha ProcessContext"):
        per_round = [
            p / (s / WORKERS)
            for p, s in zip(results[name], results["LocalContext (serial)"], strict=False)
        ]
        print(
            f"  {name}: makespan {medians[name] / ideal:.3f}x ideal (serial / {WORKERS}); "
            f"per round {[round(r, 3) for r in per_round]}, median "
            f"{statistics.median(per_round):.3f}x"
        )


def gil_releasing() -> None:
    rows, width, passes = 128, 50_000, 20
    local = pm.LocalContext()
    threads = ThreadContext(WORKERS)
    procs = ProcessContext(WORKERS)
    src = np.random.rand(rows, width)
    out_t = threads.empty((rows, width))
    out_p = procs.empty((rows, width))
    out_l = np.empty((rows, width))

    def make(out: np.ndarray):  # type: ignore[no-untyped-def]
        # Compute-bound and cache-resident (a row is 400 kB): numpy releases the GIL.
        def kernel(worker_id: int, index: int, row: np.ndarray) -> None:
            buffer = np.sin(row)
            for _ in range(passes):
                np.sin(buffer, out=buffer)
            out[index] = buffer

        return kernel

    kernel_l, kernel_t, kernel_p = make(out_l), make(out_t), make(out_p)
    results = interleave(
        {
            "LocalContext": lambda: timed(lambda: local.map(kernel_l, src)),
            "pashmap ThreadContext": lambda: timed(lambda: threads.map(kernel_t, src)),
            "pashmap ProcessContext": lambda: timed(lambda: procs.map(kernel_p, src)),
        },
        rounds=5,
    )
    report(
        f"GIL-releasing numpy kernel ({passes + 1} x sin over {rows} rows of {width})",
        results,
        "pashmap ProcessContext",
        "s",
        1,
    )
    assert np.allclose(out_t, out_p)
    assert np.allclose(out_l, out_t)


if __name__ == "__main__":
    print(f"effective cores right now: {effective_cores():.2f} of {WORKERS}")
    uniform()
    skewed()
    gil_releasing()
