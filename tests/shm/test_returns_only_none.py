"""returns_only_none: which kernels provably return None (their values need no collecting)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import pashmap as pm
from pashmap_shm.kernel_code import returns_only_none

out = np.zeros(10)


def writes(worker_id: int, index: int, value: float) -> None:
    out[index] = value


def returns_early(worker_id: int, index: int, value: float) -> None:
    if value:
        return
    out[index] = 1


def returns_value(worker_id: int, index: int, value: float) -> float:
    return value


def value_or_none(worker_id: int, index: int, value: float) -> float | None:
    return value if value else None  # a jump lands on the return with the value


def generator(worker_id: int, index: int, value: float) -> Iterator[float]:
    yield value


class Kernel:
    def method(self, worker_id: int, index: int, value: float) -> None:
        self.last = value

    def __call__(self, worker_id: int, index: int, value: float) -> None:
        pass


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [
        (writes, True),
        (returns_early, True),
        (functools.partial(writes, 0), True),
        (Kernel().method, True),
        (returns_value, False),
        (value_or_none, False),
        (generator, False),
        (Kernel(), False),  # a callable object: not looked into
        (print, False),
    ],
)
def test_which_kernels_are_known_to_return_none(kernel: Any, expected: bool) -> None:
    assert returns_only_none(kernel) is expected


def test_maps_still_return_one_value_per_element() -> None:
    # The kernels that return None give a list of None; the others their values.
    assert pm.map(value_or_none, [0.0, 2.0, 0.0]) == [None, 2.0, None]
    assert pm.map(returns_early, [1.0, 1.0]) == [None, None]


def test_alternating_kernels_get_their_own_answers() -> None:
    # The answer for the previous map's kernel is remembered without hashing its code;
    # alternating kernels (and partials of them) must each get their own.
    for _ in range(3):
        assert returns_only_none(writes) is True
        assert returns_only_none(returns_value) is False
        assert returns_only_none(functools.partial(returns_value, 0)) is False
        assert returns_only_none(functools.partial(writes, 0)) is True
