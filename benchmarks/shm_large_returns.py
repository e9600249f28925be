"""Large return values (issue 15 §3): time and peak memory of both sides, before and after.

    hatch run bench:python benchmarks/shm_large_returns.py [--before main] [--rounds 3]

A kernel returns one 500 MB float64 array (``--mb``). Measured for workers forked per map,
warm workers (``persistent=True``, fork) and warm fork-server workers, each run in a fresh
interpreter:

- the map's time, and the part of it that is not the kernel's own (the transport);
- the caller's peak RSS above its RSS before the map (its ``VmHWM``; the returned array
  itself is one value's worth of it);
- the worker's peak RSS above its RSS when the kernel started (forked workers: the
  children's ``ru_maxrss``; warm workers: their ``VmHWM``, read by the caller).

"before" is the code of pashmap-shm at git revision ``--before``, extracted to a
temporary directory and put first on the interpreter's path (the fork server inherits
it); "after" is the working tree. Both run in turn, round after round (A B A B ...), and
small maps are measured the same way, to show they did not get slower: per-map latency
(16 elements; kernels returning ``None`` as in the peer suite, and returning their index),
per-element overhead over 1e6 elements (writing into a shared array as in the peer
suite, and returning a float), many arrays just above and below the out-of-band
threshold (64 KiB and 32 KiB), and at and above the memory-file threshold (256 KiB and
1 MiB). Figures are medians of the rounds; ratios are the medians of each round's
after / before.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
WORKERS = 2
CASES = {
    "fork": {},
    "persistent": {"persistent": True},
    "forkserver": {"start_method": "forkserver", "persistent": True},
}
MB = 1_000_000


def status(field: str, pid: str = "self") -> int:
    """A ``/proc/<pid>/status`` field in bytes (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


# ----------------------------------------------------------------- in the child
def large(case: str, nbytes: int) -> dict[str, Any]:
    from pashmap_shm import ProcessContext

    count = nbytes // 8

    def kernel(worker_id: int, index: int, value: int) -> tuple[Any, ...]:
        rss = status("VmRSS")
        start = time.perf_counter()
        out = np.full(count, 1.5)
        return out, time.perf_counter() - start, rss, os.getpid()

    ctx = ProcessContext(WORKERS, **CASES[case])  # type: ignore[arg-type]
    if case != "fork":
        ctx.map(lambda w, i, v: None, range(WORKERS))  # the warm workers start
    before = status("VmRSS")
    start = time.perf_counter()
    [(array, kernel_seconds, worker_start, pid)] = ctx.map(kernel, range(1))
    seconds = time.perf_counter() - start
    caller_peak = status("VmHWM") - before
    if case == "fork":
        worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    else:
        worker_peak = status("VmHWM", str(pid))
    assert array.shape == (count,)
    assert array[-1] == 1.5
    ctx.close()
    return {
        "seconds": seconds,
        "transport_seconds": seconds - kernel_seconds,
        "caller_peak": caller_peak / nbytes,
        "worker_peak": (worker_peak - worker_start) / nbytes,
    }


def small(case: str) -> dict[str, Any]:
    from pashmap_shm import ProcessContext

    ctx = ProcessContext(WORKERS, **CASES[case])  # type: ignore[arg-type]
    ctx.map(lambda w, i, v: None, range(WORKERS))

    def latency(kernel: Any) -> float:
        times = []
        for _ in range(100):
            start = time.perf_counter()
            ctx.map(kernel, range(16))
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    figures = {
        "latency, None": latency(lambda w, i, v: None),
        "latency, index": latency(lambda w, i, v: i),
    }
    inputs = np.random.default_rng(0).random(1_000_000)
    out = ctx.empty(inputs.shape)

    def triple_into(worker_id: int, index: int, value: float) -> None:
        out[index] = 3 * value

    start = time.perf_counter()
    ctx.map(triple_into, inputs)
    figures["1e6 elements, into shared array"] = time.perf_counter() - start
    start = time.perf_counter()
    values = ctx.map(lambda w, i, v: 3 * v, inputs)
    figures["1e6 elements, returning floats"] = time.perf_counter() - start
    assert values[-1] == 3 * inputs[-1]
    for kib, count in ((32, 2000), (64, 2000), (256, 800), (1024, 200)):
        row = np.ones(kib * 128)
        start = time.perf_counter()
        arrays = ctx.map(lambda w, i, v, row=row: row * i, range(count))
        figures[f"{count} arrays of {kib} KiB"] = time.perf_counter() - start
        assert arrays[-1][0] == count - 1
        del arrays
    ctx.close()
    return figures


# ---------------------------------------------------------------- in the parent
def run(code: Path | None, *args: str) -> dict[str, Any]:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(HERE), "--child", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def extract(revision: str, into: Path) -> Path:
    """pashmap-shm's source at ``revision``, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "packages/pashmap-shm/src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "packages" / "pashmap-shm" / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="git revision of 'before'")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mb", type=int, default=500, help="size of the returned array")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        what, case, *rest = options.child
        figures = large(case, int(rest[0])) if what == "large" else small(case)
        print(json.dumps(figures))
        return
    nbytes = options.mb * MB
    with tempfile.TemporaryDirectory() as temporary:
        codes: dict[str, Path | None] = {
            "before": extract(options.before, Path(temporary)),
            "after": None,
        }
        print(f"before: pashmap-shm at {options.before}; after: the working tree")
        print(f"{WORKERS} workers, {options.rounds} rounds, one {options.mb} MB array returned")
        results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for _ in range(options.rounds):
            for case in CASES:
                for name, code in codes.items():
                    results.setdefault(("large", case, name), []).append(
                        run(code, "large", case, str(nbytes))
                    )
            for case in ("fork", "forkserver"):
                for name, code in codes.items():
                    results.setdefault(("small", case, name), []).append(run(code, "small", case))
    print(f"\n## one {options.mb} MB array returned (medians; peaks in units of the value)")
    print(
        "| workers | code | map s | transport s | caller peak | worker peak "
        "| map after/before | transport after/before |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for case in CASES:
        runs = {name: results[("large", case, name)] for name in codes}
        for name in codes:
            m = {key: statistics.median(run[key] for run in runs[name]) for key in runs[name][0]}
            ratios = (
                f"{paired(runs, 'seconds'):.2f} | {paired(runs, 'transport_seconds'):.2f}"
                if name == "after"
                else " | "
            )
            print(
                f"| {case} | {name} | {m['seconds']:.3f} | {m['transport_seconds']:.3f} "
                f"| {m['caller_peak']:.2f}x | {m['worker_peak']:.2f}x | {ratios} |"
            )
    print("\n## small maps (medians, ms)")
    print("| workers | map | before | after | after/before |")
    print("| --- | --- | --- | --- | --- |")
    for case in ("fork", "forkserver"):
        runs = {name: results[("small", case, name)] for name in codes}
        for key in runs["before"][0]:
            b, a = (statistics.median(run[key] for run in runs[name]) * 1e3 for name in codes)
            print(f"| {case} | {key} | {b:.3f} | {a:.3f} | {paired(runs, key):.2f} |")


def paired(runs: dict[str, list[dict[str, Any]]], key: str) -> float:
    """The median of the rounds' after/before ratios (each round ran both, in turn)."""
    pairs = zip(runs["before"], runs["after"], strict=True)
    return statistics.median(after[key] / before[key] for before, after in pairs)


if __name__ == "__main__":
    main()
