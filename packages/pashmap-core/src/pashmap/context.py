"""The Context protocol: where maps run and where their output arrays live.

A *context* decides where a map runs: in the caller (:class:`~pashmap.LocalContext`), in
threads or in forked processes (the ``pashmap-shm`` package). It also allocates the
arrays that kernels write their results into, in memory that its workers share with the
caller.

To write a context, subclass :class:`~pashmap.BaseContext` and implement two methods:
``allocate`` (uninitialised memory the workers can write to) and ``run`` (call the kernel
on every element of a :class:`~pashmap.MapTarget`). Register it in the
``pashmap.contexts`` entry-point group to make it available by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from pashmap.allocation import Order, ShapeLike

__all__ = ["Context"]

R = TypeVar("R")


@runtime_checkable
class Context(Protocol):
    """Where maps run and where their output arrays live.

    The module-level functions (``pm.map``, ``pm.array``, ...) forward to the default
    context; every context offers the same calls as methods.
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
        """Call ``kernel(worker_id, *entry)`` for every entry; see :func:`pashmap.map`."""
        ...
