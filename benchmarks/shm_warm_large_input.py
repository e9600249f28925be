"""A map over a large ordinary numpy array on warm workers: pickled at every map, or forked.

    hatch run bench:python benchmarks/shm_warm_large_input.py [MiB]

Three ways to run the same map (a kernel reading 16 elements of an ordinary, non-shared
float64 array of MiB mebibytes, default 256), 2 workers, medians of interleaved rounds:
- ``with ProcessContext()`` block: such a map is forked (since issue 13, item 14);
- ``persistent=True``: every map is pickled to the warm workers, the array with it (what
  a with block did with such maps before);
- fork per map, outside any block (the default).
The growth of this process's peak RSS over the run is printed last.
"""

from __future__ import annotations

import resource
import sys

import numpy as np
from shm_common import interleave, median_of, report

from pashmap_shm import ProcessContext

WORKERS = 2


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    data = np.ones(mib * 2**20 // 8)

    def kernel(worker_id: int, index: int, value: int) -> float:
        return float(data[index * 1000])

    with_block = ProcessContext(WORKERS)
    with_block.__enter__()
    persistent = ProcessContext(WORKERS, persistent=True)
    fork = ProcessContext(WORKERS)
    runs = {
        "with block (forked)": lambda: with_block.map(kernel, range(16)),
        "persistent (pickled)": lambda: persistent.map(kernel, range(16)),
        "fork per map": lambda: fork.map(kernel, range(16)),
    }
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for run in runs.values():
        assert run() == [1.0] * 16
    results = interleave({name: lambda run=run: median_of(run, 3) for name, run in runs.items()}, 5)
    report(
        f"one map over a {mib} MiB ordinary array, {WORKERS} workers",
        results,
        "with block (forked)",
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"  peak RSS of this process grew by {(peak - peak_before) / 1024:.0f} MiB")
    with_block.close()
    persistent.close()


if __name__ == "__main__":
    main()
