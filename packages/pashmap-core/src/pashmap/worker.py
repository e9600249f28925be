"""The worker scope: which worker is running, and what it set up for itself.

Every context runs each of its workers inside :func:`worker_scope`. Inside it,
:func:`current_worker_id` tells the kernel's helpers which worker they are in, and
per-worker values (:class:`~pashmap.PerWorker`) created by the worker are torn down when
the worker finishes its part of the map -- in the worker's own process or thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "WorkerScope",
    "current_scope",
    "current_worker_id",
    "enter_process_worker",
    "in_process_worker",
    "leave_process_worker",
    "worker_scope",
]


class WorkerScope:
    """What one worker holds during one map.

    A plain class with slots (not a dataclass): a forked worker creates one at its start,
    and every object it touches there costs a page copy.

    Attributes:
        worker_id: the worker's id, ``0 <= worker_id < num_workers``.
        values: per-worker values created in this scope, keyed by their owner.
        teardowns: callbacks to run when the scope ends, last registered first.
    """

    __slots__ = ("teardowns", "values", "worker_id")

    def __init__(self, worker_id: int) -> None:
        self.worker_id = worker_id
        self.values: dict[int, Any] = {}
        self.teardowns: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"WorkerScope(worker_id={self.worker_id}, values={len(self.values)})"


_local = threading.local()


# In a process that is one worker for the whole map (a forked worker): its id, and its
# scope once something asked for it (see enter_process_worker).
_process_worker: int | None = None
_process_scope: WorkerScope | None = None


def in_process_worker() -> bool:
    """Whether this process is a forked worker running its part of a map.

    True between :func:`enter_process_worker` and :func:`leave_process_worker`, in every
    thread of the process.
    """
    return _process_worker is not None


def current_scope() -> WorkerScope | None:
    """The scope of the worker running in this thread, or ``None`` outside any map."""
    global _process_scope
    if _process_worker is not None:
        if _process_scope is None:
            _process_scope = WorkerScope(_process_worker)
        return _process_scope
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


class worker_scope:  # noqa: N801 - used as a function: ``with worker_scope(i):``
    """Run the body as worker ``worker_id``; tear down its per-worker values at the end.

    Contexts wrap each worker's whole part of a map in this, in the worker's own thread
    or process. Teardowns run in reverse order of creation, also when the body raised;
    the first exception from a teardown is raised after all have run (unless the body
    itself raised, which then wins).

    (A small class rather than ``contextlib.contextmanager``: entering it is part of
    every forked worker's start-up, and a generator-based one touches several times
    more memory there.)

    Args:
        worker_id: the worker's id.

    Yields:
        The new :class:`WorkerScope` (``with worker_scope(i) as scope:``).
    """

    __slots__ = ("previous", "scope")

    def __init__(self, worker_id: int) -> None:
        self.scope = WorkerScope(worker_id)
        self.previous: WorkerScope | None = None

    def __enter__(self) -> WorkerScope:
        self.previous = getattr(_local, "scope", None)
        _local.scope = self.scope
        return self.scope

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        _local.scope = self.previous
        if self.scope.teardowns:
            _tear_down(self.scope, failed=kind is not None)


def _tear_down(scope: WorkerScope, *, failed: bool) -> None:
    """Run the scope's teardowns, last registered first; raise the first error unless
    the body itself ``failed`` (its exception wins)."""
    error: BaseException | None = None
    for teardown in reversed(scope.teardowns):
        try:
            teardown()
        except BaseException as exc:
            error = error or exc
    if error is not None and not failed:
        raise error


def enter_process_worker(worker_id: int) -> None:
    """Make this process worker ``worker_id`` until :func:`leave_process_worker`.

    :func:`worker_scope` for a process that is a single worker while it runs its part
    of a map: a worker process forked for one map. Entering records only the worker id;
    the :class:`WorkerScope` is made when something first asks for it (a
    :class:`~pashmap.PerWorker` value, an accumulator), so a worker that needs none
    touches almost nothing of the memory it shares, copy-on-write, with the caller. (Two
    functions rather than a context manager: every function a forked worker runs costs
    it page copies.) Until it leaves, this scope is the current one in every thread of
    the process (a scope inherited from the caller's thread through ``fork()`` is
    ignored).

    Args:
        worker_id: the worker's id.
    """
    global _process_worker, _process_scope
    _process_worker = worker_id
    _process_scope = None


def leave_process_worker(*, failed: bool) -> None:
    """End what :func:`enter_process_worker` began: run the scope's teardowns.

    Teardowns run last registered first, as with :func:`worker_scope`; the first
    exception from one is raised after all have run, unless ``failed`` (the worker's
    own exception, being raised, wins).

    Args:
        failed: the worker's body raised.
    """
    global _process_worker, _process_scope
    scope = _process_scope
    _process_worker = _process_scope = None
    if scope is not None and scope.teardowns:
        _tear_down(scope, failed=failed)
