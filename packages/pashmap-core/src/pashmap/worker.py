"""The worker scope: which worker is running, and what it set up for itself.

Every context runs each of its workers inside :func:`worker_scope`. Inside it,
:func:`current_worker_id` tells the kernel's helpers which worker they are in, and
per-worker values (:class:`~pashmap.PerWorker`) created by the worker are torn down when
the worker finishes its part of the map -- in the worker's own process or thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WorkerScope", "current_scope", "current_worker_id", "worker_scope"]


@dataclass
class WorkerScope:
    """What one worker holds during one map.

    Attributes:
        worker_id: the worker's id, ``0 <= worker_id < num_workers``.
        values: per-worker values created in this scope, keyed by their owner.
        teardowns: callbacks to run when the scope ends, last registered first.
    """

    worker_id: int
    values: dict[int, Any] = field(default_factory=dict)
    teardowns: list[Callable[[], None]] = field(default_factory=list)


_local = threading.local()


def current_scope() -> WorkerScope | None:
    """The scope of the worker running in this thread, or ``None`` outside any map."""
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


@contextmanager
def worker_scope(worker_id: int) -> Iterator[WorkerScope]:
    """Run the body as worker ``worker_id``; tear down its per-worker values at the end.

    Contexts wrap each worker's whole part of a map in this, in the worker's own thread
    or process. Teardowns run in reverse order of creation, also when the body raised;
    the first exception from a teardown is raised after all have run (unless the body
    itself raised, which then wins).

    Args:
        worker_id: the worker's id.

    Yields:
        The new scope.
    """
    previous = current_scope()
    scope = WorkerScope(worker_id)
    _local.scope = scope
    failed = False
    try:
        yield scope
    except BaseException:
        failed = True
        raise
    finally:
        _local.scope = previous
        error: BaseException | None = None
        for teardown in reversed(scope.teardowns):
            try:
                teardown()
            except BaseException as exc:
                error = error or exc
        if error is not None and not failed:
            raise error
