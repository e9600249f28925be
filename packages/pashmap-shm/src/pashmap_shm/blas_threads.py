"""BLAS/OpenMP thread limits: keep ``num_workers`` workers from oversubscribing the CPUs.

numpy's BLAS (OpenBLAS, MKL) and OpenMP libraries start one thread per CPU for every
matrix product. Four worker processes on four CPUs each running a four-thread product
means sixteen busy threads fighting for four CPUs, which is slower than one thread per
worker. So every worker process limits these libraries to its share of the CPUs,
``max(1, usable_cpus // num_workers)``, with threadpoolctl (which knows how to talk to
each library).

Finding the libraries is slow next to a small map, so the caller does it once (again
only after new modules were imported). ``ProcessContext`` sets the limit in the caller
for the instant of its forks and restores it right after, so the workers inherit it and
the caller's own setting is unchanged when the map runs.

OpenBLAS shuts its thread pool down at every fork and restarts it on the next call that
changes its thread count; the restarted threads then spin (busy-wait for work) for a
while. Set in a fresh child, the limit would thus cost each worker that much CPU at every
map, and restored in the caller, the caller as much while the workers run, taking CPU
from them. So the caller, after restoring its count, shuts the
restarted pool down again (``blas_thread_shutdown_``, what OpenBLAS's own fork handler
calls); it starts again at the caller's next BLAS call, as after any fork.

For OpenBLAS built with pthreads (numpy's wheels), ``ProcessContext`` avoids even that:
around its forks it writes the thread count OpenBLAS keeps (the exported
``blas_cpu_number``) directly, which starts no thread, so a map costs no thread start
and join in the caller. Other libraries, or an OpenBLAS that does not export it, go
through threadpoolctl as described above.
"""

from __future__ import annotations

import ctypes
import operator
import sys
import threading
from typing import Any, Literal

from pashmap.contexts import available_cpus

__all__ = [
    "BlasThreads",
    "blas_controller",
    "limit_blas_threads",
    "resolve_blas_threads",
    "restore_blas_threads",
]

BlasThreads = int | Literal["auto"] | None

_lock = threading.Lock()
_controller: Any = None
_modules_seen = -1
_extensions_seen = -1


def resolve_blas_threads(value: object, num_workers: int, context_name: str) -> int | None:
    """Turn a ``blas_threads`` argument into a thread count, or ``None`` for no limit.

    Args:
        value: ``'auto'`` (each worker's share of the CPUs), ``None`` (leave the
            libraries alone) or a positive integer.
        num_workers: the context's number of workers.
        context_name: the context's class name, for error messages.

    Returns:
        ``max(1, available_cpus() // num_workers)`` for ``'auto'``, the integer given,
        or ``None``.

    Raises:
        TypeError: ``value`` is none of the above.
        ValueError: an integer smaller than 1.
    """
    if value is None:
        return None
    if value == "auto":
        return max(1, available_cpus() // num_workers)
    if isinstance(value, (bool, str)):
        raise TypeError(
            f"{context_name}(blas_threads=...) must be 'auto', None or a positive integer, "
            f"got {value!r}"
        )
    try:
        count = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{context_name}(blas_threads=...) must be 'auto', None or a positive integer, "
            f"got {value!r}"
        ) from None
    if count < 1:
        raise ValueError(
            f"{context_name}(blas_threads=...) must be at least 1, got {count}; pass None "
            "to leave the BLAS libraries' own setting alone"
        )
    return count


def blas_controller() -> Any:
    """The threadpoolctl controller of the libraries loaded now (cached until imports change).

    Returns:
        A ``threadpoolctl.ThreadpoolController``.
    """
    global _controller, _modules_seen, _extensions_seen
    with _lock:
        modules = len(sys.modules)
        if _controller is None or modules != _modules_seen:
            # Only a newly loaded extension module can bring a new BLAS library; pure
            # Python imports (pashmap's own lazy ones among them) do not need a rescan.
            extensions = _extension_count()
            if _controller is None or extensions != _extensions_seen:
                from threadpoolctl import ThreadpoolController

                _controller = ThreadpoolController()
                _extensions_seen = _extension_count()
            _modules_seen = len(sys.modules)
        return _controller


def _extension_count() -> int:
    """How many loaded modules are compiled extensions (shared libraries)."""
    return sum(
        1
        for module in list(sys.modules.values())
        if str(getattr(module, "__file__", None) or "").endswith((".so", ".pyd"))
    )


def limit_blas_threads(
    controller: Any, limit: int, *, around_fork: bool = False
) -> list[tuple[Any, int]]:
    """Limit every BLAS/OpenMP library that runs more than ``limit`` threads.

    Talks to each library directly, not through a threadpoolctl limiter object, which
    costs more than the rest of a small map's bookkeeping.

    Args:
        controller: from :func:`blas_controller`.
        limit: the number of threads allowed.
        around_fork: the limit is for children about to be forked and is undone right
            after the fork. For OpenBLAS built with pthreads, the thread count it keeps
            (``blas_cpu_number``) is then written directly: its setter would restart the
            thread pool in the caller (a thread start and join at every map).

    Returns:
        The ``(library or counter, previous count)`` pairs that were changed, for
        :func:`restore_blas_threads`; empty when no library runs more than ``limit``.
    """
    changed: list[tuple[Any, int]] = []
    for library in controller.lib_controllers:
        counter = _openblas_counter(library) if around_fork else None
        if counter is not None:
            current = counter.value
            if current > limit:
                counter.value = limit
                changed.append((counter, current))
            continue
        current = library.get_num_threads()
        if current is not None and current > limit:
            library.set_num_threads(limit)
            changed.append((library, current))
    return changed


def restore_blas_threads(changed: list[tuple[Any, int]], *, after_fork: bool = False) -> None:
    """Undo :func:`limit_blas_threads`.

    Args:
        changed: what :func:`limit_blas_threads` returned.
        after_fork: the process has just forked: shut OpenBLAS's thread pool down again
            if setting the count restarted it (see the module's docstring).
    """
    for library, count in changed:
        if isinstance(library, ctypes.c_int):
            library.value = count
            continue
        library.set_num_threads(count)
        if after_fork and library.internal_api == "openblas":
            shutdown = getattr(library.dynlib, "blas_thread_shutdown_", None)
            if shutdown is not None:
                shutdown()


_counters: dict[str, ctypes.c_int | None] = {}


def _openblas_counter(library: Any) -> ctypes.c_int | None:
    """OpenBLAS's own thread count variable, when it is exported and can be trusted."""
    key = str(library.filepath)
    if key not in _counters:
        counter = None
        if (
            library.internal_api == "openblas"
            and getattr(library, "threading_layer", None) == "pthreads"
        ):
            try:
                counter = ctypes.c_int.in_dll(library.dynlib, "blas_cpu_number")
            except (ValueError, AttributeError):
                counter = None
            if counter is not None and counter.value != library.get_num_threads():
                counter = None  # not the variable we think it is
        _counters[key] = counter
    return _counters[key]
