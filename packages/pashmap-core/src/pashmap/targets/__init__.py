"""The kit for writing a map target, and the targets that ship with pashmap-core.

Everything a target author needs: the :class:`MapTarget` protocol and its optional
extensions (:class:`ColumnarTarget`, :class:`GuidedTarget`), :class:`SupportsMapTarget`
for types that name their own target, :class:`TargetFactory` for the ``pashmap.targets``
entry-point group, :class:`RangeShares` (``split`` and ``split_sizes`` for a target whose
shares are ranges of positions) and the range helpers beneath it, :func:`qualified_name`
to name a type in an error message as pashmap does, and :func:`resolve_target`, what
``map`` does to turn an object into a target. The built-in
targets (:class:`SequenceTarget`, :class:`NdarrayTarget`, :class:`DataArrayTarget`) are
made on :class:`RangeShares` and registered in that entry-point group like any plugin's.
"""

from pashmap.registry import is_map_target, register_target, resolve_target
from pashmap.remote_exceptions import qualified_name
from pashmap.target import (
    ColumnarTarget,
    GuidedTarget,
    MapTarget,
    RangeShares,
    SupportsMapTarget,
    TargetFactory,
    contiguous_ranges,
    ranges_of_sizes,
)
from pashmap.targets.dataarray import DataArrayTarget
from pashmap.targets.ndarray import NdarrayTarget
from pashmap.targets.sequence import SequenceTarget

__all__ = [
    "ColumnarTarget",
    "DataArrayTarget",
    "GuidedTarget",
    "MapTarget",
    "NdarrayTarget",
    "RangeShares",
    "SequenceTarget",
    "SupportsMapTarget",
    "TargetFactory",
    "contiguous_ranges",
    "is_map_target",
    "qualified_name",
    "ranges_of_sizes",
    "register_target",
    "resolve_target",
]
