"""The MapTarget protocol: what ``map`` walks over, and how it is cut into shares.

A *map target* knows two things about a collection:

* how to cut it into *shares*, pieces of work that a context hands to its workers
  (:meth:`MapTarget.split`), and
* how to walk one share, producing for each element the arguments the kernel gets after
  ``worker_id`` (:meth:`MapTarget.iterate`).

Contexts ask for more shares than they have workers so that a worker that finishes
early takes the next share (dynamic load balancing). Shares are opaque to contexts: they
are only ever passed back to :meth:`MapTarget.iterate` of the target that made them.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = [
    "ColumnarTarget",
    "GuidedTarget",
    "MapTarget",
    "RangeShares",
    "SupportsMapTarget",
    "TargetFactory",
    "contiguous_ranges",
    "ranges_of_sizes",
]

ShareT = TypeVar("ShareT")


@runtime_checkable
class MapTarget(Protocol[ShareT]):
    """A collection that pashmap can map a kernel over.

    Implement the two methods below (no base class is needed) to map over anything:
    a custom file format, a database query, a list of work items that must stay grouped.
    An object can also name its own target by defining ``__pashmap_target__(self)``
    returning a MapTarget; that takes precedence over every registered target.

    Optionally, a ``kernel_arguments`` attribute names the arguments each entry gives
    the kernel after ``worker_id`` (the built-in targets have ``("index", "value")``):
    ``map`` then checks, before it runs anything, that the kernel can take them, and
    says how to write it if not.

    The order of elements is the *index order*: the concatenation of
    ``iterate(share)`` over ``split(n)``, in the order ``split`` returned the shares, must
    give every element exactly once, in the same order for every ``n``. ``map`` returns
    the kernel's return values in this order.

    Example:
        A target over the lines of a text file, shared out in runs of lines:

        ```python
        class LinesTarget:
            def __init__(self, path):
                self.lines = open(path).read().splitlines()

            def split(self, n):
                return contiguous_ranges(len(self.lines), n)

            def iterate(self, share):
                for index in share:
                    yield index, self.lines[index]
        ```
    """

    def split(self, n: int, /) -> Sequence[ShareT]:
        """Cut the target into about ``n`` shares.

        Args:
            n: the number of shares wanted, ``n >= 1``. Contexts may ask for more shares
                than they have workers, to balance the load.

        Returns:
            The shares, in index order. Fewer than ``n`` when the target has fewer
            elements than ``n`` (never an empty share then); an empty sequence for an
            empty target. A target may return a different number when its data suggest
            better boundaries (e.g. file boundaries), but should stay close to ``n``.

        Raises:
            ValueError: ``n`` is smaller than 1.
        """
        ...

    def iterate(self, share: ShareT, /) -> Iterable[tuple[Any, ...]]:
        """Walk one share.

        Args:
            share: one of the objects returned by :meth:`split` on this target.

        Returns:
            An iterable of argument tuples, one per element of the share, in index
            order. The kernel is called as ``kernel(worker_id, *entry)``. By convention
            the first item of each tuple is the element's index in the whole target.

        This is called in the worker (a forked process or a thread), so it is the place
        to open per-process resources such as files.
        """
        ...


@runtime_checkable
class SupportsMapTarget(Protocol):
    """An object that names its own MapTarget; ``map`` asks it before any registered target.

    Examples:
        ```python
        class Scan:
            def __pashmap_target__(self):
                return pm.NdarrayTarget(self.frames)
        ```
    """

    def __pashmap_target__(self) -> MapTarget[Any]:
        """Return the MapTarget that ``map`` should walk over for this object."""
        ...


@runtime_checkable
class ColumnarTarget(MapTarget[ShareT], Protocol[ShareT]):
    """A MapTarget that can also hand out a share as columns, for lower per-element cost.

    Optional: contexts use :meth:`iterate_columns` when a target has it, and
    :meth:`MapTarget.iterate` otherwise. Calling ``kernel(worker_id, *entry)`` through
    columns avoids building a tuple per element, which matters for cheap kernels over
    millions of elements.
    """

    def iterate_columns(self, share: ShareT, /) -> tuple[Iterable[Any], ...]:
        """Return the share's argument columns: ``zip(*columns)`` equals ``iterate(share)``.

        Args:
            share: one of the objects returned by :meth:`split` on this target.

        Returns:
            One iterable per kernel argument after ``worker_id``, e.g.
            ``(range_of_indices, values)``, all of the share's length.
        """
        ...


@runtime_checkable
class GuidedTarget(MapTarget[ShareT], Protocol[ShareT]):
    """A MapTarget that can be cut into shares of given sizes, for better load balancing.

    Optional: when a target has :meth:`split_sizes` (and ``len()``), the parallel
    contexts cut it themselves, into large shares first and ever smaller ones towards
    the end (*guided* scheduling): a worker starting the last share then finishes soon
    after the others, even when the elements at the end cost the most, and a long map
    needs fewer shares than with equal sizes. Otherwise they ask :meth:`MapTarget.split`
    for equal shares. ``map(..., shares=n)`` always uses ``split(n)``.

    The built-in targets and pashmap-xfel's are guided targets; a target whose shares
    are ranges of element positions is one with a single line
    (:func:`ranges_of_sizes`).
    """

    def __len__(self) -> int:
        """The number of elements."""
        ...

    def split_sizes(self, sizes: Sequence[int], /) -> Sequence[ShareT]:
        """Cut the target into consecutive shares of exactly these sizes.

        Args:
            sizes: the number of elements of each share, in index order; all ``>= 1``,
                adding up to ``len(self)``.

        Returns:
            One share per size, in index order, each accepted by :meth:`MapTarget.iterate`.

        Raises:
            ValueError: a size is smaller than 1, or the sizes do not add up to
                ``len(self)``.
        """
        ...


@runtime_checkable
class TargetFactory(Protocol):
    """What the ``pashmap.targets`` entry-point group registers: a maker of targets.

    Usually a MapTarget class with an ``accepts`` classmethod. A plugin registers it in
    its ``pyproject.toml``:

    ```toml
    [project.entry-points."pashmap.targets"]
    mytype = "mypackage.target:MyTypeTarget"
    ```

    ``accepts`` must be cheap and must not import heavy modules: it is asked about every
    object that ``map`` has to wrap. Check ``sys.modules`` for the library rather than
    importing it (an object of that library cannot exist unless it was imported).
    An optional ``description`` string names the accepted types in error messages.
    """

    def accepts(self, obj: object, /) -> bool:
        """Whether this factory can wrap ``obj``."""
        ...

    def __call__(self, obj: Any, /) -> MapTarget[Any]:
        """Wrap ``obj`` in a MapTarget."""
        ...


def contiguous_ranges(length: int, n: int) -> list[range]:
    """Cut ``range(length)`` into at most ``n`` contiguous ranges of near-equal size.

    The building block of targets whose elements are addressed by index.

    Args:
        length: the number of elements, ``>= 0``.
        n: the number of ranges wanted, ``>= 1``.

    Returns:
        ``min(n, length)`` non-empty ranges, in order, covering ``range(length)``; their
        sizes differ by at most one (the larger ones come first). Empty for ``length == 0``.

    Raises:
        ValueError: ``n < 1`` or ``length < 0``.
        TypeError: ``n`` or ``length`` is not an integer.
    """
    length = operator.index(length)
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"the number of shares must be at least 1, got {n}")
    if length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    n = min(n, length)
    if n == 0:
        return []
    size, extra = divmod(length, n)
    ranges = []
    start = 0
    for k in range(n):
        stop = start + size + (1 if k < extra else 0)
        ranges.append(range(start, stop))
        start = stop
    return ranges


def ranges_of_sizes(sizes: Sequence[int], length: int) -> list[range]:
    """Cut ``range(length)`` into consecutive ranges of the given sizes.

    The usual :meth:`GuidedTarget.split_sizes` of a target whose shares are ranges of
    element positions: ``return ranges_of_sizes(sizes, len(self))``.

    Args:
        sizes: the length of each range, all ``>= 1``, adding up to ``length``.
        length: the number of elements.

    Returns:
        The ranges, in order, covering ``range(length)``.

    Raises:
        ValueError: a size is smaller than 1, or the sizes do not add up to ``length``.
    """
    if not sizes:
        if length:
            raise ValueError(f"the share sizes add up to 0, not to the {length} elements")
        return []
    smallest = min(sizes)
    if smallest < 1:
        raise ValueError(f"share sizes must be at least 1, got {smallest}")
    stops = list(accumulate(sizes))
    if stops[-1] != length:
        raise ValueError(f"the share sizes add up to {stops[-1]}, not to the {length} elements")
    return list(map(range, [0, *stops[:-1]], stops))


class RangeShares(ABC):
    """A base for targets whose shares are ranges of element positions.

    Give a target class ``__len__`` and ``iterate(share)`` (each share a ``range`` of
    positions in index order) and derive it from this class: it gets :meth:`split` and
    :meth:`split_sizes`, and so is a :class:`GuidedTarget`. The built-in targets are
    made this way, and so is pashmap-xfel's.

    Example:
        The lines of a text file, as a guided target:

        ```python
        class LinesTarget(RangeShares):
            def __init__(self, path):
                self.lines = open(path).read().splitlines()

            def __len__(self):
                return len(self.lines)

            def iterate(self, share):
                for index in share:
                    yield index, self.lines[index]
        ```
    """

    __slots__ = ()

    @abstractmethod
    def __len__(self) -> int:
        """The number of elements."""

    def split(self, n: int, /) -> list[range]:
        """Cut into at most ``n`` contiguous ranges of near-equal size (MapTarget).

        Raises:
            ValueError: ``n < 1``.
        """
        return contiguous_ranges(len(self), n)

    def split_sizes(self, sizes: Sequence[int], /) -> list[range]:
        """Cut into contiguous ranges of the given sizes (GuidedTarget).

        Raises:
            ValueError: a size is smaller than 1, or the sizes do not add up to ``len(self)``.
        """
        return ranges_of_sizes(sizes, len(self))
