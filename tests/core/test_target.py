"""The MapTarget protocol, contiguous_ranges, and writing your own target."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest

import pashmap as pm
import pashmap.contexts
from pashmap.targets import GuidedTarget, RangeShares, qualified_name


@pytest.mark.parametrize(
    ("length", "n", "sizes"),
    [
        (10, 1, [10]),
        (10, 3, [4, 3, 3]),
        (10, 10, [1] * 10),
        (3, 8, [1, 1, 1]),  # n > len: one element per share, never an empty share
        (0, 4, []),  # empty target: no shares
        (7, 2, [4, 3]),
    ],
)
def test_contiguous_ranges_cover_everything_in_order(length: int, n: int, sizes: list[int]) -> None:
    ranges = pm.contiguous_ranges(length, n)
    assert [len(r) for r in ranges] == sizes
    assert [i for r in ranges for i in r] == list(range(length))


@pytest.mark.parametrize("n", [0, -1])
def test_contiguous_ranges_needs_at_least_one_share(n: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        pm.contiguous_ranges(10, n)


def test_contiguous_ranges_rejects_non_integers() -> None:
    with pytest.raises(TypeError):
        pm.contiguous_ranges(10, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        pm.contiguous_ranges(-1, 2)


class WordsTarget:
    """A user-written target: the words of a text, in shares of neighbouring words."""

    def __init__(self, text: str) -> None:
        self.words = text.split()

    def split(self, n: int) -> list[range]:
        return pm.contiguous_ranges(len(self.words), n)

    def iterate(self, share: range) -> Iterator[tuple[int, str, int]]:
        for index in share:
            yield index, self.words[index], len(self.words[index])


def test_a_user_target_is_a_map_target_and_maps() -> None:
    target = WordsTarget("the quick brown fox")
    assert isinstance(target, pm.MapTarget)
    assert not isinstance(target, pm.ColumnarTarget)

    def kernel(worker_id: int, index: int, word: str, length: int) -> str:
        return f"{index}:{word}:{length}"

    assert pm.map(kernel, target) == ["0:the:3", "1:quick:5", "2:brown:5", "3:fox:3"]


def test_objects_without_the_methods_are_not_map_targets() -> None:
    assert not isinstance([1, 2], pm.MapTarget)
    assert not isinstance("a b", pm.MapTarget)  # str has split() but no iterate()


def test_builtin_targets_are_columnar_and_factories() -> None:
    for target in (pm.SequenceTarget([1]), pm.NdarrayTarget([1.0])):
        assert isinstance(target, pm.MapTarget)
        assert isinstance(target, pm.ColumnarTarget)
    for factory in (pm.SequenceTarget, pm.NdarrayTarget, pm.DataArrayTarget):
        assert isinstance(factory, pm.TargetFactory)


def test_builtin_targets_are_guided_targets() -> None:
    for target in (pm.SequenceTarget([1, 2, 3]), pm.NdarrayTarget(np.arange(3.0))):
        assert isinstance(target, pm.GuidedTarget)
        assert target.split_sizes([2, 1]) == [range(2), range(2, 3)]

    class Plain:
        def split(self, n: int) -> list[range]:
            return pm.contiguous_ranges(3, n)

        def iterate(self, share: range) -> Iterator[tuple[int]]:
            return ((i,) for i in share)

    assert isinstance(Plain(), pm.MapTarget)
    assert not isinstance(Plain(), pm.GuidedTarget)


class LinesTarget(RangeShares):
    """The example of RangeShares's docstring, on a list of lines."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def __len__(self) -> int:
        return len(self.lines)

    def iterate(self, share: range) -> Iterator[tuple[int, str]]:
        for index in share:
            yield index, self.lines[index]


def test_range_shares_make_a_guided_target_from_len_and_iterate() -> None:
    target = LinesTarget(["a", "b", "c", "d", "e"])
    assert isinstance(target, GuidedTarget)
    assert target.split(2) == [range(3), range(3, 5)]
    assert target.split(9) == [range(i, i + 1) for i in range(5)]
    assert target.split_sizes([1, 4]) == [range(1), range(1, 5)]
    with pytest.raises(ValueError, match="at least 1"):
        target.split(0)
    with pytest.raises(ValueError, match="add up to 4, not to the 5"):
        target.split_sizes([2, 2])
    assert pm.map(lambda w, i, line: line.upper(), target) == ["A", "B", "C", "D", "E"]
    with pytest.raises(TypeError, match="abstract"):
        type("NoLength", (RangeShares,), {})()  # without __len__ there is nothing to split


def test_builtin_targets_share_the_range_shares_split() -> None:
    for target_type in (pm.SequenceTarget, pm.NdarrayTarget, pm.DataArrayTarget):
        assert issubclass(target_type, RangeShares)
        assert "split" not in vars(target_type)
        assert "split_sizes" not in vars(target_type)


def test_ranges_of_sizes_cover_everything_in_order() -> None:
    assert pm.ranges_of_sizes([3, 2, 1], 6) == [range(3), range(3, 5), range(5, 6)]
    assert pm.ranges_of_sizes([], 0) == []


@pytest.mark.parametrize(
    ("sizes", "message"),
    [([2, 0, 4], "at least 1"), ([2, -1, 5], "at least 1"), ([2, 2], "add up to 4, not")],
)
def test_ranges_of_sizes_rejects_bad_sizes(sizes: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pm.ranges_of_sizes(sizes, 6)


def test_builtin_split_sizes_walk_like_split() -> None:
    values = np.arange(10.0) * 2
    for target in (pm.SequenceTarget(list(values)), pm.NdarrayTarget(values)):
        by_size = [
            entry for share in target.split_sizes([5, 3, 1, 1]) for entry in target.iterate(share)
        ]
        by_count = [entry for share in target.split(3) for entry in target.iterate(share)]
        assert by_size == by_count


class IntSplit:
    """split() returns a number instead of a sequence of shares."""

    def split(self, n: int) -> int:
        return 5

    def iterate(self, share: range) -> Iterator[tuple[int]]:
        yield from ((index,) for index in share)


class GeneratorSplit(IntSplit):
    """split() returns a generator, which has no len() and cannot be indexed."""

    def split(self, n: int) -> Iterator[range]:  # type: ignore[override]
        yield from pm.contiguous_ranges(10, n)


class BareEntries:
    """iterate() yields the indices themselves instead of argument tuples."""

    def split(self, n: int) -> list[range]:
        return pm.contiguous_ranges(10, n)

    def iterate(self, share: range) -> Iterator[int]:
        yield from share


def _identity(worker_id: int, index: int) -> int:
    return index


def _with_context(context_name: str) -> pm.contexts.Context:
    return pm.contexts.create_context(
        context_name, **({} if context_name == "local" else {"num_workers": 2})
    )


@pytest.mark.parametrize("target", [IntSplit(), GeneratorSplit()], ids=type)
def test_a_split_that_returns_no_sequence_is_named(context_name: str, target: object) -> None:
    # Before: "object of type 'int' has no len()" or "'int' object is not iterable".
    with _with_context(context_name) as context, pytest.raises(TypeError) as info:
        context.map(_identity, target)
    message = str(info.value)
    assert f"{type(target).__name__}.split(n) must return a sequence of shares" in message
    assert "got " in message


@pytest.mark.parametrize("timeout", [None, 60])
def test_an_iterate_that_yields_no_tuples_is_named(
    context_name: str, timeout: float | None
) -> None:
    # Before: "'int' object is not iterable", naming neither the target nor the contract.
    with _with_context(context_name) as context, pytest.raises(TypeError) as info:
        context.map(_identity, BareEntries(), timeout=timeout)
    message = str(info.value)
    assert "BareEntries.iterate(share) must yield one tuple of kernel arguments" in message
    assert re.search(r"it yielded \d+ \(int\)", message)


def test_a_kernel_type_error_is_not_blamed_on_the_target(context_name: str) -> None:
    def takes_two(worker_id: int, index: int) -> int:
        return index

    def raises(worker_id: int, index: int, word: str, length: int) -> None:
        raise TypeError("from the kernel")

    with _with_context(context_name) as context:
        with pytest.raises(TypeError, match=r"^from the kernel$"):
            context.map(raises, WordsTarget("a b"))
        with pytest.raises(TypeError, match="positional argument"):
            context.map(takes_two, WordsTarget("a b"))


def test_qualified_name_names_types_as_the_error_messages_do() -> None:
    assert qualified_name(int) == "int"
    assert qualified_name(LinesTarget) == f"{__name__}.LinesTarget"
    assert qualified_name(np.ndarray) == "numpy.ndarray"
