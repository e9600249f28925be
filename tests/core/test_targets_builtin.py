"""The built-in targets: sequences, numpy arrays and xarray DataArrays."""

from __future__ import annotations

import collections
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import pashmap as pm


def entries(target: pm.MapTarget[Any], n: int) -> list[tuple[Any, ...]]:
    return [entry for share in target.split(n) for entry in target.iterate(share)]


def collect(worker_id: int, index: int, value: Any) -> tuple[int, Any]:
    return index, value


class Squares(Sequence[int]):
    """A Sequence that supports only integer indexing, not slicing."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:  # type: ignore[override]
        if not 0 <= index < self.n:
            raise IndexError(index)
        return index * index


@pytest.mark.parametrize(
    "sequence",
    [
        [3, 1, 4, 1, 5],
        (3, 1, 4, 1, 5),
        range(5, 50, 7),
        "hello",
        b"bytes",
        Squares(6),
        collections.deque([1, 2, 3]),
        collections.UserList([9, 8]),
    ],
    ids=["list", "tuple", "range", "str", "bytes", "custom", "deque", "UserList"],
)
@pytest.mark.parametrize("n", [1, 2, 3, 100])
def test_sequence_target_gives_index_and_value(sequence: Sequence[Any], n: int) -> None:
    target = pm.SequenceTarget(sequence)
    assert len(target) == len(sequence)
    assert entries(target, n) == list(enumerate(sequence))
    assert pm.map(collect, sequence) == list(enumerate(sequence))


def test_sequence_target_needs_a_sequence() -> None:
    with pytest.raises(TypeError, match="Sequence"):
        pm.SequenceTarget({1, 2})  # type: ignore[arg-type]


def test_empty_sequence_maps_to_empty_list() -> None:
    assert pm.SequenceTarget([]).split(4) == []
    assert pm.map(collect, []) == []
    assert pm.map(collect, np.empty(0)) == []


class LongList(list):  # type: ignore[type-arg]
    """A list whose len() says 20 while it holds 10 items."""

    def __len__(self) -> int:
        return 20


class LongSquares(Squares):
    """A Sequence whose len() says twice what its indexing gives."""

    def __len__(self) -> int:
        return 2 * self.n


def _returns_none(worker_id: int, index: int, value: Any) -> None:
    return None


@pytest.mark.parametrize("make", [lambda: LongList(range(10)), lambda: LongSquares(10)])
@pytest.mark.parametrize("kernel", [collect, _returns_none])
def test_a_sequence_whose_len_overstates_raises_in_every_context(
    context_name: str, make: Any, kernel: Any
) -> None:
    # Before: 'processes' returned 20 values where 'local' and 'threads' returned 10
    # (LongList with a kernel returning None), or all raised a bare IndexError.
    sequence = make()
    name = type(sequence).__name__
    message = rf"{name}: len\(\) says 20 but indexing stopped at 10"
    workers = 1 if context_name == "local" else 2
    with (
        pm.use_context(context_name, num_workers=workers),
        pytest.raises(IndexError, match=message),
    ):
        pm.map(kernel, sequence)


def test_ndarray_target_iterates_the_first_axis_by_default() -> None:
    a = np.arange(12.0).reshape(4, 3)
    target = pm.NdarrayTarget(a)
    assert target.axis == 0
    assert len(target) == 4
    got = entries(target, 3)
    assert [i for i, _ in got] == [0, 1, 2, 3]
    for i, row in got:
        np.testing.assert_array_equal(row, a[i])
        assert np.shares_memory(row, a)  # a view, not a copy


@pytest.mark.parametrize(("axis", "expected_len"), [(1, 3), (2, 5), (-1, 5), (-3, 4)])
def test_ndarray_target_iterates_any_axis(axis: int, expected_len: int) -> None:
    a = np.arange(60).reshape(4, 3, 5)
    target = pm.NdarrayTarget(a, axis=axis)
    assert len(target) == expected_len
    for i, value in entries(target, 2):
        np.testing.assert_array_equal(value, np.take(a, i, axis=axis))


def test_ndarray_target_over_a_1d_array_gives_scalars() -> None:
    a = np.array([1.5, 2.5])
    assert pm.map(collect, a) == [(0, 1.5), (1, 2.5)]
    assert isinstance(pm.map(collect, a)[0][1], np.float64)


def test_ndarray_target_bad_arguments() -> None:
    with pytest.raises(ValueError, match="0-dimensional"):
        pm.NdarrayTarget(np.float64(3.0))
    with pytest.raises(np.exceptions.AxisError):
        pm.NdarrayTarget(np.zeros((2, 2)), axis=2)
    with pytest.raises(TypeError):
        pm.NdarrayTarget(np.zeros(2), axis=0.5)  # type: ignore[arg-type]


def test_a_0d_array_is_not_a_target() -> None:
    with pytest.raises(TypeError, match="cannot map over"):
        pm.map(collect, np.float64(1.0) * np.ones(()))


def test_explicit_ndarray_target_maps_over_another_axis() -> None:
    a = np.arange(6).reshape(2, 3)
    sums = pm.map(lambda w, i, column: int(column.sum()), pm.NdarrayTarget(a, axis=1))
    assert sums == [3, 5, 7]


def test_dataarray_target() -> None:
    xr = pytest.importorskip("xarray")
    da = xr.DataArray(
        np.arange(12).reshape(3, 4), dims=("train", "pulse"), coords={"train": [10, 11, 12]}
    )
    got = pm.map(lambda w, i, v: (i, int(v.coords["train"]), v.values.tolist()), da)
    assert got == [(0, 10, [0, 1, 2, 3]), (1, 11, [4, 5, 6, 7]), (2, 12, [8, 9, 10, 11])]
    by_pulse = pm.DataArrayTarget(da, dim="pulse")
    assert len(by_pulse) == 4
    assert [v.values.tolist() for _, v in entries(by_pulse, 3)] == [
        [0, 4, 8],
        [1, 5, 9],
        [2, 6, 10],
        [3, 7, 11],
    ]
    with pytest.raises(ValueError, match="'nope' is not a dimension"):
        pm.DataArrayTarget(da, dim="nope")
    with pytest.raises(TypeError, match="DataArray"):
        pm.DataArrayTarget(np.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0-dimensional"):
        pm.DataArrayTarget(xr.DataArray(1.0))


def test_core_never_imports_xarray() -> None:
    code = (
        "import sys, numpy as np, pashmap as pm\n"
        "pm.map(lambda w, i, v: v, [1, 2])\n"
        "pm.map(lambda w, i, v: v, np.zeros(2))\n"
        "try:\n    pm.map(lambda w, i, v: v, {1: 2})\nexcept TypeError:\n    pass\n"
        "assert 'xarray' not in sys.modules, 'pashmap imported xarray'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
