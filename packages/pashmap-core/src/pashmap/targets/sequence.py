"""SequenceTarget: map over any ``collections.abc.Sequence``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import ClassVar, Generic, TypeVar

from pashmap.target import contiguous_ranges, ranges_of_sizes

__all__ = ["SequenceTarget"]

T = TypeVar("T")

# Types whose slices are cheap views or shallow copies of the same elements.
_SLICEABLE = (list, tuple, range, str, bytes, bytearray, memoryview)
_BUILTIN_SEQUENCES = frozenset(_SLICEABLE)


class SequenceTarget(Generic[T]):
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

    def split(self, n: int, /) -> list[range]:
        """Cut into at most ``n`` contiguous index ranges of near-equal size."""
        return contiguous_ranges(len(self.sequence), n)

    def split_sizes(self, sizes: Sequence[int], /) -> list[range]:
        """Cut into contiguous index ranges of the given sizes (see GuidedTarget)."""
        return ranges_of_sizes(sizes, len(self.sequence))

    def iterate(self, share: range, /) -> Iterator[tuple[int, T]]:
        """Yield ``(index, value)`` for every index of ``share``."""
        return zip(*self.iterate_columns(share), strict=True)

    def iterate_columns(self, share: range, /) -> tuple[range, Iterable[T]]:
        """Return ``(indices, values)`` of ``share``."""
        seq = self.sequence
        if isinstance(seq, _SLICEABLE) and share.step == 1:
            return share, seq[share.start : share.stop]
        return share, (seq[index] for index in share)
