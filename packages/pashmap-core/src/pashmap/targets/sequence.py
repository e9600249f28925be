"""SequenceTarget: map over any ``collections.abc.Sequence``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import ClassVar, Generic, TypeVar

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

    Args:
        sequence: the sequence. It is not copied: under a forking context the workers
            see it as it was when the map started.

    Raises:
        TypeError: ``sequence`` is not a ``collections.abc.Sequence``.
    """

    description: ClassVar[str] = "sequences (list, tuple, range, any collections.abc.Sequence)"

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
        """Return ``(indices, values)`` of ``share``."""
        seq = self.sequence
        if isinstance(seq, _SLICEABLE) and share.step == 1:
            return share, seq[share.start : share.stop]
        return share, (seq[index] for index in share)
