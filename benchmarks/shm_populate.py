"""Issue 15 §1: ways of writing 1 GiB of fresh (and reused) shared output, side by side.

    hatch run bench:python benchmarks/shm_populate.py [--repeats 5] [--quick]

Every variant writes the rows of the zero-copy workload (1024 rows of 1 MiB, row ``i``
set to ``i``) with 2 workers forked per map, each variant in a fresh process, the order
rotated every round. The yardsticks are a serial loop writing the same rows into an
ordinary numpy (heap) array: fresh, and a second time into the same array (numpy asks
for transparent huge pages for large arrays; ``heap-4k`` is the same loop into private
memory in 4 KiB pages, for comparison). Printed: the
median of each variant, its min and max, and its ratio to the yardstick's median; and
the median CPU time (the process and its workers: what the load of a shared machine
does not change), with its ratio.

Fresh-memory variants (time: allocation + map):

* ``pashmap``: ``pm.array`` then the map, as shipped (anonymous shared memory);
* ``populate-rows``: the kernel asks for each row to be populated
  (``MADV_POPULATE_WRITE``) before writing it, in 1 MiB batches, in parallel in both
  workers;
* ``populate-2-threads``: the allocation populates the block with 2 threads (each half);
* ``populate-serial``: the allocation populates it with one call (as ``MAP_POPULATE``);
* ``memfd``: the block is a memfd instead of anonymous memory;
* ``memfd-fallocate``: a memfd whose pages are allocated by ``fallocate`` first.

Reused-memory variants (time: the second map writing the same output):

* ``pashmap-reused``: as shipped (workers map the rows already in memory before each
  share: :mod:`pashmap_shm.populate`);
* ``no-row-mapping-reused``: the same with that turned off (each page faulted in);
* ``cache-reused``: the output dropped and allocated again (the cache hands the block
  back), then written;
* ``warm-reused``, ``warm-no-row-mapping-reused``: the same as the first two inside a
  ``with ProcessContext()`` block (warm workers, a memfd block).
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

MADV_POPULATE_WRITE = 23
FRESH = [
    "heap",
    "heap-4k",
    "pashmap",
    "populate-rows",
    "populate-2-threads",
    "populate-serial",
    "memfd",
    "memfd-fallocate",
]
REUSED = [
    "heap-reused",
    "pashmap-reused",
    "no-row-mapping-reused",
    "cache-reused",
    "warm-reused",
    "warm-no-row-mapping-reused",
]


# Warm workers' process ids: their CPU time is read from /proc (they are not reaped).
_warm_pids: list[int] = []


def now() -> tuple[float, float]:
    """The wall clock and the CPU time of this process, its reaped children and its warm
    workers."""
    cpu = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        cpu += usage.ru_utime + usage.ru_stime
    for pid in _warm_pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return time.perf_counter(), cpu


def since(start: tuple[float, float]) -> tuple[float, float]:
    """Wall and CPU seconds since ``start`` (from :func:`now`)."""
    wall, cpu = now()
    return wall - start[0], cpu - start[1]


def measure(variant: str, rows: int, row_bytes: int) -> tuple[float, float]:
    """Run ``variant`` once in this process; return the wall and CPU seconds of its
    timed part (CPU: this process and its workers)."""
    from pashmap_shm import ProcessContext, populate
    from pashmap_shm.shared_memory import allocate_shared

    shape = (rows, row_bytes // 8)
    if variant.startswith("heap"):
        start = now()
        if variant == "heap-4k":  # private memory numpy did not advise for huge pages
            heap = np.frombuffer(
                mmap.mmap(-1, rows * row_bytes, flags=mmap.MAP_PRIVATE), dtype=np.float64
            ).reshape(shape)
        else:
            heap = np.empty(shape)
        for index in range(rows):
            heap[index] = index
        if variant == "heap-reused":
            start = now()
            for index in range(rows):
                heap[index] = index
        return since(start)
    ctx = ProcessContext(2)
    if variant.startswith("warm-"):
        ctx.__enter__()  # a with block's warm workers (left at the end of the process)
    if "no-row-mapping" in variant:
        populate._enabled = False  # (the switch the fallback uses)
    out: Any = None
    raw: Any = None

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index] = value

    def populating_kernel(worker_id: int, index: int, value: int) -> None:
        raw.madvise(MADV_POPULATE_WRITE, index * row_bytes, row_bytes)
        out[index] = value

    start = now()
    if variant in ("memfd", "memfd-fallocate"):
        out = allocate_shared(shape, np.dtype(np.float64), "C", memfd=True)
        if variant == "memfd-fallocate":
            from pashmap_shm.blocks import owner_of

            block = owner_of(out)
            assert block is not None
            os.posix_fallocate(block.fd, 0, block.size)
    else:
        out = ctx.empty(shape)
    raw = mmap_of(out)
    if variant.startswith("populate-") and variant != "populate-rows":
        parts = 2 if variant == "populate-2-threads" else 1
        step = rows // parts * row_bytes
        threads = [
            threading.Thread(target=raw.madvise, args=(MADV_POPULATE_WRITE, k * step, step))
            for k in range(parts)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if variant == "populate-rows":
        ctx.map(populating_kernel, range(rows))
    else:
        ctx.map(kernel, range(rows))
    if variant.endswith("-reused"):
        if variant == "cache-reused":
            address = out.__array_interface__["data"][0]
            del out
            start = now()
            out = ctx.empty(shape)
            assert out.__array_interface__["data"][0] == address, "the cache missed"
        else:
            _warm_pids[:] = ctx.worker_pids()
            start = now()
        ctx.map(kernel, range(rows))
    seconds = since(start)
    raw = None
    assert out[-1, -1] == rows - 1
    assert out[0, 0] == 0
    return seconds


def mmap_of(array: np.ndarray[Any, Any]) -> mmap.mmap:
    """The ``mmap`` object behind an array allocated by pashmap (for madvise)."""
    from pashmap_shm.blocks import owner_of

    block = owner_of(array)
    assert block is not None
    return block.mapping


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="128 MiB instead of 1 GiB")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows, row_bytes = (128 if args.quick else 1024), 2**20
    if args.one:
        wall, cpu = measure(args.one, rows, row_bytes)
        print(json.dumps({"seconds": wall, "cpu": cpu}))
        return 0
    variants = FRESH + REUSED
    times: dict[str, list[float]] = {v: [] for v in variants}
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    load = os.getloadavg()
    for round_ in range(args.repeats):
        order = variants[round_ % len(variants) :] + variants[: round_ % len(variants)]
        for variant in order:
            command = [sys.executable, __file__, "--one", variant]
            if args.quick:
                command.append("--quick")
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if done.returncode:
                raise SystemExit(f"{variant} failed: {done.stderr[-800:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            times[variant].append(result["seconds"])
            cpus[variant].append(result["cpu"])
    print(
        f"{rows} rows of {row_bytes // 2**20} MiB, 2 workers, {args.repeats} runs each, "
        f"interleaved; load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    print(
        "| variant | median ms | min ms | max ms | vs its heap yardstick "
        "| median CPU ms | CPU vs yardstick |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for group, yardstick in ((FRESH, "heap"), (REUSED, "heap-reused")):
        base = statistics.median(times[yardstick])
        base_cpu = statistics.median(cpus[yardstick])
        for variant in group:
            median = statistics.median(times[variant])
            cpu = statistics.median(cpus[variant])
            print(
                f"| {variant} | {median * 1e3:.0f} | {min(times[variant]) * 1e3:.0f} "
                f"| {max(times[variant]) * 1e3:.0f} | {median / base:.2f} "
                f"| {cpu * 1e3:.0f} | {cpu / max(base_cpu, 1e-6):.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
