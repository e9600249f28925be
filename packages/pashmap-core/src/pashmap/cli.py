"""The ``pashmap`` command: ``pashmap demo`` and ``pashmap info``.

``demo`` runs the README's quick guide at a real size under every installed context and
checks the results; ``info`` prints what a bug report needs: versions, registered
contexts and targets, usable CPUs and shared-memory capacity.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from collections.abc import Callable, Sequence

import pashmap as pm
from pashmap.machine import available_cpus, available_memory, cgroup_cpu_quota, format_bytes
from pashmap.registry import CONTEXTS_GROUP, TARGETS_GROUP, context_names, registrations
from pashmap.workloads import WORKLOADS, Sizes, all_workloads

# Plugins add sections to ``pashmap demo`` through this entry-point group: each entry is a
# callable ``demo(workers: int | None) -> int`` that prints its own table and returns an
# exit status (0 when its results were verified).
DEMOS_GROUP = "pashmap.demos"

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    n = args.size
    print(f"pashmap demo: the quick guide, outp[index] = 3 * value over {n:,} float64")
    print(f"{'context':<12} {'workers':>7} {'map time':>10} {'per element':>12} {'result':>7}")
    failures = 0
    for name in context_names():
        kwargs = {} if args.workers is None or name == "local" else {"num_workers": args.workers}
        with pm.use_context(name, **kwargs) as context:
            try:
                elapsed, ok = WORKLOADS["overhead"].run(Sizes(overhead_elements=n))["seconds"], True
            except RuntimeError:  # the workload checks its result
                elapsed, ok = float("nan"), False
        failures += not ok
        print(
            f"{name:<12} {context.num_workers:>7} {elapsed:>8.3f} s {elapsed / n * 1e9:>9.0f} ns"
            f" {'ok' if ok else 'WRONG':>7}"
        )
    if failures:
        print(f"pashmap demo: {failures} context(s) gave wrong results", file=sys.stderr)
        return 1
    print("all results verified against inp * 3")
    for name, registration in registrations(DEMOS_GROUP).items():
        print(f"\n{name} demo (from {registration.distribution})")
        status = registration.load()(workers=args.workers)
        if status:
            print(f"pashmap demo: the {name} demo failed", file=sys.stderr)
            return int(status)
    return 0


def _distribution_versions() -> list[tuple[str, str]]:
    from importlib.metadata import PackageNotFoundError, distributions, version

    found = sorted({(d.metadata["Name"], d.version) for d in distributions() if d.metadata["Name"]})
    rows = [(name, ver) for name, ver in found if name.lower().startswith("pashmap")]
    for other in ("numpy", "extra-data", "h5py", "xarray"):
        try:
            rows.append((other, version(other)))
        except PackageNotFoundError:
            rows.append((other, "not installed"))
    return rows


def _usable_cpus() -> str:
    text = f"{available_cpus()} usable, {os.cpu_count()} in the machine"
    if hasattr(os, "sched_getaffinity"):
        text += f" (affinity {len(os.sched_getaffinity(0))}"
        quota = cgroup_cpu_quota()
        text += f", cgroup quota {quota:g} CPUs)" if quota is not None else ")"
    return text


def _available_memory() -> str | None:
    available = available_memory()
    return None if available is None else f"{format_bytes(available)} available"


def _info(args: argparse.Namespace) -> int:
    print(f"python        {platform.python_version()} ({sys.executable})")
    print(f"platform      {platform.platform()}")
    print(f"cpus          {_usable_cpus()}")
    memory = _available_memory()
    if memory:
        print(f"memory        {memory} (shared anonymous memory draws from this)")
    if os.path.isdir("/dev/shm"):
        usage = shutil.disk_usage("/dev/shm")
        print(f"/dev/shm      {usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.1f} GiB")
    print("packages")
    for name, ver in _distribution_versions():
        print(f"  {name:<14} {ver}")
    for title, group in (("contexts", CONTEXTS_GROUP), ("targets", TARGETS_GROUP)):
        print(f"{title} ({group})")
        for name, registration in registrations(group).items():
            print(f"  {name:<14} {registration.value}  [{registration.distribution}]")
    print("context defaults")
    for name in context_names():
        try:
            with pm.use_context(name) as context:
                details = f"num_workers={context.num_workers}"
                blas = getattr(context, "blas_threads", None)
                if hasattr(context, "blas_threads"):
                    details += f", BLAS threads per worker={blas if blas else 'not limited'}"
        except Exception as exc:  # a broken plugin is reported, not fatal
            details = f"cannot be created: {exc}"
        print(f"  {name:<14} {details}")
    print(f"default       {pm.get_default_context()!r}")
    import multiprocessing

    print(f"start methods {', '.join(multiprocessing.get_all_start_methods())}")
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        print("BLAS          (install threadpoolctl to see BLAS/OpenMP libraries and threads)")
    else:
        for pool in threadpool_info():
            print(
                f"BLAS          {pool.get('internal_api')} {pool.get('version')}: "
                f"{pool.get('num_threads')} threads ({pool.get('filepath')})"
            )
    return 0


def _bench(args: argparse.Namespace) -> int:
    import json
    import statistics
    import subprocess

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
        command = [sys.executable, "-m", "pashmap.workloads", workload, "--context", context]
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
                    "cpus": _usable_cpus(),
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pashmap", description="Parallel map with shared-memory, zero-copy outputs."
    )
    parser.add_argument("--version", action="version", version=f"pashmap {pm.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="run the quick guide under every installed context and check it"
    )
    demo.add_argument(
        "--size", type=int, default=2_000_000, help="number of elements (default 2,000,000)"
    )
    demo.add_argument(
        "--workers",
        type=int,
        default=None,
        help="workers for parallel contexts (default: all CPUs)",
    )
    demo.set_defaults(run=_demo)
    bench = commands.add_parser(
        "bench", help="time the standard workloads on this machine, each in a fresh process"
    )
    bench.add_argument("--workloads", nargs="+", metavar="NAME", help="workloads (default: all)")
    bench.add_argument(
        "--contexts", nargs="+", metavar="NAME", help="contexts (default: all installed)"
    )
    bench.add_argument("--workers", type=int, default=None, help="workers (default: all CPUs)")
    bench.add_argument("--repeats", type=int, default=None, help="runs of each (default 3)")
    bench.add_argument("--quick", action="store_true", help="small sizes, one run each")
    bench.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    bench.set_defaults(run=_bench)
    info = commands.add_parser("info", help="versions, contexts, targets and CPUs, for bug reports")
    info.set_defaults(run=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pashmap`` command line; return its exit status.

    Exit status: 0 success, 1 a failure (wrong results or an error, reported in one line),
    2 a usage error.
    """
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except BrokenPipeError:  # e.g. `pashmap info | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (pm.PashmapError, ValueError, TypeError, OSError, ImportError, RuntimeError) as exc:
        print(f"pashmap: error: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
