"""Per-train mean image of one AGIPD module: serial loop, pasha, pashmap, and the read limit.

Workload: a mock AGIPD run in EuXFEL's HDF5 format (written with EXtra-data's mock data
makers, then filled with real pixel values: noise around 5000 ADU, uint16), one module's
``image.data`` as a KeyData, and the kernel ``out[index] = data.mean(axis=0)`` writing a
float32 mean image per train into a shared output array. The same run is also copied
with its data compressed (``pashmap_xfel.demo.write_compressed_copy``: gzip or lzf, same
chunks), as corrected data often are. Variants:

* ``serial``: a plain loop, ``for index, (tid, data) in enumerate(kd.trains())``;
* ``pasha``: pasha 0.1.2's ``ProcessContext`` (its own EXtra-data functor) on the same KeyData;
* ``pashmap``: ``pm.map`` on the KeyData under ``'processes'`` (pashmap-shm), which
  picks pashmap-xfel's ExtraDataTarget by itself;
* ``pashmap-read``: the same map with a kernel that only reads (what pashmap costs
  beyond the read itself, without the mean);
* ``h5py-read``, the read limit: the KeyData's bytes read with h5py into memory by
  ``--workers`` processes, no compute: each forked process opens the file itself and
  reads the chunks of its part of the trains into one reused buffer of about a train
  (``read_direct_chunk`` per chunk when the chunks are stored as they are, else one
  HDF5 read per buffer, which decompresses);
* ``cat``: the page-cache copy rate of the same file, ``cat > /dev/null``-style: each
  process ``preadv``s its half of the file into a reused 1 MiB buffer;
* ``h5py-serial``: the same read by one process;
* ``mean-only``: the kernel alone, without reading: one train is read first (untimed),
  then each forked process computes its mean image once per train of its part, into an
  array of its own (the train stays in the CPU's caches, as a train just read does);
* ``<variant>+gzip`` (or ``+lzf``): serial, pashmap, pashmap-read, h5py-read and
  h5py-serial on the compressed copy.

Each measurement runs in a fresh Python process: it opens the run, sets up its context
and output array, runs a warm-up map over the first train (imports, plugin discovery,
pasha's and pashmap's first-use costs), then times the map over all trains. The CPU
time of that map (the process and its workers) is reported too, as it does not depend on
what else the machine runs. The variants are interleaved: round 1 runs them in order,
round 2 rotates the order, and so on. Besides the medians of each variant, the median of
the per-round ratios is printed; as the variants of one round run close together under
the same load from other work, that is what the targets are judged on (the machine this
runs on is shared: expect run-to-run noise of tens of percent in single times).
Where the kernel shares CPU time between sessions rather than processes
(``sched_autogroup``), every measured process and each process it forks run in a session
of their own (``--no-sessions`` to turn that off): otherwise the workers of one map
share one session's slice and, under load from other sessions, cannot beat serial.
Every file of both runs is read once before the first round, so all variants read from
the page cache; the data are written to a temporary directory and removed at the end.

Run:  hatch run bench:python benchmarks/xfel_keydata_mean.py [--trains 100] [--frames 16]
      [--repeats 5] [--workers 2] [--compression gzip] [--no-limits] [--only VARIANT ...]
Targets: pashmap >= 1.8x faster than the serial loop, and <= 0.9x pasha's time (issue 4);
pashmap's mean image >= 0.8x the h5py read limit (h5py-read time / pashmap time) on the
uncompressed run, and >= 1.8x the serial loop on the compressed copy (issue 15).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SOURCE = "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"
KEY = "image.data"
FRAME_SHAPE = (2, 512, 128)  # raw AGIPD: (data/gain, slow scan, fast scan)
MAPPERS = ("serial", "pasha", "pashmap")
THREADS = "threads"  # pashmap 'threads', with --threads
LIMITS = ("pashmap-read", "h5py-read", "h5py-serial", "cat", "mean-only")
# Run on the compressed copy too, as "<variant>+<compression>".
ON_COMPRESSED = ("serial", "pashmap", "pashmap-read", "h5py-read", "h5py-serial")
CAT_BUFFER = 1 << 20
BLOCK_BYTES = 4 << 20  # h5py-read: one train of the benchmark's run


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
    base = variant.partition("+")[0]
    if base == "pashmap-read":
        base, kernel = "pashmap", "read"
    if base == "h5py-serial":
        return measure_limit(variant, "h5py-read", path, 1)
    if base in ("h5py-read", "cat", "mean-only"):
        return measure_limit(variant, base, path, workers)

    import extra_data

    run = extra_data.RunDirectory(path, parallelize=False)
    kd = run[SOURCE, KEY]
    ntrains = len(kd.train_ids)
    nbytes = int(kd.data_counts(labelled=False).sum()) * int(np.prod(FRAME_SHAPE)) * 2

    first_train = kd.select_trains(np.s_[:1])
    work = KERNELS[kernel]
    if base == "serial":
        out = np.empty((ntrains, *FRAME_SHAPE), np.float32)
        for _ in first_train.trains():  # warm-up, as for the others
            pass

        def run_map() -> None:
            for index, (_, data) in enumerate(kd.trains()):
                work(out, index, data)

    elif base == "pasha":
        import pasha as psh

        psh.set_default_context("processes", num_workers=workers)
        out = psh.alloc(shape=(ntrains, *FRAME_SHAPE), dtype=np.float32)
        psh.map(lambda *args: None, first_train)

        def pasha_kernel(worker_id: int, index: int, train_id: int, data: Any) -> None:
            work(out, index, data)

        def run_map() -> None:
            psh.map(pasha_kernel, kd)

    elif base in ("pashmap", THREADS):
        import pashmap as pm

        kind = "processes" if base == "pashmap" else "threads"
        pm.set_default_context(kind, num_workers=workers)
        out = pm.array((ntrains, *FRAME_SHAPE), np.float32)
        pm.map(lambda *args: None, first_train)

        def pashmap_kernel(worker_id: int, index: int, train_id: int, data: Any) -> None:
            work(out, index, data)

        def run_map() -> None:
            pm.map(pashmap_kernel, kd)

    else:
        raise ValueError(f"unknown variant {variant!r}")

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
        "kernel": kernel,
        "checksum": float(out.sum(dtype=np.float64)),
    }


# ------------------------------------------------------------------ the limits
def key_extent(path: str) -> tuple[str, str, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The file holding the key's data, its dataset, and each train's first entry and count.

    Read with h5py alone (and the file closed again), so that the processes forked to
    read open the file themselves. The benchmark's run has one file for the module.
    """
    import h5py

    found = []
    for file in sorted(Path(path).glob("*.h5")):
        with h5py.File(file, "r") as f:
            group = f"INDEX/{SOURCE}/{KEY.partition('.')[0]}"
            if group in f:
                found.append((str(file), f[f"{group}/first"][:], f[f"{group}/count"][:]))
    if len(found) != 1:
        raise SystemExit(f"expected one file with {SOURCE}, found {len(found)}")
    filename, first, count = found[0]
    dataset = f"INSTRUMENT/{SOURCE}/{KEY.replace('.', '/')}"
    return filename, dataset, first.astype(np.int64), count.astype(np.int64)


def h5py_read(filename: str, dataset_path: str, start: int, stop: int) -> None:
    """Read entries [start, stop) into one reused buffer, whole chunks at a time; no compute.

    The buffer holds the whole chunks that make up about ``BLOCK_BYTES`` (one train of
    the benchmark's run). Chunks stored as they are (no filter) are copied in one
    ``read_direct_chunk`` each; others are read through HDF5, which decompresses them,
    one ``read_direct`` call per block.
    """
    import h5py

    with h5py.File(filename, "r") as f:
        dataset = f[dataset_path]
        entries = dataset.chunks[0]
        chunk_bytes = int(np.prod(dataset.chunks)) * dataset.dtype.itemsize
        block = entries * max(1, BLOCK_BYTES // chunk_bytes)
        buffer = np.empty((block, *dataset.shape[1:]), dataset.dtype)
        stored_as_is = (
            dataset.id.get_create_plist().get_nfilters() == 0
            and tuple(dataset.chunks[1:]) == tuple(dataset.shape[1:])
            and dataset.dtype.isnative
        )
        rows = buffer.reshape(block // entries, -1).view(np.uint8)  # one row per chunk
        corner = (0,) * (dataset.ndim - 1)
        for first in range(start - start % entries, stop, block):
            end = min(first + block, stop, dataset.shape[0])
            if stored_as_is:
                for row, chunk in enumerate(range(first, end, entries)):
                    dataset.id.read_direct_chunk((chunk, *corner), out=rows[row])
            else:
                end = min(end + (-end % entries), dataset.shape[0])  # whole chunks
                dataset.read_direct(buffer, np.s_[first:end], np.s_[0 : end - first])


def cat_read(filename: str, start: int, stop: int) -> None:
    """Copy bytes [start, stop) of the file from the page cache into one reused buffer."""
    buffer = bytearray(CAT_BUFFER)
    view = memoryview(buffer)
    fd = os.open(filename, os.O_RDONLY)
    try:
        position = start
        while position < stop:
            got = os.preadv(fd, [view[: min(CAT_BUFFER, stop - position)]], position)
            if not got:
                break
            position += got
    finally:
        os.close(fd)


def means_only(train: np.ndarray[Any, Any], trains: int) -> None:
    """The benchmark's kernel alone: ``trains`` mean images of one train already in memory."""
    out = np.empty((trains, *train.shape[1:]), np.float32)
    for index in range(trains):
        mean_image(out, index, train)


def in_forked_processes(parts: list[Callable[[], None]]) -> None:
    """Run each part in a process of its own (forked), and wait for all of them."""
    pids = []
    for part in parts:
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                part()
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        pids.append(pid)
    failed = [pid for pid in pids if os.waitpid(pid, 0)[1] != 0]
    if failed:
        raise SystemExit(f"{len(failed)} reading process(es) failed")


def measure_limit(variant: str, kind: str, path: str, workers: int) -> dict[str, Any]:
    """h5py-read, cat or mean-only with ``workers`` processes, each taking its part."""
    import h5py  # before timing, as the other variants import theirs

    filename, dataset, first, count = key_extent(path)
    ntrains = len(count)
    bounds = [ntrains * i // workers for i in range(workers + 1)]
    parts: list[Callable[[], None]]
    if kind == "h5py-read":
        ends = [int(first[b - 1] + count[b - 1]) for b in bounds[1:]]
        starts = [int(first[a]) for a in bounds[:-1]]
        parts = [
            functools.partial(h5py_read, filename, dataset, a, b)
            for a, b in zip(starts, ends, strict=True)
            if b > a
        ]
    elif kind == "cat":
        size = os.path.getsize(filename)
        cuts = [size * i // workers for i in range(workers + 1)]
        parts = [functools.partial(cat_read, filename, a, b) for a, b in itertools.pairwise(cuts)]
    else:  # mean-only: one train in memory (read untimed), its mean once per train
        with h5py.File(filename, "r") as f:
            train = f[dataset][int(first[0]) : int(first[0] + count[0])]
        parts = [functools.partial(means_only, train, b - a) for a, b in itertools.pairwise(bounds)]
    nbytes = int(count.sum()) * int(np.prod(FRAME_SHAPE)) * 2
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    in_forked_processes(parts)
    elapsed = time.perf_counter() - start
    return {
        "variant": variant,
        "seconds": elapsed,
        "cpu": _cpu_seconds() - cpu_before,
        "bytes": nbytes,
        "kernel": None,
        "checksum": None,
    }


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the map's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _own_session() -> None:
    """Make this (forked) process a session of its own: see --sessions."""
    with contextlib.suppress(OSError):  # already a session or group leader
        os.setsid()


def autogroups() -> bool:
    """Whether the kernel shares CPU time between sessions (sched_autogroup) here."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def measure_in_fresh_process(
    variant: str, path: Path, workers: int, kernel: str, sessions: bool
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", variant, "--run", str(path)]
    command += ["--workers", str(workers), "--kernel", kernel]
    command += ["--sessions" if sessions else "--no-sessions"]
    done = subprocess.run(
        command, check=True, capture_output=True, text=True, start_new_session=sessions
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def per_round(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of time(a) / time(b) within each round."""
    return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))


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
    parser.add_argument(
        "--limits",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the read limits (pashmap-read, h5py-read, cat)",
    )
    parser.add_argument(
        "--compression",
        choices=("gzip", "lzf", "none"),
        default="gzip",
        help="also run on a copy of the run with its data compressed so ('none': do not)",
    )
    parser.add_argument("--level", type=int, default=1, help="gzip level of the copy")
    parser.add_argument(
        "--sessions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run each measured process, and every process it forks (workers, readers), in "
        "a session of its own; see the note printed when the kernel groups by session",
    )
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:  # a child: one measurement, printed as JSON
        if args.sessions:
            os.register_at_fork(after_in_child=_own_session)
        print(json.dumps(measure(args.measure, args.run, args.workers, args.kernel)))
        return

    variants: tuple[str, ...] = MAPPERS + ((THREADS,) if args.threads else ())
    if args.limits:
        variants += LIMITS
    compressed = args.compression != "none"
    if compressed:
        on_copy = ON_COMPRESSED if args.limits else ("serial", "pashmap")
        variants += tuple(f"{v}+{args.compression}" for v in on_copy)
    if args.only:
        variants = tuple(v for v in variants if v in args.only)

    with tempfile.TemporaryDirectory(prefix="pashmap-xfel-bench-") as tmp:
        path = Path(tmp) / "raw"
        path.mkdir()
        start = time.perf_counter()
        write_run(path, args.trains, args.frames)
        size = sum(f.stat().st_size for f in path.glob("*.h5"))
        print(
            f"mock AGIPD run: {args.trains} trains x {args.frames} frames x "
            f"{'x'.join(map(str, FRAME_SHAPE))} uint16, {size / 1e6:.0f} MB on disk "
            f"(written in {time.perf_counter() - start:.1f} s)"
        )
        copy = Path(tmp) / args.compression
        if compressed:
            from pashmap_xfel.demo import write_compressed_copy

            copy.mkdir()
            start = time.perf_counter()
            level = args.level if args.compression == "gzip" else None
            write_compressed_copy(str(path), str(copy), args.compression, level)
            copy_size = sum(f.stat().st_size for f in copy.glob("*.h5"))
            print(
                f"compressed copy: {args.compression}"
                f"{f' level {level}' if level is not None else ''}, same chunks "
                f"(1 frame each), {copy_size / 1e6:.0f} MB on disk "
                f"(written in {time.perf_counter() - start:.1f} s)"
            )
            read_all_files(copy)
        read_all_files(path)
        print(
            "page cache: every file read once before timing, so all variants read from "
            "memory (this measures CPU and HDF5 costs, not the disk)"
        )
        print(
            f"each run in a fresh process, order rotated every round; {args.repeats} runs "
            f"each, {args.workers} workers (or reading processes) for all but serial, "
            f"{len(os.sched_getaffinity(0))} usable CPUs, shared with other work"
        )
        if autogroups():
            print(
                "this kernel shares CPU time fairly between sessions (sched_autogroup), not "
                "between processes: "
                + (
                    "every measured process and each process it forks (workers, readers) "
                    "runs in a session of its own, so that 2 workers compete with the other "
                    "work on the machine as 2 processes, as they would without autogroups"
                    if args.sessions
                    else "(--no-sessions) the workers of a map share one session's slice "
                    "of the machine, so under load from other sessions they cannot beat serial"
                )
            )
        print(f"load average before: {_load()}")
        times: dict[str, list[float]] = {v: [] for v in variants}
        cpus: dict[str, list[float]] = {v: [] for v in variants}
        checksums: dict[str, set[float]] = {}
        nbytes = 0
        for round_ in range(args.repeats):
            shift = round_ % len(variants)
            order = variants[shift:] + variants[:shift]
            for variant in order:
                where = copy if "+" in variant else path
                result = measure_in_fresh_process(
                    variant, where, args.workers, args.kernel, args.sessions
                )
                times[variant].append(result["seconds"])
                cpus[variant].append(result["cpu"])
                if result["checksum"] is not None:
                    checksums.setdefault(result["kernel"], set()).add(result["checksum"])
                nbytes = result["bytes"]
            line = "  ".join(f"{v} {times[v][-1]:.3f}" for v in variants)
            print(f"round {round_ + 1} (s): {line}", flush=True)

        print(f"load average after: {_load()}")

    wrong = {kernel: sums for kernel, sums in checksums.items() if len(sums) != 1}
    if wrong:
        raise SystemExit(f"the variants computed different results: {wrong}")
    report(args, variants, times, cpus, nbytes)


def report(
    args: argparse.Namespace,
    variants: tuple[str, ...],
    times: dict[str, list[float]],
    cpus: dict[str, list[float]],
    nbytes: int,
) -> None:
    medians = {v: statistics.median(t) for v, t in times.items()}
    what = "out[index] = mean image" if args.kernel == "mean" else "read only"
    print(f"\nKeyData {SOURCE} {KEY}: {nbytes / 1e6:.0f} MB of pixels, {what}")
    print(
        f"{'variant':<19} {'median s':>9} {'min s':>8} {'MB/s':>7} {'vs serial':>10} {'CPU s':>7}"
    )
    for variant in variants:
        median = medians[variant]
        serial = "serial" + variant[len(variant.partition("+")[0]) :]
        versus = f"{medians[serial] / median:9.2f}x" if serial in medians else f"{'-':>10}"
        print(
            f"{variant:<19} {median:9.3f} {min(times[variant]):8.3f} "
            f"{nbytes / 1e6 / median:7.0f} {versus} {statistics.median(cpus[variant]):7.3f}"
        )
    print("\nRatios: medians of the per-round ratios (each round's variants ran back to back)")
    z = "+" + args.compression
    lines = [
        ("pashmap vs the serial loop", "serial", "pashmap", 1.8),
        ("pashmap's time vs pasha's (lower is better)", "pashmap", "pasha", -0.9),
        ("pashmap's mean image vs the h5py read limit", "h5py-read", "pashmap", 0.8),
        ("  pashmap reading only vs the h5py read limit", "h5py-read", "pashmap-read", None),
        ("  the h5py read limit vs the page-cache copy (cat)", "cat", "h5py-read", None),
        ("  the h5py read limit vs one process reading", "h5py-serial", "h5py-read", None),
        ("  the mean alone (in memory) vs the h5py read limit", "h5py-read", "mean-only", None),
        (f"{args.compression}: pashmap vs the serial loop", "serial" + z, "pashmap" + z, 1.8),
        (
            f"{args.compression}: pashmap's mean image vs the h5py read limit",
            "h5py-read" + z,
            "pashmap" + z,
            None,
        ),
        (
            f"{args.compression}:   pashmap reading only vs the h5py read limit",
            "h5py-read" + z,
            "pashmap-read" + z,
            None,
        ),
        (
            f"{args.compression}:   the h5py read limit vs one process reading",
            "h5py-serial" + z,
            "h5py-read" + z,
            None,
        ),
        (
            f"{args.compression}:   the read limit vs the uncompressed one",
            "h5py-read",
            "h5py-read" + z,
            None,
        ),
    ]
    for label, a, b, target in lines:
        if a not in times or b not in times:
            continue
        value = per_round(times, a, b)
        if target is None:
            verdict = ""
        elif target > 0:
            verdict = f" (target >= {target}x: {'met' if value >= target else 'NOT met'})"
        else:
            verdict = f" (target <= {-target}x: {'met' if value <= -target else 'NOT met'})"
        print(f"{label + ':':<62} {value:5.2f}x{verdict}")
    if {"h5py-read", "mean-only", "pashmap"} <= times.keys():
        floor = [r + m for r, m in zip(times["h5py-read"], times["mean-only"], strict=True)]
        value = statistics.median(f / p for f, p in zip(floor, times["pashmap"], strict=True))
        print(
            f"{'  pashmap vs read limit + mean alone (what the kernel allows):':<62} {value:5.2f}x"
        )
    print("(x: time of the second / time of the first named, per round; above 1 is faster)")


if __name__ == "__main__":
    main()
