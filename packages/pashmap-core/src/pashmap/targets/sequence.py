"""SequenceTarget: map over any ``collections.abc.Sequence``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from pashmap.remote_exceptions import qualified_name
from pashmap.target import RangeShares

__all__ = ["SequenceTarget"]

T = TypeVar("T")

# Types whose slices are cheap views or shallow copies of the same elements.
_SLICEABLE = (list, tuple, range, str, bytes, bytearray, memoryview)
_BUILTIN_SEQUENCES = frozenset(_SLICEABLE)


class SequenceTarget(RangeShares, Generic[T]):
    """Map over a sequence (list, tuple, range, str, or any ``collections.abc.Sequence``).

    Each element gives the kernel ``(index, value)``, so the kernel is called as
    ``kernel(worker_id, index, sequence[index])``. Shares are contiguous index ranges.

    The shares are cut by ``len(sequence)``, so ``len()`` must agree with indexing:
    a sequence whose ``len()`` says more than its indexing gives raises ``IndexError``
    naming its class ("len() says 20 but indexing stopped at 10") under every context,
    rather than a result whose length depends on the context.

    Args:
        sequence: the sequence. It is not copied: under a forking context the workers
            see it as it was when the map started.

    Raises:
        TypeError: ``sequence`` is not a ``collections.abc.Sequence``.
    """

    description: ClassVar[str] = "sequences (list, tuple, range, any collections.abc.Sequence)"
    kernel_arguments: ClassVar[tuple[str, ...]] = ("index", "value")

    def __init__(self, sequence: Sequence[T]) -> None:
        if not isinstance(sequence, Sequence):
            raise TypeError(
                f"SequenceTarget needs a collections.abc.Sequence, got {type(sequence).__name__}"
            )
        self.sequence = sequence

    @classmethod
    def accepts(cls, obj: object) -> bool:
        """Whether ``obj`` is a ``collections.abc.Sequence``."""
        # The built-in sequences first: no trip through the ABC machinery at every map.
        return type(obj) in _BUILTIN_SEQUENCES or isinstance(obj, Sequence)

    def __len__(self) -> int:
        return len(self.sequence)

    def __repr__(self) -> str:
        return f"SequenceTarget(<{type(self.sequence).__name__} of {len(self.sequence)}>)"

    def iterate(self, share: range, /) -> Iterator[tuple[int, T]]:
        """Yield ``(index, value)`` for every index of ``share``."""
        return zip(*self.iterate_columns(share), strict=True)

    def iterate_columns(self, share: range, /) -> tuple[range, Iterable[T]]:
        """Return ``(indices, values)`` of ``share``.

        Raises:
            IndexError: the sequence has fewer elements than its ``len()`` said (when
                the values are taken, for a sequence that cannot be sliced).
        """
        seq = self.sequence
        if isinstance(seq, _SLICEABLE) and share.step == 1:
            values = seq[share.start : share.stop]
            # A slice stops at the real end: a list subclass overstating its len() would
            # give fewer values than indices, and the contexts would disagree on how many.
            if len(values) != len(share):
                raise _overstated(seq, share.start + len(values))
            return share, values
        return share, _values(seq, share)


def _values(seq: Sequence[T], share: range) -> Iterator[T]:
    index = share.start
    try:
        for index in share:
            yield seq[index]
    except IndexError as exc:
        raise _overstated(seq, index) from exc


def _overstated(seq: Sequence[Any], stop: int) -> IndexError:
    name = qualified_name(type(seq))
    return IndexError(
        f"{name}: len() says {len(seq)} but indexing stopped at {stop}; "
        f"{name}.__len__ must give the number of elements that indexing reaches "
        "(or map over list(obj), which takes what iteration gives)"
    )
