"""Per-worker state (PerWorker) and accumulators (Accumulator) in threads and processes."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import pashmap as pm
import pashmap.contexts
from pashmap.contexts import BaseContext

from .conftest import KINDS


@pytest.fixture(params=sorted(KINDS))
def ctx(request: pytest.FixtureRequest) -> BaseContext:
    """A context of each kind with 2 workers."""
    return KINDS[request.param](2)


def where_am_i() -> tuple[int, int]:
    """The process and thread the caller runs in."""
    return os.getpid(), threading.get_ident()


@pytest.mark.usefixtures("no_leaks")
def test_per_worker_set_up_and_torn_down_once_per_worker_in_the_worker(ctx: BaseContext) -> None:
    setups = ctx.zeros(ctx.num_workers, dtype=np.int64)
    teardowns = ctx.zeros(ctx.num_workers, dtype=np.int64)
    torn_down_in = ctx.zeros((ctx.num_workers, 2), dtype=np.int64)
    used_in = ctx.zeros((ctx.num_workers, 2), dtype=np.int64)

    def make(worker_id: int) -> list[int]:
        setups[worker_id] += 1
        return [worker_id]

    def close(value: list[int]) -> None:
        teardowns[value[0]] += 1
        torn_down_in[value[0]] = where_am_i()

    scratch = pm.PerWorker(make, teardown=close)

    def kernel(worker_id: int, index: int, value: int) -> int:
        assert scratch.get() == [worker_id]
        assert pm.current_worker_id() == worker_id
        used_in[worker_id] = where_am_i()
        return worker_id

    worker_ids = ctx.map(kernel, range(200), shares=8)
    used = sorted(set(worker_ids))
    assert setups[used].tolist() == [1] * len(used)
    assert teardowns[used].tolist() == [1] * len(used)
    # The teardown ran in the worker's own process and thread, not in the caller.
    for worker_id in used:
        assert tuple(torn_down_in[worker_id]) == tuple(used_in[worker_id])
        assert tuple(torn_down_in[worker_id]) != where_am_i()


def test_per_worker_teardown_after_a_kernel_error(ctx: BaseContext) -> None:
    closed = ctx.zeros(ctx.num_workers, dtype=np.int64)
    handle = pm.PerWorker(lambda w: w, teardown=lambda w: closed.__setitem__(w, 1))

    def kernel(worker_id: int, index: int, value: int) -> None:
        handle.get()
        raise KeyError(index)

    with pytest.raises(KeyError):
        ctx.map(kernel, range(4), shares=1)
    assert closed.sum() == 1


def test_a_teardown_that_raises_reaches_the_caller(ctx: BaseContext) -> None:
    def fail(value: int) -> None:
        raise OSError("cannot close")

    handle = pm.PerWorker(lambda w: w, teardown=fail)
    with pytest.raises(OSError, match="cannot close"):
        ctx.map(lambda w, i, v: handle.get(), range(4))


@pytest.mark.parametrize(
    ("reduce", "expected"),
    [(np.add, lambda data: data.sum(axis=0)), (np.maximum, lambda data: data.max(axis=0))],
    ids=["sum", "max"],
)
def test_accumulator_equals_the_serial_result(ctx: BaseContext, reduce, expected) -> None:  # type: ignore[no-untyped-def]
    data = np.random.default_rng(6).normal(size=(2000, 16))
    acc = pm.Accumulator(16, reduce=reduce, context=ctx)
    counts = pm.Accumulator(4, np.int64, context=ctx)

    def kernel(worker_id: int, index: int, row: np.ndarray) -> None:
        if reduce is np.add:
            acc.local += row
        else:
            np.maximum(acc.local, row, out=acc.local)
        counts.local[index % 4] += 1  # read-modify-write: races if slices were shared

    ctx.map(kernel, data)
    np.testing.assert_allclose(acc.result(), expected(data))
    assert counts.result().tolist() == [500] * 4


def test_xfel_style_histogram_in_one_line(ctx: BaseContext) -> None:
    """The 'histogram of every train' pattern: one accumulator, reduced after the map."""
    trains = np.random.default_rng(3).integers(0, 100, size=(300, 512))
    edges = np.linspace(0, 100, 11)
    hist = pm.Accumulator(10, np.int64, context=ctx)

    def kernel(worker_id: int, index: int, pixels: np.ndarray) -> None:
        hist.local += np.histogram(pixels, edges)[0]

    ctx.map(kernel, trains)
    np.testing.assert_array_equal(hist.result(), np.histogram(trains, edges)[0])


def test_nested_map_keeps_the_outer_workers_state(ctx: BaseContext) -> None:
    acc = pm.Accumulator(1, np.int64, context=ctx)

    def inner(worker_id: int, index: int, value: int) -> None:
        acc.local += 1

    def outer(worker_id: int, index: int, value: int) -> None:
        ctx.map(inner, range(3))

    ctx.map(outer, range(10))
    assert acc.result().tolist() == [30]


def test_process_workers_ignore_a_scope_inherited_from_the_caller() -> None:
    from pashmap.worker import current_worker_id
    from pashmap_shm import ProcessContext

    ctx = ProcessContext(2)
    agrees = ctx.zeros(8, dtype=np.int64)

    def inner(worker_id: int, index: int, value: int) -> None:
        agrees[index] = current_worker_id() == worker_id

    def outer(worker_id: int, index: int, value: int) -> None:
        # Forked from inside a LocalContext worker scope (worker 0 of the outer map).
        ctx.map(inner, range(8), shares=8)

    pm.LocalContext().map(outer, [0])
    assert agrees.tolist() == [1] * 8


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize(
    "make",
    [
        lambda: KINDS["processes"](2),
        lambda: KINDS["processes"](2, persistent=True),
    ],
    ids=["with-block", "persistent"],
)
def test_an_accumulator_made_for_local_is_refused_by_warm_workers(make) -> None:  # type: ignore[no-untyped-def]
    # Before: the warm workers received a pickled copy of the partial results and
    # wrote into it: [0, 0, 0], no error.
    total = pm.Accumulator(3, np.int64, context=pm.contexts.LocalContext())

    def kernel(worker_id: int, index: int, value: int) -> None:
        total.local += 1

    with make() as ctx, pytest.raises(Exception) as info:  # noqa: PT011
        ctx.map(kernel, range(4))
    # The pool reports what cannot be pickled as a TypeError chaining the refusal.
    refusal = (
        info.value if isinstance(info.value, pm.ContextMismatchError) else info.value.__cause__
    )
    assert isinstance(refusal, pm.ContextMismatchError)
    assert "made for LocalContext(num_workers=1)" in str(refusal)
    assert "ProcessContext" in str(refusal)
    assert total.result().tolist() == [0, 0, 0]
