"""Accumulator: race-free per-worker partial results, reduced into one array after a map.

The common "sum over all trains" or "histogram of everything" pattern: each worker adds
into its own slice, so no two workers ever write the same memory, and the slices are
reduced when the result is read:

```python
total = pm.Accumulator(image_shape)                 # sum by default

def kernel(worker_id, index, train_id, data):
    total.local += data["SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"]["image.data"].sum(axis=0)

pm.map(kernel, run)
image_sum = total.result()
```
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from pashmap.allocation import ShapeLike
from pashmap.context import Context
from pashmap.errors import ContextMismatchError
from pashmap.worker import current_scope, mapping_context

__all__ = ["Accumulator"]

Reduction = np.ufunc | Callable[[Any, Any], Any]


class Accumulator:
    """Per-worker partial results in memory the workers share, and their reduction.

    Allocated with the context (by default the default context at creation time) so that
    under ``'processes'`` the partial results live in shared memory: create it with the
    context you map with. It is bound to that context: used in a map on another context
    (made under ``'local'``, mapped after switching to ``'processes'``), where its
    partial results could be lost or written by the wrong worker, it raises
    :class:`~pashmap.ContextMismatchError` naming both contexts.

    Args:
        shape: the shape of the result (an int or a tuple of ints).
        dtype: the dtype; float64 by default.
        reduce: how partial results combine: a binary ufunc (``np.add`` -- the default --,
            ``np.maximum``, ``np.minimum``, ``np.logical_or``, ...) or any callable
            ``reduce(a, b) -> array``.
        fill: the starting value of every partial result; by default the identity of
            ``reduce`` (0 for add, 1 for multiply, the dtype's lowest value for maximum,
            its highest for minimum). Required when ``reduce`` has no identity.
        context: the context to allocate with; the default context when ``None``.

    Raises:
        TypeError: ``reduce`` is neither a binary ufunc nor callable, or it has no
            identity and no ``fill`` was given.
    """

    def __init__(
        self,
        shape: ShapeLike,
        dtype: DTypeLike | None = None,
        *,
        reduce: Reduction = np.add,
        fill: ArrayLike | None = None,
        context: Context | None = None,
    ) -> None:
        if context is None:
            from pashmap.default import get_default_context

            context = get_default_context()
        np_dtype = np.dtype(np.float64 if dtype is None else dtype)
        if isinstance(reduce, np.ufunc):
            if reduce.nin != 2:
                raise TypeError(f"reduce must be a binary ufunc, got {reduce.__name__}")
        elif not callable(reduce):
            raise TypeError(f"reduce must be a ufunc or a callable reduce(a, b), got {reduce!r}")
        if fill is None:
            fill = _identity(reduce, np_dtype)
        self.reduction = reduce
        self.fill = fill
        self.context: Context | None = context  # None once pickled: see __getstate__
        self.num_workers = context.num_workers
        self.partials: NDArray[Any] = context.array(shape, np_dtype, fill=fill, per_worker=True)

    @property
    def local(self) -> NDArray[Any]:
        """The calling worker's partial result (a view); add to it in the kernel.

        ``acc.local += value`` and ``acc.local[index] += 1`` both work.

        Raises:
            RuntimeError: used outside a kernel.
            ContextMismatchError: the map runs on another context than the one the
                accumulator was made for.
            IndexError: the map runs on more workers than the accumulator was made for.
        """
        scope = current_scope()
        if scope is None:
            raise RuntimeError(
                "not inside a kernel: accumulator.local is only available while a map "
                "runs the kernel; read the total with accumulator.result()"
            )
        context = scope.context
        # (One identity check per access; the contexts are the same object when all is well.)
        if context is not self.context and context is not None and self.context is not None:
            raise _mismatch(self.context, context)
        return self[scope.worker_id]

    @local.setter
    def local(self, value: ArrayLike) -> None:
        view = self.local
        if value is not view:  # ``acc.local += x`` assigns the updated view back
            view[...] = value

    def __getitem__(self, worker_id: int) -> NDArray[Any]:
        """The partial result of worker ``worker_id``."""
        if not 0 <= worker_id < self.num_workers:
            raise IndexError(
                f"worker {worker_id} has no partial result: this accumulator was made for "
                f"{self.num_workers} workers; create it with the context you map with"
            )
        partial: NDArray[Any] = self.partials[worker_id, ...]  # a view, also for shape ()
        return partial

    def result(self) -> NDArray[Any]:
        """The partial results of all workers reduced into one new array."""
        if isinstance(self.reduction, np.ufunc):
            reduced: NDArray[Any] = np.asarray(self.reduction.reduce(self.partials, axis=0))
            return reduced
        return np.asarray(functools.reduce(self.reduction, self.partials))

    def reset(self) -> None:
        """Set every partial result back to the starting value, to accumulate afresh."""
        self.partials[...] = self.fill

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without its context (pooled workers get the partials by handle).

        Raises:
            ContextMismatchError: pickled for a map running on another context (warm or
                remote workers would write into a copy).
        """
        running = mapping_context()
        if running is not None and self.context is not None and running is not self.context:
            raise _mismatch(self.context, running)
        state = self.__dict__.copy()
        state["context"] = None  # a context (its pool, its sockets) does not travel
        return state

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> NDArray[Any]:
        result = self.result()
        return result if dtype is None else result.astype(dtype)

    def __repr__(self) -> str:
        name = getattr(self.reduction, "__name__", repr(self.reduction))
        return (
            f"Accumulator(shape={self.partials.shape[1:]}, dtype={self.partials.dtype}, "
            f"reduce={name}, workers={self.num_workers})"
        )


def _mismatch(made_for: Context, running: Any) -> ContextMismatchError:
    made, runs = repr(made_for), repr(running)
    if made == runs:  # two contexts of the same settings: say they are two objects
        made = f"{made} (object at {id(made_for):#x})"
        runs = f"another {runs} (object at {id(running):#x})"
    return ContextMismatchError(
        f"this Accumulator was made for {made}, but the map runs on {runs}: its "
        "partial results would be lost or written by the wrong worker. Create the "
        "accumulator with the context you map with: pm.Accumulator(..., context=ctx), or "
        "after pm.set_default_context(...) when mapping with pm.map"
    )


def _identity(reduce: Reduction, dtype: np.dtype[Any]) -> Any:
    if isinstance(reduce, np.ufunc):
        if reduce.identity is not None:
            return reduce.identity
        if reduce in (np.maximum, np.fmax):
            return _extreme(dtype, low=True)
        if reduce in (np.minimum, np.fmin):
            return _extreme(dtype, low=False)
    name = getattr(reduce, "__name__", repr(reduce))
    raise TypeError(f"reduce={name} has no identity: give the starting value with fill=")


def _extreme(dtype: np.dtype[Any], *, low: bool) -> Any:
    if dtype.kind == "f":
        return -np.inf if low else np.inf
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min if low else info.max
    if dtype.kind == "b":
        return not low
    raise TypeError(f"no default starting value for {dtype}: give fill=")
