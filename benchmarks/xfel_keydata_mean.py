"""Per-train mean image of one AGIPD module: serial loop, pasha 0.1.2 and pashmap 'processes'.

Workload: a mock AGIPD run in EuXFEL's HDF5 format (written with EXtra-data's mock data
makers, then filled with real pixel values: noise around 5000 ADU, uint16), one module's
``image.data`` as a KeyData, and the kernel ``out[index] = data.mean(axis=0)`` writing a
float32 mean image per train into a shared output array. Variants:

* ``serial``: a plain loop, ``for index, (tid, data) in enumerate(kd.trains())``;
* ``pasha``: pasha 0.1.2's ``ProcessContext`` (its own EXtra-data functor) on the same KeyData;
* ``pashmap``: ``pm.map`` on the KeyData under ``'processes'`` (pashmap-shm), which
  picks pashmap-xfel's ExtraDataTarget by itself.

Each measurement runs in a fresh Python process: it opens the run, sets up its context
and output array, runs a warm-up map over the first train (imports, plugin discovery,
pasha's and pashmap's first-use costs), then times the map over all trains. The CPU
time of that map (the process and its workers) is reported too, as it does not depend on
what else the machine runs. The variants are interleaved: round 1 runs serial, pasha,
pashmap, round 2 rotates the order, and so on. Besides the medians of each variant, the
median of the per-round ratios is printed; as the variants of one round run back to
back under the same load from other work, that is what the targets are judged on.
Every file of the run is read once before the first round, so all variants read from
the page cache; the data are written to a temporary directory and removed at the end.

Run:  hatch run bench:python benchmarks/xfel_keydata_mean.py [--trains 100] [--frames 16]
      [--repeats 5] [--workers 2]
Targets (issue 4): pashmap >= 1.8x faster than the serial loop, and <= 0.9x pasha's time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SOURCE = "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"
KEY = "image.data"
FRAME_SHAPE = (2, 512, 128)  # raw AGIPD: (data/gain, slow scan, fast scan)
VARIANTS = ("serial", "pasha", "pashmap")
THREADS = "threads"  # pashmap 'threads', with --threads


def write_run(path: Path, trains: int, frames: int) -> None:
    """Write the mock run: one AGIPD module file with real pixels, and an XGM data file."""
    import h5py
    from extra_data.tests.mockdata import write_file
    from extra_data.tests.mockdata.detectors import AGIPDModule
    from extra_data.tests.mockdata.xgm import XGM

    module_file = path / "RAW-R0001-AGIPD00-S00000.h5"
    write_file(
        str(module_file),
        [AGIPDModule(SOURCE.partition(":")[0], frames_per_train=frames)],
        ntrains=trains,
        chunksize=32,
        format_version="1.0",
    )
    rng = np.random.default_rng(1)
    with h5py.File(module_file, "r+") as f:
        data = f[f"INSTRUMENT/{SOURCE}/image/data"]
        for train in range(trains):
            block = rng.normal(5000, 300, size=(frames, *FRAME_SHAPE))
            data[train * frames : (train + 1) * frames] = block.astype(np.uint16)
    write_file(
        str(path / "RAW-R0001-DA01-S00000.h5"),
        [XGM("SPB_XTD9_XGM/DOOCS/MAIN")],
        ntrains=trains,
        chunksize=32,
        format_version="1.0",
    )


def read_all_files(path: Path) -> int:
    """Read every file once so that every variant reads from the page cache."""
    total = 0
    for file in sorted(path.glob("*.h5")):
        with open(file, "rb") as f:
            while chunk := f.read(1 << 24):
                total += len(chunk)
    return total


# ------------------------------------------------------------- one measurement
def mean_image(out: np.ndarray[Any, Any], index: int, data: np.ndarray[Any, Any]) -> None:
    """The benchmark's kernel: the train's mean image."""
    out[index] = data.mean(axis=0)


def last_pixel(out: np.ndarray[Any, Any], index: int, data: np.ndarray[Any, Any]) -> None:
    """A kernel that only reads (--kernel read): what is left is the cost of reading."""
    out[index, 0, 0, 0] = data[-1, 0, 0, 0]


KERNELS = {"mean": mean_image, "read": last_pixel}


def measure(variant: str, path: str, workers: int, kernel: str = "mean") -> dict[str, Any]:
    """Run one variant in this process; return its time and a checksum of the output."""
    import extra_data

    run = extra_data.RunDirectory(path, parallelize=False)
    kd = run[SOURCE, KEY]
    ntrains = len(kd.train_ids)
    nbytes = int(kd.data_counts(labelled=False).sum()) * int(np.prod(FRAME_SHAPE)) * 2

    first_train = kd.select_trains(np.s_[:1])
    work = KERNELS[kernel]
    if variant == "serial":
        out = np.empty((ntrains, *FRAME_SHAPE), np.float32)
        for _ in first_train.trains():  # warm-up, as for the others
            pass

        def run_map() -> None:
            for index, (_, data) in enumerate(kd.trains()):
                work(out, index, data)

    elif variant == "pasha":
        import pasha as psh

        psh.set_default_context("processes", num_workers=workers)
        out = psh.alloc(shape=(ntrains, *FRAME_SHAPE), dtype=np.float32)
        psh.map(lambda *args: None, first_train)

        def pasha_kernel(worker_id: int, index: int, train_id: int, data: Any) -> None:
            work(out, index, data)

        def run_map() -> None:
            psh.map(pasha_kernel, kd)

    elif variant in ("pashmap", THREADS):
        import pashmap as pm

        kind = "processes" if variant == "pashmap" else "threads"
        pm.set_default_context(kind, num_workers=workers)
        out = pm.array((ntrains, *FRAME_SHAPE), np.float32)
        pm.map(lambda *args: None, first_train)

        def pashmap_kernel(worker_id: int, index: int, train_id: int, data: Any) -> None:
            work(out, index, data)

        def run_map() -> None:
            pm.map(pashmap_kernel, kd)

    else:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")

    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    run_map()
    elapsed = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    return {
        "variant": variant,
        "seconds": elapsed,
        "cpu": cpu,
        "bytes": nbytes,
        "checksum": float(out.sum(dtype=np.float64)),
    }


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the map's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure_in_fresh_process(variant: str, path: Path, workers: int, kernel: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", variant, "--run", str(path)]
    command += ["--workers", str(workers), "--kernel", kernel]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trains", type=int, default=100, help="trains in the mock run")
    parser.add_argument("--frames", type=int, default=16, help="frames (pulses) per train")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each variant")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--threads", action="store_true", help="also run pashmap's 'threads' context"
    )
    parser.add_argument(
        "--kernel",
        choices=sorted(KERNELS),
        default="mean",
        help="mean: the mean image (the benchmark); read: only read each train",
    )
    parser.add_argument("--measure", choices=(*VARIANTS, THREADS), help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:  # a child: one measurement, printed as JSON
        print(json.dumps(measure(args.measure, args.run, args.workers, args.kernel)))
        return

    with tempfile.TemporaryDirectory(prefix="pashmap-xfel-bench-") as tmp:
        path = Path(tmp)
        start = time.perf_counter()
        write_run(path, args.trains, args.frames)
        size = sum(f.stat().st_size for f in path.glob("*.h5"))
        print(
            f"mock AGIPD run: {args.trains} trains x {args.frames} frames x "
            f"{'x'.join(map(str, FRAME_SHAPE))} uint16, {size / 1e6:.0f} MB on disk "
            f"(written in {time.perf_counter() - start:.1f} s)"
        )
        read_all_files(path)
        print(
            "page cache: every file read once before timing, so all variants read from "
            "memory (this measures CPU and HDF5 costs, not the disk)"
        )
        print(
            f"each run in a fresh process, order rotated every round; {args.repeats} runs "
            f"each, {args.workers} workers for pasha and pashmap, {os.cpu_count()} CPUs"
        )
        print(f"load average before: {_load()}")
        variants = (*VARIANTS, THREADS) if args.threads else VARIANTS
        times: dict[str, list[float]] = {v: [] for v in variants}
        cpus: dict[str, list[float]] = {v: [] for v in variants}
        checksums: dict[str, set[float]] = {v: set() for v in variants}
        nbytes = 0
        for round_ in range(args.repeats):
            shift = round_ % len(variants)
            order = variants[shift:] + variants[:shift]
            for variant in order:
                result = measure_in_fresh_process(variant, path, args.workers, args.kernel)
                times[variant].append(result["seconds"])
                cpus[variant].append(result["cpu"])
                checksums[variant].add(result["checksum"])
                nbytes = result["bytes"]
            line = "  ".join(f"{v} {times[v][-1]:.3f} s" for v in variants)
            print(f"round {round_ + 1}: {line}", flush=True)

        print(f"load average after: {_load()}")

    all_sums = set().union(*checksums.values())
    if len(all_sums) != 1:
        raise SystemExit(f"the variants computed different results: {checksums}")
    medians = {v: statistics.median(t) for v, t in times.items()}
    what = "out[index] = mean image" if args.kernel == "mean" else "read only"
    print(f"\nKeyData {SOURCE} {KEY}: {nbytes / 1e6:.0f} MB of pixels, {what}")
    print(
        f"{'variant':<10} {'median s':>9} {'min s':>8} {'MB/s':>7} {'vs serial':>10} {'CPU s':>7}"
    )
    for variant in variants:
        median = medians[variant]
        speedup = medians["serial"] / median
        print(
            f"{variant:<10} {median:9.3f} {min(times[variant]):8.3f} "
            f"{nbytes / 1e6 / median:7.0f} {speedup:9.2f}x {statistics.median(cpus[variant]):7.3f}"
        )
    speedup = medians["serial"] / medians["pashmap"]
    ratio = medians["pashmap"] / medians["pasha"]
    # Within a round the variants run back to back, under the same load from whatever
    # else the machine runs; the median of the per-round ratios is the robust figure.
    round_speedup = statistics.median(
        s / p for s, p in zip(times["serial"], times["pashmap"], strict=True)
    )
    round_ratio = statistics.median(
        p / q for p, q in zip(times["pashmap"], times["pasha"], strict=True)
    )
    print(
        f"\npashmap vs the serial loop (target >= 1.8x): {speedup:.2f}x from the medians, "
        f"{round_speedup:.2f}x per round (median): "
        f"{'met' if round_speedup >= 1.8 else 'NOT met'} (judged per round)"
    )
    print(
        f"pashmap's time vs pasha's (target <= 0.9x): {ratio:.2f}x from the medians, "
        f"{round_ratio:.2f}x per round (median): "
        f"{'met' if round_ratio <= 0.9 else 'NOT met'} (judged per round)"
    )


if __name__ == "__main__":
    main()
