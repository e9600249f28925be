"""The output transport: what kernels write reaches the caller, only that travels back,
and two shares writing the same element is an error naming the array."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import pashmap as pm
from pashmap_dask import ConflictingWritesError, DaskContext
from pashmap_dask.writes import WriteBack, track, uniform_value, written_runs


def reference(kernel: Any, target: Any, *arrays: np.ndarray) -> list[np.ndarray]:
    """What LocalContext leaves in copies of ``arrays`` (the kernel takes them last)."""
    copies = [a.copy() for a in arrays]
    with pm.LocalContext() as local:
        local.map(lambda w, *entry: kernel(w, *entry, *copies), target)
    return copies


# ------------------------------------------------------------------ without a cluster
def test_uniform_value_tells_filled_arrays_from_fresh_ones() -> None:
    assert uniform_value(np.zeros(10**6)) == bytes(8)
    assert uniform_value(np.full((3, 4), 2.5)) == np.float64(2.5).tobytes()
    assert uniform_value(np.zeros((0, 3))) == bytes(8)
    data = np.zeros(10**6)
    data[-1] = 1
    assert uniform_value(data) is None
    assert uniform_value(np.asfortranarray(np.ones((4, 5), np.int16))) == np.int16(1).tobytes()
    negative_zero = np.zeros(3)
    negative_zero[1] = -0.0
    assert uniform_value(negative_zero) is None


@pytest.mark.parametrize("order", ["C", "F"])
def test_tracked_writes_of_every_kind_become_runs(order: str) -> None:
    root = np.zeros((50, 4, 3), order=order)
    tracked, writes = track(root, per_worker=False)
    tracked[3] = 1  # a row
    tracked[5, :, 2] = 2  # part of a row
    tracked[7][1] += 3  # through a view, in place
    np.add(tracked[9], 1, out=tracked[9])  # a ufunc's out=
    np.copyto(tracked[11, 0], 4)
    tracked[13, 2].fill(5)
    tracked[-1, 0, 0] = 6
    expected = np.zeros_like(root)
    expected[3] = 1
    expected[5, :, 2] = 2
    expected[7][1] += 3
    expected[9] += 1
    expected[11, 0] = 4
    expected[13, 2] = 5
    expected[-1, 0, 0] = 6
    caller = np.full_like(root, -1)
    write_back = WriteBack(caller, "'out'", per_worker=False)
    write_back.apply(written_runs(writes, 0))
    written = caller != -1
    np.testing.assert_array_equal(caller[written], expected[written])
    assert written.sum() == 12 + 4 + 3 + 12 + 3 + 3 + 1
    assert type(tracked * 2) is np.ndarray  # arithmetic gives plain arrays


def test_nothing_written_sends_nothing() -> None:
    tracked, writes = track(np.zeros((10, 10)), per_worker=False)
    assert float(tracked.sum()) == 0.0
    assert written_runs(writes, 0) == []


def test_a_row_travels_as_its_bytes_and_a_partial_row_as_mask_and_values() -> None:
    tracked, writes = track(np.zeros((1000, 100)), per_worker=False)
    tracked[10:20] = 1.0
    runs = written_runs(writes, 0)
    assert [(r.start, r.length, r.mask) for r in runs] == [(1000, 1000, None)]
    tracked2, writes2 = track(np.zeros((1000, 100)), per_worker=False)
    tracked2[500, 3] = 7.0
    tracked2[500, 7] = 8.0
    (run,) = written_runs(writes2, 0)
    assert (run.start, run.length) == (50003, 5)
    assert run.values.tolist() == [7.0, 8.0]
    assert np.unpackbits(run.mask, count=5).tolist() == [1, 0, 0, 0, 1]


def test_write_back_claims_whole_and_partial_runs() -> None:
    from pashmap_dask.writes import Run

    caller = np.zeros(100)
    write_back = WriteBack(caller, "'out'", per_worker=False)
    write_back.apply([Run(10, 10, np.ones(10), None)])
    write_back.apply([Run(30, 4, np.array([2.0, 2.0]), np.packbits([1, 0, 0, 1]))])
    write_back.apply([Run(31, 2, np.array([3.0, 3.0]), None)])  # between the partial's two
    write_back.apply([Run(0, 10, np.ones(10), None)])  # next to the first
    assert caller[:20].tolist() == [1.0] * 20
    assert caller[30:34].tolist() == [2.0, 3.0, 3.0, 2.0]
    for clash, element in (
        (Run(19, 2, np.zeros(2), None), (19,)),
        (Run(25, 10, np.zeros(1), np.packbits([0] * 8 + [1, 0])), (33,)),
        (Run(5, 3, np.zeros(1), np.packbits([0, 0, 1])), (7,)),
    ):
        with pytest.raises(ConflictingWritesError) as caught:
            write_back.apply([clash])
        assert caught.value.element == element


# ------------------------------------------------------------------ on the cluster
def test_writes_of_every_kind_match_local_context(ctx: DaskContext) -> None:
    def kernel(worker_id: int, index: int, value: float, a: Any, b: Any, c: Any) -> None:
        a[index] = value
        b[index, :, 3] = index
        c[index % 7, index // 7] += value  # every element by one index only

    shapes = [(56,), (56, 2, 5), (7, 8)]
    expected = reference(kernel, np.arange(56.0), *(np.zeros(s) for s in shapes))
    a, b, c = (ctx.zeros(s) for s in shapes)
    c_f = ctx.zeros((7, 8), order="F")

    def remote(worker_id: int, index: int, value: float) -> None:
        kernel(worker_id, index, value, a, b, c)
        c_f[index % 7, index // 7] += value

    ctx.map(remote, np.arange(56.0))
    for got, want in zip((a, b, c, c_f), [*expected, expected[2]], strict=True):
        np.testing.assert_array_equal(got, want)


def test_writes_through_views_captured_by_the_kernel(ctx: DaskContext) -> None:
    out = ctx.zeros((16, 4))
    column = out[:, 2]
    flat = out.reshape(-1)

    def kernel(worker_id: int, index: int, value: int) -> None:
        column[index] = value
        flat[index * 4] = -value

    ctx.map(kernel, range(16))
    np.testing.assert_array_equal(out[:, 2], np.arange(16))
    np.testing.assert_array_equal(out[:, 0], -np.arange(16))
    assert not out[:, [1, 3]].any()


def test_elements_not_written_keep_the_callers_values(ctx: DaskContext) -> None:
    out = ctx.full((32, 3), 9.0)
    out[0, 0] = 5.0  # filled by the caller: an input as well as an output

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index, 1] = out[index, 0] + index

    ctx.map(kernel, range(32))
    expected = np.full((32, 3), 9.0)
    expected[0, 0] = 5.0
    expected[:, 1] = expected[:, 0] + np.arange(32)
    np.testing.assert_array_equal(out, expected)


def test_arrays_the_caller_filled_are_read_by_every_share(ctx: DaskContext) -> None:
    table = ctx.array(fill=np.arange(100.0) ** 2)
    out = ctx.zeros(100)

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index] = table[index] + table[-1 - index]

    ctx.map(kernel, range(100))
    np.testing.assert_array_equal(out, table + table[::-1])


def test_dtypes_and_structured_arrays(ctx: DaskContext) -> None:
    ints = ctx.zeros(20, np.int8)
    records = ctx.zeros(20, dtype=[("x", "f4"), ("n", "i2")])
    flags = ctx.zeros(20, bool)

    def kernel(worker_id: int, index: int, value: int) -> None:
        ints[index] = -index
        records[index] = (index / 2, index)
        flags[index] = index % 2 == 0

    ctx.map(kernel, range(20))
    np.testing.assert_array_equal(ints, -np.arange(20))
    np.testing.assert_array_equal(records["n"], np.arange(20))
    np.testing.assert_array_equal(records["x"], np.arange(20) / 2)
    np.testing.assert_array_equal(flags, np.arange(20) % 2 == 0)


def test_two_shares_writing_the_same_element_is_an_error_naming_the_array(
    ctx: DaskContext,
) -> None:
    hist = ctx.zeros(10, np.int64)

    def kernel(worker_id: int, index: int, value: int) -> None:
        hist[value % 10] += 1  # a race under shared memory, a lost count here

    with pytest.raises(ConflictingWritesError, match="'hist'") as caught:
        ctx.map(kernel, range(100))
    assert caught.value.name == "'hist'"
    assert len(caught.value.element) == 1
    assert isinstance(caught.value, pm.PashmapError)


def test_the_same_kernel_on_a_per_worker_array_is_fine(ctx: DaskContext) -> None:
    hist = ctx.zeros(10, np.int64, per_worker=True)

    def kernel(worker_id: int, index: int, value: int) -> None:
        hist[worker_id, value % 10] += 1

    ctx.map(kernel, range(100))
    np.testing.assert_array_equal(hist.sum(axis=0), np.full(10, 10))


def test_writes_in_one_share_to_the_same_element_are_fine(ctx: DaskContext) -> None:
    out = ctx.zeros(8)

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[worker_id] += 1  # each worker id owns an element: no conflict

    ctx.map(kernel, range(64))
    np.testing.assert_array_equal(out, np.full(8, 8.0))


def test_only_the_rows_a_share_wrote_travel_back(ctx: DaskContext) -> None:
    out = ctx.zeros((64, 1024))  # 512 KiB

    def kernel(worker_id: int, index: int, value: int) -> None:
        if index % 8 == 0:
            out[index] = index

    ctx.map(kernel, range(64))
    assert ctx.last_map_bytes["received"] == 8 * 1024 * 8
    np.testing.assert_array_equal(out[::8, 0], np.arange(0, 64, 8))
