"""``pashmap bench``: time the standard workloads on this machine, each in a fresh process.

The ``pashmap`` command hands everything after ``bench`` to :func:`main`, importing this
module only then. Each run is ``python -m pashmap.bench.workloads WORKLOAD --context
NAME`` in a process of its own, so that no run inherits another's warm caches, pools or
memory; the table shows the median of the runs and the speedup over the first context.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence

from pashmap.bench.workloads import all_workloads
from pashmap.machine import describe_cpus
from pashmap.registry import CONTEXTS_GROUP, context_names, registrations

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The arguments of ``pashmap bench``."""
    listed = "\n".join(
        f"  {name:<10} {workload.description}" for name, workload in all_workloads().items()
    )
    bench = argparse.ArgumentParser(
        prog="pashmap bench",
        description="Time the standard workloads on this machine, each in a fresh process.",
        epilog=f"workloads:\n{listed}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("--workloads", nargs="+", metavar="NAME", help="workloads (default: all)")
    bench.add_argument(
        "--contexts", nargs="+", metavar="NAME", help="contexts (default: all installed)"
    )
    bench.add_argument("--workers", type=int, default=None, help="workers (default: all CPUs)")
    bench.add_argument("--repeats", type=int, default=None, help="runs of each (default 3)")
    bench.add_argument("--quick", action="store_true", help="small sizes, one run each")
    bench.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    return bench


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pashmap bench`` with the arguments after ``bench``; return its exit status.

    Raises:
        ValueError: an unknown workload or context was asked for.
        RuntimeError: a workload failed or computed a wrong result.
        SystemExit: a usage error (status 2), or ``--help`` (status 0).
    """
    args = parser().parse_args(argv)
    known = all_workloads()
    workloads = args.workloads or [w for w in known if w != "scaling" or not args.quick]
    unknown = sorted(set(workloads) - set(known))
    contexts = args.contexts or context_names()
    unknown += sorted(set(contexts) - set(registrations(CONTEXTS_GROUP)))
    if unknown:
        raise ValueError(
            f"unknown workload or context: {', '.join(unknown)}; workloads are "
            f"{', '.join(known)}; contexts are {', '.join(context_names())}"
        )
    repeats = args.repeats or (1 if args.quick else 3)
    total = len(workloads) * len(contexts) * repeats
    done_count = 0
    rows = []
    print(
        f"{'workload':<10} {'context':<10} {'workers':>7} {'median ms':>10} {'speedup':>8} "
        f"{'peak RSS MB':>12}",
        flush=True,
    )
    notes: dict[str, str] = {}
    for workload in workloads:
        # Each workload's runs interleave the contexts, and its rows print as soon as
        # they are measured.
        results: dict[str, list[dict[str, object]]] = {context: [] for context in contexts}
        for _ in range(repeats):
            for context in contexts:
                done_count += 1
                print(
                    f"pashmap bench: [{done_count}/{total}] {workload} on {context}",
                    file=sys.stderr,
                    flush=True,
                )
                results[context].append(_run(workload, context, args))
        base = None
        for context in contexts:
            runs = results[context]
            median = statistics.median(float(str(r["seconds"])) for r in runs)
            base = base if base is not None else median
            speedup = base / median
            row = dict(runs[-1], seconds=median, runs=len(runs), speedup=speedup)
            rows.append(row)
            print(
                f"{workload:<10} {context:<10} {row['workers']:>7} {median * 1000:>10.4g} "
                f"{format_ratio(speedup):>8} {float(str(row['peak_rss_mb'])):>12.1f}",
                flush=True,
            )
            if speedup < 0.95 and context != contexts[0]:
                notes.setdefault(workload, why_slower(workload, context, int(str(row["workers"]))))
    print(
        f"speedup: time of {contexts[0]!r} / time of the context; medians of {repeats} run(s),"
        " each in a fresh process"
    )
    for workload, note in notes.items():
        print(f"  {workload}: {note}")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(
                {
                    "python": platform.python_version(),
                    "cpus": describe_cpus(),
                    "quick": args.quick,
                    "results": rows,
                },
                stream,
                indent=1,
            )
        print(f"results written to {args.json}")
    return 0


def _run(workload: str, context: str, args: argparse.Namespace) -> dict[str, object]:
    """One run of ``workload`` on ``context`` in a fresh process; its JSON result."""
    command = [sys.executable, "-m", "pashmap.bench.workloads", workload, "--context", context]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    if args.quick:
        command.append("--quick")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"workload {workload!r} on {context!r} failed: {last}")
    result: dict[str, object] = json.loads(done.stdout)
    return result


def format_ratio(ratio: float) -> str:
    """A speedup for the table: two decimals, or two significant digits when small."""
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


# Why a parallel context can be slower than the first (serial) one, per workload.
_WHY = {
    "latency": "a map of a few trivial elements costs less than starting workers (a fork "
    "or thread per worker): parallel contexts pay a fixed cost per map",
    "overhead": "the kernel is too cheap (one multiplication) for the per-element and "
    "per-map costs of workers; give each element more work",
    "scaling": "the kernel is too cheap for the fixed cost of a parallel map at small N",
    "zero_copy": "writing fresh memory is bound by page faults and memory bandwidth, "
    "which more workers share rather than multiply",
    "uniform": "pure-Python work holds the GIL: threads take turns; processes run it in parallel",
    "skewed": "pure-Python work holds the GIL: threads take turns; processes run it in parallel",
}


def why_slower(workload: str, context: str, workers: int) -> str:
    """A one-line reason why ``context`` was slower than serial on ``workload``."""
    from pashmap.contexts import available_cpus

    reason = _WHY.get(workload, "the work per element is small for the cost of workers")
    cpus = available_cpus()
    if workers > cpus:
        reason += f"; also, {workers} workers share {cpus} usable CPU(s)"
    elif cpus < 2:
        reason += "; also, this process may use only 1 CPU"
    return f"{context} slower than serial: {reason}"
