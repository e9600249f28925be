"""Allocation of output arrays, shared by every context and the module-level API.

A context provides one low-level method, ``allocate(shape, dtype, order)``, returning an
uninitialised array in memory its workers can write to. Everything users call --
``array``, ``empty``, ``zeros``, ``ones``, ``full`` and the ``*_like`` variants -- is
built here on top of it, so every context behaves the same way.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, Literal, Protocol, SupportsIndex

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from pashmap.machine import format_bytes

__all__ = [
    "Allocator",
    "LikeOrder",
    "Order",
    "ShapeLike",
    "allocate_array",
    "format_nbytes",
    "like_order",
    "normalize_order",
    "normalize_shape",
]

Order = Literal["C", "F"]
# The *_like helpers also take numpy's 'A' and 'K': the prototype's order (C or F).
LikeOrder = Literal["C", "F", "A", "K"]
ShapeLike = SupportsIndex | Sequence[SupportsIndex]


class Allocator(Protocol):
    """What :func:`allocate_array` needs of a context: its workers and its allocator."""

    @property
    def num_workers(self) -> int:
        """The number of workers, for ``per_worker=True``."""
        ...

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype[Any], order: Order) -> NDArray[Any]:
        """Uninitialised memory the context's workers can write to."""
        ...


def normalize_shape(shape: ShapeLike) -> tuple[int, ...]:
    """Turn an int or a sequence of ints into a shape tuple.

    Raises:
        TypeError: ``shape`` is neither an integer nor a sequence of integers.
        ValueError: a dimension is negative.
    """
    try:
        dims = (
            (operator.index(shape),)
            if not isinstance(shape, Sequence)
            else tuple(operator.index(d) for d in shape)
        )
    except TypeError:
        raise TypeError(
            f"shape must be an int or a tuple of ints, e.g. 100 or (10, 20); got {shape!r}"
        ) from None
    if any(d < 0 for d in dims):
        raise ValueError(f"negative dimensions are not allowed, got shape {dims}")
    return dims


def normalize_order(order: str | None) -> Order:
    """Check a memory order; ``None`` means ``'C'``.

    Raises:
        ValueError: ``order`` is not ``'C'`` or ``'F'``.
    """
    if order is None or order == "C":
        return "C"
    if order == "F":
        return "F"
    raise ValueError(
        f"order must be 'C' (row-major) or 'F' (column-major), or for the *_like helpers "
        f"'A'/'K' (as the prototype), got {order!r}"
    )


def like_order(order: str | None, prototype: ArrayLike) -> Order | None:
    """The memory order a ``*_like`` helper allocates in: numpy's ``'A'`` and ``'K'``
    mean the prototype's (``'F'`` when it is column-major only, else ``'C'``); other
    values are left for :func:`normalize_order` to check."""
    if order not in ("A", "K"):
        return order  # type: ignore[return-value]  # checked by normalize_order
    template = np.asarray(prototype)
    column_major = template.flags.f_contiguous and not template.flags.c_contiguous
    return "F" if column_major else "C"


def format_nbytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> str:
    """The size of an array of ``shape`` and ``dtype``, for error messages (e.g. '1.50 GiB')."""
    return format_bytes(float(np.prod(shape, dtype=np.float64)) * dtype.itemsize)


def allocate_array(
    context: Allocator,
    shape: ShapeLike | None = None,
    dtype: DTypeLike | None = None,
    *,
    order: str | None = None,
    fill: ArrayLike | None = None,
    like: ArrayLike | None = None,
    per_worker: bool = False,
) -> NDArray[Any]:
    """Allocate an array with ``context.allocate`` and fill it; see ``pashmap.array``."""
    if like is None and shape is None and isinstance(fill, np.ndarray):
        like = fill
    if like is not None:
        template = np.asarray(like)
        if shape is None:
            shape = template.shape
        if dtype is None:
            dtype = template.dtype
        if order is None and template.flags.f_contiguous and not template.flags.c_contiguous:
            order = "F"
    if shape is None:
        raise TypeError(
            "array() needs a shape, e.g. pm.array(100) or pm.array((10, 20)), "
            "or like=an_array to copy shape, dtype and order from"
        )
    dims = normalize_shape(shape)
    memory_order = normalize_order(order)
    np_dtype = np.dtype(np.float64 if dtype is None else dtype)
    if per_worker:
        workers = context.num_workers
        dims = (workers, *dims) if memory_order == "C" else (*dims, workers)
    out = context.allocate(dims, np_dtype, memory_order)
    if fill is not None:
        if per_worker and memory_order == "F" and np.ndim(fill) > 0:
            fill = np.expand_dims(np.asarray(fill), -1)  # the worker axis is last in F order
        try:
            out[...] = fill
        except ValueError as exc:
            raise ValueError(
                f"fill must be a scalar or an array that broadcasts to shape {dims}: {exc}"
            ) from exc
    return out
