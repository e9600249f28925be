"""The ``pashmap`` command: ``pashmap demo``, ``pashmap info`` and ``pashmap bench``.

``demo`` runs the README's quick guide at a real size under every installed context and
checks the results; ``info`` prints what a bug report needs: versions, registered
contexts and targets, usable CPUs and shared-memory capacity. ``bench`` lives in
:mod:`pashmap.bench.command`, imported only when it runs: the runtime never loads the
benchmark code.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence

import numpy as np

import pashmap as pm
from pashmap.machine import available_cpus, available_memory, describe_cpus, format_bytes
from pashmap.registry import CONTEXTS_GROUP, TARGETS_GROUP, context_names, registrations

# Plugins add sections to ``pashmap demo`` through this entry-point group: each entry is a
# callable ``demo(workers: int | None) -> int`` that prints its own table and returns an
# exit status (0 when its results were verified).
DEMOS_GROUP = "pashmap.demos"

__all__ = ["main"]


def quick_guide(n: int) -> tuple[float, bool]:
    """The README's quick guide over ``n`` float64 on the default context.

    Returns:
        The seconds ``pm.map`` took, and whether every ``outp[index]`` is ``3 * inp[index]``.
    """
    inp = np.random.default_rng(0).random(n)
    outp = pm.array(n)

    def triple_it(worker_id: int, index: int, value: float) -> None:
        outp[index] = 3 * value

    start = time.perf_counter()
    pm.map(triple_it, inp)
    seconds = time.perf_counter() - start
    return seconds, bool(np.array_equal(outp, 3 * inp))


def _demo(args: argparse.Namespace) -> int:
    n = args.size
    print(f"pashmap demo: the quick guide, outp[index] = 3 * value over {n:,} float64")
    print(f"{'context':<12} {'workers':>7} {'map time':>10} {'per element':>12} {'result':>7}")
    failures = 0
    times: dict[str, float] = {}
    for name in context_names():
        kwargs = {} if args.workers is None or name == "local" else {"num_workers": args.workers}
        with pm.use_context(name, **kwargs) as context:
            elapsed, ok = quick_guide(n)
        failures += not ok
        times[name] = elapsed
        print(
            f"{name:<12} {context.num_workers:>7} {elapsed:>8.3f} s {elapsed / n * 1e9:>9.0f} ns"
            f" {'ok' if ok else 'WRONG':>7}",
            flush=True,
        )
    if failures:
        print(f"pashmap demo: {failures} context(s) gave wrong results", file=sys.stderr)
        return 1
    print("all results verified against inp * 3")
    slower = [name for name, seconds in times.items() if seconds > times.get("local", seconds)]
    if slower:
        print(
            f"({', '.join(slower)} slower than local here: the quick guide's kernel is one "
            "multiplication per element, too little work for the cost of starting workers "
            f"and for the memory bandwidth they share, on the {available_cpus()} CPU(s) this "
            "process may use. Kernels that do real work per element gain.)"
        )
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


def _available_memory() -> str | None:
    available = available_memory()
    return None if available is None else f"{format_bytes(available)} available"


def _info(args: argparse.Namespace) -> int:
    print(f"python        {platform.python_version()} ({sys.executable})")
    print(f"platform      {platform.platform()}")
    print(f"cpus          {describe_cpus()}")
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


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (checked before any work starts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[command]
            return found
    return parser


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
        "--size",
        type=positive_int,
        default=2_000_000,
        help="number of elements (default 2,000,000)",
    )
    demo.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="workers for parallel contexts (default: all CPUs)",
    )
    demo.set_defaults(run=_demo)
    # Its arguments belong to pashmap.bench.command, which parses what follows "bench".
    commands.add_parser(
        "bench",
        help="time the standard workloads on this machine, each in a fresh process",
        add_help=False,
    )
    info = commands.add_parser("info", help="versions, contexts, targets and CPUs, for bug reports")
    info.set_defaults(run=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pashmap`` command line; return its exit status.

    Exit status: 0 success, 1 a failure (wrong results or an error, reported in one line),
    2 a usage error.
    """
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command != "bench" and rest:  # with the command's own usage, not pashmap's
        _subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "bench":
            from pashmap.bench.command import main as bench

            status: int = bench(rest)
        else:
            status = args.run(args)
    except BrokenPipeError:  # e.g. `pashmap info | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (pm.PashmapError, ValueError, TypeError, OSError, ImportError, RuntimeError) as exc:
        print(f"pashmap: error: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
