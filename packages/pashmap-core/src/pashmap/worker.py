"""The worker scope: which worker is running, and what it set up for itself.

Every context runs each of its workers' part of a map inside :func:`worker_scope`.
Inside it, :func:`current_worker_id` tells the kernel's helpers which worker they are
in, and per-worker values (:class:`~pashmap.PerWorker`, the slices of an
:class:`~pashmap.Accumulator`) created by the worker are torn down when the worker
finishes its part of the map -- in the worker's own thread or process.

:func:`in_worker` tells a context that it is asked to map from inside a kernel of a
parallel context: such a nested map runs serially, in the worker that asked.

A context whose worker is a whole process for the length of a map (pashmap-shm's forked
workers) can make its scope visible from every thread of that process with
:func:`set_process_scope`, instead of entering :func:`worker_scope` in one thread.

A scope also knows the context whose map it runs (:attr:`WorkerScope.context`), so that
objects made for one context (an :class:`~pashmap.Accumulator`) can refuse to be used
under another. A context can name itself (``worker_scope(i, context=self)``); otherwise
the scope takes the context whose :meth:`~pashmap.contexts.BaseContext.map` is running
(:func:`mapping_context`), which :class:`~pashmap.contexts.BaseContext` records for every
context built on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "WorkerScope",
    "current_scope",
    "current_worker_id",
    "in_worker",
    "map_running",
    "mapping_context",
    "mark_process_as_worker",
    "set_process_scope",
    "tear_down",
    "worker_scope",
]


class WorkerScope:
    """What one worker holds during one map.

    A plain class with slots (not a dataclass): a forked worker may create one at its
    start, and every object it touches there costs a page copy.

    Args:
        worker_id: the worker's id.
        context: the context whose map the worker runs; by default
            :func:`mapping_context` (``None`` when it cannot be told).

    Attributes:
        worker_id: the worker's id, ``0 <= worker_id < num_workers``.
        context: the context whose map this worker runs, or ``None`` when unknown
            (objects bound to a context then skip their check).
        values: per-worker values created in this scope, keyed by their owner.
        teardowns: callbacks to run when the scope ends, last registered first.
    """

    __slots__ = ("context", "teardowns", "values", "worker_id")

    def __init__(self, worker_id: int, context: Any = None) -> None:
        self.worker_id = worker_id
        self.context: Any = mapping_context() if context is None else context
        self.values: dict[int, Any] = {}
        self.teardowns: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"WorkerScope(worker_id={self.worker_id}, values={len(self.values)})"


_local = threading.local()
# The context whose map() each caller thread is in, by thread ident (see map_running). A
# process forked by that thread for the map inherits it under the same ident.
_mapping: dict[int, Any] = {}
# The threads running inside the worker_scope of a parallel context (their idents). A set
# rather than a threading.local: in_worker() runs at every map, and an empty set answers
# without asking for the thread.
_worker_threads: set[int] = set()
# A process that is a worker for its whole life (a pool's worker).
_process_is_worker = False
# Set by a context whose worker is a whole process during a map (see set_process_scope).
_process_scope: Callable[[], WorkerScope | None] | None = None


def set_process_scope(scope: Callable[[], WorkerScope | None] | None) -> None:
    """Install the scope of a process that is one worker while it runs its part of a map.

    A process forked for one map is worker ``i`` in every thread it has, for as long as
    it runs its shares. Its context installs a function here (once, at import) that
    returns that worker's scope while it runs them, and ``None`` otherwise (in the
    caller). The function is asked before the thread's own scope, by
    :func:`current_scope` and :func:`in_worker`, so it must be cheap.

    Args:
        scope: the function, or ``None`` to remove it.
    """
    global _process_scope
    _process_scope = scope


def current_scope() -> WorkerScope | None:
    """The scope of the worker running in this thread, or ``None`` outside any map."""
    if _process_scope is not None:
        process_scope = _process_scope()
        if process_scope is not None:
            return process_scope
    scope: WorkerScope | None = getattr(_local, "scope", None)
    return scope


def current_worker_id() -> int:
    """The id of the worker running the calling code.

    Returns:
        The same ``worker_id`` the kernel received.

    Raises:
        RuntimeError: called outside a kernel (no map is running in this thread).
    """
    scope = current_scope()
    if scope is None:
        raise RuntimeError(
            "not inside a kernel: per-worker values and accumulator.local are only "
            "available while a map runs the kernel"
        )
    return scope.worker_id


def in_worker() -> bool:
    """Whether the calling code runs inside a worker of a parallel context.

    True in a thread inside :func:`worker_scope` entered with ``parallel=True`` (the
    default), in a process whose process scope is active (:func:`set_process_scope`),
    and in a process marked with :func:`mark_process_as_worker`. A context asked to map
    from there runs the map serially, in the calling worker, so that a map inside a
    kernel never starts workers of its own in every worker.
    """
    return (
        _process_is_worker
        or (bool(_worker_threads) and threading.get_ident() in _worker_threads)
        or (_process_scope is not None and _process_scope() is not None)
    )


def mapping_context() -> Any:
    """The context whose map is running the calling code, or ``None`` when not known.

    The context recorded by :class:`map_running` for the calling thread (also in a
    process that this thread forked for the map); else, in another thread (a worker
    thread the map started), the context whose map is running if only one context's
    maps are running in this process; else ``None``.
    """
    if not _mapping:
        return None
    context = _mapping.get(threading.get_ident())
    if context is not None:
        return context
    running = tuple(_mapping.values())
    first = running[0] if running else None
    return first if all(other is first for other in running) else None


class map_running:  # noqa: N801 - used as a function: ``with map_running(self):``
    """Record, for the body, that ``context``'s map runs in the calling thread.

    :meth:`BaseContext.map <pashmap.contexts.BaseContext.map>` wraps its call to
    ``run`` in this, so a context built on :class:`~pashmap.contexts.BaseContext` needs
    nothing more for :func:`mapping_context` to name it in its workers. Nested maps
    (asked from inside a worker, see :func:`in_worker`) record nothing: they run in the
    outer map's workers.

    Args:
        context: the context whose map runs.
    """

    __slots__ = ("context", "ident", "previous")

    def __init__(self, context: Any) -> None:
        self.context = context
        self.ident = 0
        self.previous: Any = None

    def __enter__(self) -> None:
        self.ident = threading.get_ident()
        self.previous = _mapping.get(self.ident)
        _mapping[self.ident] = self.context

    def __exit__(self, *_: object) -> None:
        if self.previous is None:
            _mapping.pop(self.ident, None)
        else:
            _mapping[self.ident] = self.previous


def mark_process_as_worker() -> None:
    """Record that this process is a worker for the rest of its life (a pool's worker)."""
    global _process_is_worker
    _process_is_worker = True


class worker_scope:  # noqa: N801 - used as a function: ``with worker_scope(i):``
    """Run the body as worker ``worker_id``; tear down its per-worker values at the end.

    Contexts wrap each worker's whole part of a map in this, in the worker's own thread.
    Teardowns run in reverse order of creation, also when the body raised; the first
    exception from a teardown is raised after all have run (unless the body itself
    raised, which then wins).

    Args:
        worker_id: the worker's id.
        parallel: the body runs in a worker of a parallel context, so :func:`in_worker`
            is true inside it and maps started there run serially. ``False`` for a
            context that runs in the caller (:class:`~pashmap.contexts.LocalContext`),
            inside which a map on a parallel context still runs in parallel.
        context: the context whose map the worker runs (:attr:`WorkerScope.context`);
            by default :func:`mapping_context`, which names the context for contexts
            built on :class:`~pashmap.contexts.BaseContext`. Pass it when the scope is
            entered outside that context's ``map()`` (e.g. by a pool's own thread).

    Yields:
        The new :class:`WorkerScope` (``with worker_scope(i) as scope:``).
    """

    __slots__ = ("marked", "parallel", "previous", "scope")

    def __init__(self, worker_id: int, *, parallel: bool = True, context: Any = None) -> None:
        self.scope = WorkerScope(worker_id, context)
        self.parallel = parallel
        self.marked = False
        self.previous: WorkerScope | None = None

    def __enter__(self) -> WorkerScope:
        self.previous = getattr(_local, "scope", None)
        _local.scope = self.scope
        if self.parallel:
            ident = threading.get_ident()
            self.marked = ident not in _worker_threads  # (not when nested in another scope)
            _worker_threads.add(ident)
        return self.scope

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        _local.scope = self.previous
        if self.marked:
            _worker_threads.discard(threading.get_ident())
        if self.scope.teardowns:
            tear_down(self.scope, failed=kind is not None)


def tear_down(scope: WorkerScope, *, failed: bool) -> None:
    """Run a scope's teardowns, last registered first.

    The first exception from a teardown is raised after all have run, unless the
    worker's body ``failed`` (its own exception, being raised, wins).

    Args:
        scope: the scope that ends.
        failed: the worker's body raised.
    """
    error: BaseException | None = None
    for teardown in reversed(scope.teardowns):
        try:
            teardown()
        except BaseException as exc:
            error = error or exc
    if error is not None and not failed:
        raise error
