"""How targets are cut into shares: guided for targets that can be cut by size."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import pashmap as pm
from pashmap.contexts import GUIDED_FRACTION, SHARES_PER_WORKER, guided_sizes, split_target
from pashmap.targets import contiguous_ranges


@pytest.mark.parametrize("length", [0, 1, 7, 16, 200, 400, 10_000, 1_000_000])
@pytest.mark.parametrize("workers", [1, 2, 3, 8, 32])
def test_guided_sizes_shrink_and_add_up(length: int, workers: int) -> None:
    sizes = guided_sizes(length, workers)
    assert sum(sizes) == length
    assert all(size >= 1 for size in sizes)
    assert list(sizes) == sorted(sizes, reverse=True)  # large first, small last
    if length:
        # No share is more than a 1 / (GUIDED_FRACTION * workers) part of what is left,
        # except where the smallest size allowed is larger.
        smallest = max(1, -(-length // (256 * workers)))
        left = length
        for size in sizes:
            assert size <= max(smallest, -(-left // (GUIDED_FRACTION * workers)))
            left -= size


def test_guided_shares_end_with_single_elements_and_are_fewer() -> None:
    sizes = guided_sizes(400, 2)
    assert sizes[-3:] == (1, 1, 1)  # the expensive end of a skewed map is shared finely
    assert len(sizes) < SHARES_PER_WORKER * 2  # and fewer shares than equal ones
    # A long map stops shrinking at a 256th per worker: tiny shares would cost more
    # (a few microseconds each) than they balance.
    long = guided_sizes(1_000_000, 2)
    assert min(long[:-1]) == -(-1_000_000 // 512)  # 1954; the last one is what is left
    assert long[-1] <= 1954
    assert len(long) < SHARES_PER_WORKER * 2


def test_guided_targets_are_cut_by_size() -> None:
    shares = split_target(pm.NdarrayTarget(np.arange(400.0)), 2, {}, "ProcessContext")
    assert tuple(len(share) for share in shares) == guided_sizes(400, 2)
    assert [i for share in shares for i in share] == list(range(400))


def test_shares_option_asks_for_equal_shares() -> None:
    shares = split_target(pm.SequenceTarget(list(range(200))), 2, {"shares": 4}, "X")
    assert shares == [range(50), range(50, 100), range(100, 150), range(150, 200)]


class Plain:
    """A MapTarget with no split_sizes: cut into equal shares."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.asked: list[int] = []

    def split(self, n: int) -> list[range]:
        self.asked.append(n)
        return contiguous_ranges(self.n, n)

    def iterate(self, share: range) -> Iterator[tuple[int, int]]:
        for index in share:
            yield index, index * 10


def test_other_targets_get_equal_shares() -> None:
    target = Plain(1000)
    shares = split_target(target, 2, {}, "ProcessContext")
    assert target.asked == [SHARES_PER_WORKER * 2]
    assert len(shares) == SHARES_PER_WORKER * 2
