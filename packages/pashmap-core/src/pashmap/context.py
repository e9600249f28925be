"""The Context protocol: where maps run and where their output arrays live.

A *context* decides where a map runs: in the caller
(:class:`~pashmap.contexts.LocalContext`), in threads or in forked processes (the
``pashmap-shm`` package), on a Dask cluster (``pashmap-dask``). It also allocates the
arrays that kernels write their results into, in memory whose writes reach the caller.

The protocol below is the whole contract: pashmap's module-level functions use nothing
else of a context. The easy way to meet it is to subclass
:class:`~pashmap.contexts.BaseContext` and implement ``num_workers``, ``allocate`` and
``run``, with the rest of the kit in :mod:`pashmap.contexts`. Register the class in the
``pashmap.contexts`` entry-point group to make it available by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from pashmap.allocation import Order, ShapeLike
from pashmap.target import MapTarget

__all__ = ["Context"]

R = TypeVar("R")


@runtime_checkable
class Context(Protocol):
    """Where maps run and where their output arrays live.

    The module-level functions (``pm.map``, ``pm.array``, ...) forward to the default
    context; every context offers the same calls as methods. ``pm.zeros``, ``pm.full``
    and the other helpers use the context's own method when it has one, else build on
    :meth:`array`.
    """

    @property
    def num_workers(self) -> int:
        """The number of workers a map runs on; ``worker_id`` is in ``range(num_workers)``."""
        ...

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype[Any], order: Order) -> NDArray[Any]:
        """Return an uninitialised array that the workers of this context can write to.

        The low-level allocation method: arguments are already checked and normalised.
        Writes by any worker must be visible to the caller after ``map`` returns.

        Args:
            shape: the shape, a tuple of non-negative ints.
            dtype: the numpy dtype.
            order: ``'C'`` or ``'F'``.

        Raises:
            MemoryError: the array cannot be allocated (the message gives the size asked).
        """
        ...

    def array(
        self,
        shape: ShapeLike | None = None,
        dtype: DTypeLike | None = None,
        *,
        order: Order | None = None,
        fill: ArrayLike | None = None,
        like: ArrayLike | None = None,
        per_worker: bool = False,
    ) -> NDArray[Any]:
        """Allocate an array the workers can write to; see :func:`pashmap.array`."""
        ...

    def map(self, kernel: Callable[..., R], target: Any, /, **options: Any) -> list[R]:
        """Call ``kernel(worker_id, *entry)`` for every entry; see :func:`pashmap.map`.

        Checks the kernel, wraps the target (:func:`pashmap.targets.resolve_target`) and
        resolves the common options, then calls :meth:`run`.
        """
        ...

    def run(self, kernel: Callable[..., R], target: MapTarget[Any], /, **options: Any) -> list[R]:
        """Call ``kernel(worker_id, *entry)`` once for every entry of a MapTarget.

        Args:
            kernel: the function to call.
            target: a MapTarget (already resolved).
            **options: ``progress=True`` and ``timeout=<seconds>`` only when in effect
                (checked already), and options of this context kind; unknown ones
                raise ``TypeError``.

        Returns:
            The kernel's return values, in index order.

        Raises:
            MapTimeoutError: the timeout passed; the map's workers were stopped.
            WorkerDiedError: a worker died during the map.
            BaseException: whatever the kernel raised, with its original type.
        """
        ...

    def close(self) -> None:
        """Release what the context holds (workers, a cluster it started). Safe to call twice."""
        ...
