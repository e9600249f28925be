"""NdarrayTarget: map over one axis of a numpy array."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any, ClassVar, SupportsIndex

import numpy as np
from numpy.typing import NDArray

from pashmap.target import RangeShares

__all__ = ["NdarrayTarget"]


class NdarrayTarget(RangeShares):
    """Map over a numpy array along one axis.

    Element ``i`` is the sub-array at position ``i`` along ``axis`` (for a 1-d array, the
    scalar ``array[i]``), so the kernel is called as ``kernel(worker_id, i, value)``.
    Values are views into the array, never copies. Shares are contiguous index ranges.

    Args:
        array: the array; anything ``numpy.asarray`` accepts is converted.
        axis: the axis to iterate over; ``None`` means the first axis (0). Negative
            values count from the end, as in numpy.

    Raises:
        ValueError: the array is 0-dimensional (there is nothing to iterate over).
        numpy.exceptions.AxisError: ``axis`` is out of range (a ``ValueError``).
    """

    description: ClassVar[str] = "numpy.ndarray (first axis; NdarrayTarget(a, axis=k))"
    kernel_arguments: ClassVar[tuple[str, ...]] = ("index", "value")

    def __init__(self, array: NDArray[Any] | Any, axis: SupportsIndex | None = None) -> None:
        array = np.asarray(array)
        if array.ndim == 0:
            raise ValueError(
                "cannot map over a 0-dimensional array; pass an array with at least one axis"
            )
        self.array: NDArray[Any] = array
        self.axis = _normalize_axis(0 if axis is None else axis, array.ndim)
        self._moved = np.moveaxis(array, self.axis, 0) if self.axis else array

    @classmethod
    def accepts(cls, obj: object) -> bool:
        """Whether ``obj`` is a ``numpy.ndarray`` (or a subclass) with at least one axis."""
        return isinstance(obj, np.ndarray) and obj.ndim > 0

    def __len__(self) -> int:
        return int(self.array.shape[self.axis])

    def __repr__(self) -> str:
        return f"NdarrayTarget(<array {self.array.shape} {self.array.dtype}>, axis={self.axis})"

    def iterate(self, share: range, /) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, array[..., index, ...])`` for every index of ``share``."""
        return zip(*self.iterate_columns(share), strict=True)

    def iterate_columns(self, share: range, /) -> tuple[range, NDArray[Any]]:
        """Return ``(indices, array block)`` of ``share``; iterating the block gives views."""
        return share, self._moved[share.start : share.stop]


def _normalize_axis(axis: SupportsIndex, ndim: int) -> int:
    index = operator.index(axis)
    if not -ndim <= index < ndim:
        raise np.exceptions.AxisError(index, ndim)
    return index % ndim
