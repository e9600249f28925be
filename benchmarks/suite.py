"""The peer benchmark suite: every implementation on every workload, side by side.

    hatch run bench:suite              # full sizes; writes benchmarks/RESULTS.md and results.json
    hatch run bench:python benchmarks/suite.py --quick --impl pashmap-processes pasha

Runs are interleaved (implementation A, B, C, then A, B, C again ...), each in a fresh
process (``peers.py``), so that drift of this shared machine hits every implementation
alike. Reported: the median (and min-max) of each, and ratios of medians to the chosen
baselines (time / baseline time: below 1 is faster).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
IMPLEMENTATIONS = [
    "serial",
    "pashmap-local",
    "pashmap-threads",
    "pashmap-processes",
    "pasha",
    "mp-pool",
    "futures",
    "joblib",
    "mpire",
    "serial-heap",
]
WORKLOADS = [
    "latency",
    "overhead",
    "uniform",
    "skewed",
    "zero_copy",
    "zero_copy_reused",
    "large_return",
    "scaling",
]
# Peers that only make sense for some workloads (threads cannot beat the GIL; they are
# shown where they apply).
SKIP = {("pashmap-threads", "uniform"), ("pashmap-threads", "skewed")}
# Scaling up to 1e7 elements: pools that pickle every element back take minutes there, so
# the scaling row compares pashmap with the serial loop and pasha (which share memory).
SKIP |= {(peer, "scaling") for peer in ("mp-pool", "futures", "joblib", "mpire")}
# The serial heap write is the yardstick of the large outputs only; writing the same
# output again means nothing to implementations that return their results.
SKIP |= {("serial-heap", w) for w in WORKLOADS if not w.startswith("zero_copy")}
SKIP |= {(peer, "zero_copy_reused") for peer in ("serial", "mp-pool", "futures", "joblib", "mpire")}
# pasha's map returns nothing; a heap write returns nothing either.
SKIP |= {("pasha", "large_return"), ("serial-heap", "large_return")}
# Descriptions of the workloads peers.py adds to pashmap.bench's.
PEER_DESCRIPTIONS = {
    "zero_copy_reused": "the large output written a second time in place (memory in use)",
    "large_return": "kernels returning one large array each (4 x 128 MiB; 16 MiB quick)",
}


# RESULTS.md from the line NOTES on is written by hand (analyses of the tables above);
# --write regenerates everything before it and keeps the rest.
NOTES = "<!-- suite.py --write keeps everything from this line on -->"


def run_once(impl: str, workload: str, workers: int, quick: bool) -> dict[str, Any]:
    command = [sys.executable, str(HERE / "peers.py"), impl, workload, "--workers", str(workers)]
    if quick:
        command.append("--quick")
    # Each measured process in a session of its own: with sched_autogroup the kernel
    # shares CPU time between sessions, so a run competes with other sessions' load as
    # one session, whatever it is (as in xfel_keydata_mean.py --sessions).
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, start_new_session=True
    )
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in (
        "pashmap-core",
        "pashmap-shm",
        "pashmap-xfel",
        "numpy",
        "pasha",
        "joblib",
        "mpire",
        "extra-data",
    ):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {cpus} usable CPUs, {memory:.0f} GiB RAM, {platform.platform()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", nargs="+", default=IMPLEMENTATIONS, choices=IMPLEMENTATIONS)
    parser.add_argument("--workloads", nargs="+", default=WORKLOADS, choices=WORKLOADS)
    parser.add_argument("--baselines", nargs="+", default=["serial", "pasha", "serial-heap"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write", action="store_true", help="write RESULTS.md and results.json")
    parser.add_argument(
        "--xfel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run xfel_keydata_mean.py, with its read limits and gzip rows "
        "(needs pashmap-xfel and pasha)",
    )
    args = parser.parse_args()

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for workload in args.workloads:
        impls = [i for i in args.impl if (i, workload) not in SKIP]
        repeats = 1 if workload == "scaling" else args.repeats
        for rep in range(repeats):
            for impl in impls:
                result = run_once(impl, workload, args.workers, args.quick)
                results.setdefault(workload, {}).setdefault(impl, []).append(result)
                print(
                    f"[{workload} {rep + 1}/{repeats}] {impl}: "
                    f"{result.get('seconds', result.get('error'))}",
                    file=sys.stderr,
                )

    tables = render(results, args.baselines)
    if args.xfel:
        tables += xfel_section(args.workers, args.quick, args.repeats)
    tables += code_figures_section(args.workers, args.quick)
    print(tables)
    if args.write:
        command = (
            "hatch run bench:suite" if not args.quick else "python benchmarks/suite.py --quick"
        )
        header = (
            "# Benchmark results\n\n"
            f"Generated {datetime.date.today()} by `{command}` "
            f"({args.workers} workers, medians of {args.repeats} interleaved runs, "
            "each in a fresh process).\n\n"
            f"Machine: {machine()}. Load average before and after the run: {load_before} / "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (a shared machine: other work ran "
            "alongside, which is why runs are interleaved and ratios are taken of medians).\n\n"
            "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".\n\n"
            "Ratios are time / baseline time: below 1.00 is faster than the baseline. "
            "Peak RSS is the calling process's own (workers not included).\n\n"
        )
        results_md = HERE / "RESULTS.md"
        previous = results_md.read_text() if results_md.exists() else ""
        notes = previous[previous.index(NOTES) :] if NOTES in previous else ""
        results_md.write_text(header + tables + ("\n" + notes if notes else ""))
        (HERE / "results.json").write_text(
            json.dumps(
                {
                    "date": str(datetime.date.today()),
                    "machine": machine(),
                    "versions": versions(),
                    "workers": args.workers,
                    "quick": args.quick,
                    "results": results,
                },
                indent=1,
            )
        )
        print(f"wrote {HERE / 'RESULTS.md'} and {HERE / 'results.json'}", file=sys.stderr)
    return 0


def xfel_section(workers: int, quick: bool, repeats: int) -> str:
    """Run the XFEL KeyData benchmark (its own interleaving) and return its report."""
    command = [
        sys.executable,
        str(HERE / "xfel_keydata_mean.py"),
        "--workers",
        str(workers),
        "--repeats",
        str(repeats),
        "--threads",
    ]
    if quick:
        command += ["--trains", "20", "--frames", "4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    report = done.stdout.strip() if done.returncode == 0 else f"failed: {done.stderr[-500:]}"
    return (
        "\n## xfel: per-train mean image of an AGIPD module (KeyData) over a mock run, "
        "and the read limit\n\n"
        "Rows `pashmap-read` (the map with a kernel that only reads), `h5py-read` (the "
        "KeyData's chunks read by the same number of processes with h5py, no compute: the "
        "limit), `cat` (the page-cache copy of the file), `mean-only` (the kernel on trains "
        "already in memory) and the `+gzip` rows (a gzip copy of the run, same chunks) "
        "measure pashmap against the limit of the machine (issue 15).\n\n"
        f"`python benchmarks/xfel_keydata_mean.py --workers {workers} --repeats {repeats} "
        "--threads`\n\n```\n" + report + "\n```\n"
    )


def code_figures_section(workers: int, quick: bool) -> str:
    """Measure what the code's docstrings say in words (code_figures.py): its report."""
    command = [sys.executable, str(HERE / "code_figures.py"), "--workers", str(workers)]
    if quick:
        command.append("--quick")
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return f"\n## Figures the code leans on\n\nfailed: {done.stderr[-500:]}\n"
    return done.stdout


def render(results: dict[str, dict[str, list[dict[str, Any]]]], baselines: list[str]) -> str:
    from pashmap.bench.workloads import WORKLOADS as DESCRIPTIONS

    out = []
    for workload, by_impl in results.items():
        description = (
            DESCRIPTIONS[workload].description
            if workload in DESCRIPTIONS
            else PEER_DESCRIPTIONS[workload]
        )
        out.append(f"## {workload}: {description}\n")
        medians = {}
        for impl, runs in by_impl.items():
            good = [r["seconds"] for r in runs if "seconds" in r]
            if good:
                medians[impl] = statistics.median(good)
        present = [b for b in baselines if b in medians]
        workers_rss = any("value_mb" in r for runs in by_impl.values() for r in runs)
        head = "| implementation | median ms | min ms | max ms | peak RSS MB |"
        if workers_rss:
            head += " largest worker's peak RSS MB |"
        head += "".join(f" vs {b} |" for b in present)
        if workload == "scaling":
            head += " ns/element by N |"
        out += [head, "|" + " --- |" * (head.count("|") - 1)]
        for impl, runs in by_impl.items():
            if impl not in medians:
                out.append(f"| {impl} | failed: {runs[0].get('error', '?')} |")
                continue
            good = [r for r in runs if "seconds" in r]
            seconds = [r["seconds"] for r in good]
            rss = max(r.get("peak_rss_mb", 0.0) for r in good)
            row = (
                f"| {impl} | {_ms(medians[impl])} | {_ms(min(seconds))} | {_ms(max(seconds))} "
                f"| {rss:.0f} |"
            )
            if workers_rss:
                row += f" {max(r.get('peak_worker_rss_mb', 0.0) for r in good):.0f} |"
            row += "".join(f" {medians[impl] / medians[b]:.2f} |" for b in present)
            if workload == "scaling":
                per = good[-1].get("ns_per_element", {})
                row += " " + ", ".join(f"{int(n):.0e}: {v:.0f}" for n, v in per.items()) + " |"
            out.append(row)
        out.append("")
    return "\n".join(out)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.4g}"


if __name__ == "__main__":
    sys.exit(main())
