"""LocalContext per-element overhead against a plain Python loop.

Workload: ``out[i] = 3 * v`` over 1e6 float64, the cheapest kernel there is, so that
what is measured is the cost of calling it. Both variants run in this one process,
interleaved (A B A B ...), and the median of each is compared.

Run:  hatch run bench:python benchmarks/core_local_overhead.py [--n 1000000] [--repeats 15]
Target (issue 2): LocalContext <= 1.15x the plain loop. With pasha installed (the bench
environment has it), pasha's SerialContext runs alongside as the peer.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

import numpy as np

import pashmap as pm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="number of elements")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each variant")
    args = parser.parse_args()

    n = args.n
    inp = np.random.default_rng(0).random(n)
    out = np.empty(n)

    def kernel(worker_id: int, index: int, value: float) -> None:
        out[index] = 3 * value

    def plain_loop() -> None:
        for i, v in zip(range(n), inp):  # noqa: B905 - the reference loop, as users write it
            kernel(0, i, v)

    def local_context() -> None:
        pm.map(kernel, inp)

    variants: dict[str, Callable[[], None]] = {
        "plain loop": plain_loop,
        "pashmap LocalContext": local_context,
    }
    try:
        import pasha
    except ImportError:
        print("pasha is not installed: comparing with the plain loop only")
    else:
        pasha_serial = pasha.SerialContext()

        def pasha_serial_context() -> None:
            pasha_serial.map(kernel, inp)

        variants[f"pasha {pasha.__version__} Serial"] = pasha_serial_context
    times: dict[str, list[float]] = {name: [] for name in variants}
    for run in range(args.repeats + 1):
        for name, variant in variants.items():
            gc.collect()
            start = time.perf_counter()
            variant()
            elapsed = time.perf_counter() - start
            if run:  # the first round warms up
                times[name].append(elapsed)
    np.testing.assert_allclose(out, 3 * inp)

    base = statistics.median(times["plain loop"])
    print(f"per-element overhead, out[i] = 3*v over {n:.0e} float64, {args.repeats} runs each")
    print(f"{'variant':<24} {'median s':>9} {'min s':>9} {'ns/elem':>8} {'ratio':>6}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(
            f"{name:<24} {median:9.4f} {min(samples):9.4f} {median / n * 1e9:8.1f} "
            f"{median / base:6.2f}"
        )


if __name__ == "__main__":
    main()
