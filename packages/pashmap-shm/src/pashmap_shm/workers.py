"""How many workers a context runs, and whether the current code runs inside a worker.

Both parallel contexts take ``num_workers`` the same way, and both run a map that is
started from inside one of their workers (nested parallelism) serially in that worker, so
that a map inside a kernel never starts a pool per worker.
"""

from __future__ import annotations

import operator
import os
import threading

from pashmap.worker import in_process_worker

__all__ = [
    "available_cpus",
    "in_worker",
    "mark_process_as_worker",
    "mark_thread_as_worker",
    "resolve_num_workers",
]

_process_is_worker = False
# The threads running a ThreadContext's shares right now (their idents). A set rather
# than a threading.local: in_worker() runs before every fork, where each object it
# touches costs a page copy, and an empty set answers without asking for the thread.
_worker_threads: set[int] = set()


def available_cpus() -> int:
    """The number of CPUs this process may run on.

    ``os.sched_getaffinity`` honours the CPU set given by taskset, Slurm or a cgroup,
    where ``os.cpu_count()`` counts every CPU of the machine.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_num_workers(num_workers: object, context_name: str) -> int:
    """Check a ``num_workers`` argument and turn ``None`` into the available CPUs.

    Args:
        num_workers: what the user passed: ``None`` or a positive integer.
        context_name: the context's class name, for error messages.

    Returns:
        The number of workers, at least 1.

    Raises:
        TypeError: ``num_workers`` is not an integer (``True``/``False`` and floats
            included).
        ValueError: ``num_workers`` is 0 or negative.
    """
    if num_workers is None:
        return available_cpus()
    if isinstance(num_workers, bool):
        raise TypeError(
            f"{context_name}(num_workers=...) needs a positive integer or None, got {num_workers!r}"
        )
    try:
        count = operator.index(num_workers)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{context_name}(num_workers=...) needs a positive integer or None (all available "
            f"CPUs), got {num_workers!r} of type {type(num_workers).__name__}"
        ) from None
    if count < 1:
        raise ValueError(
            f"{context_name}(num_workers=...) must be at least 1, got {count}; pass None to "
            f"use every available CPU ({available_cpus()} here)"
        )
    return count


def in_worker() -> bool:
    """Whether the calling code runs inside a worker of a pashmap-shm context.

    A process forked for one map is a worker while it runs its shares (inside
    :func:`pashmap.worker.enter_process_worker`); a warm pool's worker process is marked
    for its whole life (:func:`mark_process_as_worker`); a thread of a
    :class:`~pashmap_shm.ThreadContext` while it runs its shares.
    """
    return (
        _process_is_worker
        or in_process_worker()
        or (bool(_worker_threads) and threading.get_ident() in _worker_threads)
    )


def mark_process_as_worker() -> None:
    """Record that this (forked) process is a worker; called once in the child."""
    global _process_is_worker
    _process_is_worker = True


def mark_thread_as_worker(value: bool) -> None:
    """Record whether the calling thread is a worker of a ThreadContext."""
    if value:
        _worker_threads.add(threading.get_ident())
    else:
        _worker_threads.discard(threading.get_ident())
