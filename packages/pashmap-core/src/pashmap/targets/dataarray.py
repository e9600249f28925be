"""DataArrayTarget: map over one dimension of an ``xarray.DataArray``.

This module never imports xarray: the target is only considered for objects of an
already imported xarray, so ``import pashmap`` stays cheap and xarray stays optional.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from pashmap.target import RangeShares

if TYPE_CHECKING:
    import xarray

__all__ = ["DataArrayTarget"]


class DataArrayTarget(RangeShares):
    """Map over an ``xarray.DataArray`` along one dimension.

    Element ``i`` is ``data_array[{dim: i}]``, a DataArray with its coordinates, so the
    kernel is called as ``kernel(worker_id, i, value)``. Shares are contiguous index
    ranges along ``dim``.

    Args:
        data_array: the DataArray.
        dim: the dimension to iterate over; ``None`` means the first one.

    Raises:
        TypeError: ``data_array`` is not an ``xarray.DataArray``.
        ValueError: the DataArray has no dimensions, or ``dim`` is not one of them (the
            message lists the dimensions it has).
    """

    description: ClassVar[str] = "xarray.DataArray (first dim; DataArrayTarget(a, dim=...))"
    kernel_arguments: ClassVar[tuple[str, ...]] = ("index", "value")

    def __init__(self, data_array: xarray.DataArray, dim: Hashable | None = None) -> None:
        if not _is_data_array(data_array):
            raise TypeError(
                f"DataArrayTarget needs an xarray.DataArray, got {type(data_array).__name__}"
            )
        dims = tuple(data_array.dims)
        if not dims:
            raise ValueError("cannot map over a 0-dimensional DataArray")
        if dim is None:
            dim = dims[0]
        elif dim not in dims:
            raise ValueError(f"dim {dim!r} is not a dimension of the DataArray; it has {dims}")
        self.data_array = data_array
        self.dim = dim

    @classmethod
    def accepts(cls, obj: object) -> bool:
        """Whether ``obj`` is a DataArray with at least one dimension.

        False whenever xarray has not been imported, without importing it.
        """
        return _is_data_array(obj) and bool(obj.dims)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return int(self.data_array.sizes[self.dim])

    def __repr__(self) -> str:
        return f"DataArrayTarget(<DataArray {dict(self.data_array.sizes)}>, dim={self.dim!r})"

    def iterate(self, share: range, /) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, data_array[{dim: index}])`` for every index of ``share``."""
        block = self.data_array.isel({self.dim: slice(share.start, share.stop)})
        for offset, index in enumerate(share):
            yield index, block.isel({self.dim: offset})


def _is_data_array(obj: object) -> bool:
    xr = sys.modules.get("xarray")
    return xr is not None and isinstance(obj, xr.DataArray)
