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
from collections.abc import Callable, Sequence

from pashmap.bench.workloads import all_workloads
from pashmap.machine import describe_cpus
from pashmap.registry import CONTEXTS_GROUP, context_names, registrations

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The arguments of ``pashmap bench``."""
    bench = argparse.ArgumentParser(
        prog="pashmap bench",
        description="Time the standard workloads on this machine, each in a fresh process.",
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
    jobs = [(w, c, r) for w in workloads for r in range(repeats) for c in contexts]
    progress = _progress(len(jobs))
    results: dict[tuple[str, str], list[dict[str, object]]] = {}
    for workload, context, _ in jobs:
        command = [sys.executable, "-m", "pashmap.bench.workloads", workload, "--context", context]
        if args.workers is not None:
            command += ["--workers", str(args.workers)]
        if args.quick:
            command.append("--quick")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"workload {workload!r} on {context!r} failed: {last}")
        results.setdefault((workload, context), []).append(json.loads(done.stdout))
        progress(f"{workload} on {context}")
    progress(None)

    rows = []
    print(
        f"{'workload':<10} {'context':<10} {'workers':>7} {'median ms':>10} {'speedup':>8} "
        f"{'peak RSS MB':>12}"
    )
    for workload in workloads:
        base = None
        for context in contexts:
            runs = results[(workload, context)]
            median = statistics.median(float(str(r["seconds"])) for r in runs)
            base = base if base is not None else median
            row = dict(runs[-1], seconds=median, runs=len(runs), speedup=base / median)
            rows.append(row)
            print(
                f"{workload:<10} {context:<10} {row['workers']:>7} {median * 1000:>10.4g} "
                f"{base / median:>7.2f}x {float(str(row['peak_rss_mb'])):>12.1f}"
            )
    print(
        f"speedup: time of {contexts[0]!r} / time of the context; medians of {repeats} run(s),"
        " each in a fresh process"
    )
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


def _progress(total: int) -> Callable[[str | None], None]:
    """A progress bar (tqdm when installed and stderr is a terminal), else nothing."""
    if not sys.stderr.isatty():
        return lambda label: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return lambda label: None
    bar = tqdm(total=total, unit="run", leave=False)

    def update(label: str | None) -> None:
        if label is None:
            bar.close()
        else:
            bar.set_description(label)
            bar.update()

    return update
