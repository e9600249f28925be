"""BaseContext: the shared implementation of the Context protocol.

Subclasses implement ``num_workers`` and the two low-level methods, ``allocate`` and
``run``; everything else (argument checking, target wrapping, option resolution, the
allocation helpers, ``with`` support) is here.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from pashmap.allocation import LikeOrder, Order, ShapeLike, allocate_array, like_order
from pashmap.kernel_check import check_kernel_arguments
from pashmap.options import resolve_options
from pashmap.registry import resolve_target
from pashmap.target import MapTarget, SupportsMapTarget
from pashmap.worker import in_worker, map_running

if TYPE_CHECKING:
    import xarray
    from typing_extensions import Self

__all__ = ["BaseContext"]

T = TypeVar("T")
R = TypeVar("R")


class BaseContext(abc.ABC):
    """Shared implementation of :class:`Context`: allocation helpers and target wrapping.

    Subclasses implement :meth:`allocate` and :meth:`run`, and set ``num_workers``.
    A context is also a context manager (``with ctx: ...``) that calls :meth:`close` on
    exit; contexts holding resources (a pool of workers) release them there.
    """

    @property
    @abc.abstractmethod
    def num_workers(self) -> int:
        """The number of workers a map runs on; ``worker_id`` is in ``range(num_workers)``."""

    @abc.abstractmethod
    def allocate(self, shape: tuple[int, ...], dtype: np.dtype[Any], order: Order) -> NDArray[Any]:
        """Return an uninitialised array that this context's workers can write to.

        The one low-level allocation method; :meth:`array` and the helpers check and
        normalise arguments, then call it.

        Args:
            shape: the shape, a tuple of non-negative ints.
            dtype: the numpy dtype.
            order: ``'C'`` or ``'F'``.

        Raises:
            MemoryError: the array cannot be allocated (the message gives the size asked).
        """

    @abc.abstractmethod
    def run(self, kernel: Callable[..., R], target: MapTarget[Any], /, **options: Any) -> list[R]:
        """Call ``kernel(worker_id, *entry)`` once for every entry of ``target``.

        The one low-level execution method; :meth:`map` checks the kernel and wraps the
        target, then calls it.

        Args:
            kernel: the function to call.
            target: a MapTarget.
            **options: options of this context kind; unknown ones raise ``TypeError``.
                :meth:`map` passes ``progress=True`` and ``timeout=<seconds>`` only when
                they are in effect.

        Returns:
            The kernel's return values, in index order.

        A context runs each worker inside :func:`pashmap.contexts.worker_scope` (so that
        :class:`~pashmap.PerWorker` values and :attr:`Accumulator.local` work), and
        calls the kernel through :func:`pashmap.contexts.run_share`, which also counts
        progress and enforces the deadline. :meth:`map` calls ``run`` inside
        :class:`pashmap.contexts.map_running`, so worker scopes entered during ``run``
        (in the calling thread, in threads it starts or in processes it forks) know
        this context (:attr:`~pashmap.contexts.WorkerScope.context`).
        """

    # ------------------------------------------------------------------ mapping
    @overload
    def map(
        self, kernel: Callable[[int, int, T], R], target: Sequence[T], /, **options: Any
    ) -> list[R]: ...

    @overload
    def map(
        self,
        kernel: Callable[[int, int, Any], R],
        target: NDArray[Any] | xarray.DataArray,
        /,
        **options: Any,
    ) -> list[R]: ...

    @overload
    def map(
        self,
        kernel: Callable[Concatenate[int, ...], R],
        target: MapTarget[Any] | SupportsMapTarget,
        /,
        **options: Any,
    ) -> list[R]: ...

    def map(self, kernel: Callable[..., R], target: object, /, **options: Any) -> list[R]:
        """Call ``kernel(worker_id, *entry)`` once for every entry of ``target``.

        Args:
            kernel: the function to apply, called as ``kernel(worker_id, *entry)``: for a
                sequence or array, ``kernel(worker_id, index, value)``. Write results into
                arrays allocated by the context (``pm.array``), or return them.
            target: what to map over: a sequence, a numpy array, an xarray DataArray
                (when xarray is imported), an object of a type registered by a plugin
                (e.g. EXtra-data runs with pashmap-xfel), anything with a
                ``__pashmap_target__()`` method, or a :class:`~pashmap.MapTarget`.
            **options: ``progress=True`` shows a progress bar (tqdm) fed by counters the
                workers bump in shared memory; ``timeout=<seconds>`` cancels the map with
                :class:`~pashmap.MapTimeoutError` (a ``TimeoutError``) when it runs longer.
                Both default to the program-wide :func:`pashmap.set_default_options`.
                Other options belong to the context kind (see its documentation);
                unknown ones raise ``TypeError``.

        Returns:
            The kernel's return values as a list in index order (a list of ``None`` when
            the kernel returns nothing).

        Raises:
            TypeError: ``kernel`` is not callable, ``target`` cannot be mapped over (the
                message says what can), an unknown option was given, or ``progress``
                is not ``True`` or ``False``.
            Exception: whatever the kernel raised, with its original type.
        """
        if not callable(kernel):
            raise TypeError(
                f"the kernel must be callable, got {type(kernel).__name__}; "
                "call it as map(kernel, target)"
            )
        mapped = resolve_target(target)
        check_kernel_arguments(kernel, mapped)
        resolved = resolve_options(options)
        if in_worker():  # a nested map runs in the outer map's workers and scopes
            return self.run(kernel, mapped, **resolved)
        with map_running(self):  # lets the workers' scopes name this context
            return self.run(kernel, mapped, **resolved)

    # --------------------------------------------------------------- allocation
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
        """Allocate an array that this context's workers can write to and the caller reads.

        Under a process context the array lives in shared memory, so a kernel's writes
        reach the caller without a copy; under the local and thread contexts it is an
        ordinary array.

        Args:
            shape: an int or a tuple of ints, e.g. ``100`` or ``(10, 20)``. May be left
                out when ``like`` (or an array ``fill``) is given.
            dtype: the numpy dtype; float64 when neither given nor taken from ``like``.
            order: ``'C'`` (row-major, the default) or ``'F'`` (column-major).
            fill: the initial value: ``None`` leaves the memory uninitialised (fastest);
                a scalar fills every element; an array is copied in (broadcast to the
                shape). An array ``fill`` with no ``shape`` and no ``like`` also gives the
                shape, dtype and order, so ``array(fill=a)`` is a copy of ``a`` that the
                workers can write to.
            like: an array to take shape, dtype and order from; explicit arguments win.
            per_worker: add an axis of length ``num_workers``, first for C order and last
                for F order, so each worker owns a slice ``out[worker_id]`` (C) or
                ``out[..., worker_id]`` (F), e.g. for race-free accumulation.

        Returns:
            The new array.

        Raises:
            TypeError: no shape was given, or it is not an int or a tuple of ints.
            ValueError: a negative dimension, an order other than ``'C'``/``'F'``, or a
                ``fill`` that does not broadcast to the shape.
            MemoryError: the array does not fit (the message gives the size asked).
        """
        return allocate_array(
            self, shape, dtype, order=order, fill=fill, like=like, per_worker=per_worker
        )

    def empty(
        self,
        shape: ShapeLike,
        dtype: DTypeLike | None = None,
        *,
        order: Order = "C",
        per_worker: bool = False,
    ) -> NDArray[Any]:
        """An uninitialised array, like ``numpy.empty``; see :func:`pashmap.empty`."""
        return self.array(shape, dtype, order=order, per_worker=per_worker)

    def zeros(
        self,
        shape: ShapeLike,
        dtype: DTypeLike | None = None,
        *,
        order: Order = "C",
        per_worker: bool = False,
    ) -> NDArray[Any]:
        """An array of zeros, like ``numpy.zeros``; see :func:`pashmap.zeros`."""
        return self.array(shape, dtype, order=order, fill=0, per_worker=per_worker)

    def ones(
        self,
        shape: ShapeLike,
        dtype: DTypeLike | None = None,
        *,
        order: Order = "C",
        per_worker: bool = False,
    ) -> NDArray[Any]:
        """An array of ones, like ``numpy.ones``; see :func:`pashmap.ones`."""
        return self.array(shape, dtype, order=order, fill=1, per_worker=per_worker)

    def full(
        self,
        shape: ShapeLike,
        fill_value: ArrayLike,
        dtype: DTypeLike | None = None,
        *,
        order: Order = "C",
        per_worker: bool = False,
    ) -> NDArray[Any]:
        """An array filled with ``fill_value``, like ``numpy.full``; see :func:`pashmap.full`."""
        if dtype is None:
            dtype = np.asarray(fill_value).dtype
        return self.array(shape, dtype, order=order, fill=fill_value, per_worker=per_worker)

    def empty_like(
        self,
        prototype: ArrayLike,
        dtype: DTypeLike | None = None,
        *,
        order: LikeOrder | None = None,
        shape: ShapeLike | None = None,
        per_worker: bool = False,
    ) -> NDArray[Any]:
        """An uninitialised array shaped like ``prototype``; see :func:`pashmap.empty_like`."""
        return self.array(
            shape, dtype, order=like_order(order, prototype), like=prototype, per_worker=per_worker
        )

    def zeros_like(
        self,
        prototype: ArrayLike,
        dtype: DTypeLike | None = None,
        *,
        order: LikeOrder | None = None,
        shape: ShapeLike | None = None,
        per_worker: bool = False,
    ) -> NDArray[Any]:
        """Zeros shaped like ``prototype``; see :func:`pashmap.zeros_like`."""
        return self.array(
            shape,
            dtype,
            order=like_order(order, prototype),
            fill=0,
            like=prototype,
            per_worker=per_worker,
        )

    def ones_like(
        self,
        prototype: ArrayLike,
        dtype: DTypeLike | None = None,
        *,
        order: LikeOrder | None = None,
        shape: ShapeLike | None = None,
        per_worker: bool = False,
    ) -> NDArray[Any]:
        """Ones shaped like ``prototype``; see :func:`pashmap.ones_like`."""
        return self.array(
            shape,
            dtype,
            order=like_order(order, prototype),
            fill=1,
            like=prototype,
            per_worker=per_worker,
        )

    def full_like(
        self,
        prototype: ArrayLike,
        fill_value: ArrayLike,
        dtype: DTypeLike | None = None,
        *,
        order: LikeOrder | None = None,
        shape: ShapeLike | None = None,
        per_worker: bool = False,
    ) -> NDArray[Any]:
        """``fill_value`` everywhere, shaped like ``prototype``; see :func:`pashmap.full_like`."""
        return self.array(
            shape,
            dtype,
            order=like_order(order, prototype),
            fill=fill_value,
            like=prototype,
            per_worker=per_worker,
        )

    # ---------------------------------------------------------------- lifetime
    def close(self) -> None:  # noqa: B027 - a no-op unless the context holds resources
        """Release what the context holds (e.g. a pool of workers). Safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_workers={self.num_workers})"
