"""Per-worker state (PerWorker) and per-worker accumulators (Accumulator) locally."""

from __future__ import annotations

import numpy as np
import pytest

import pashmap as pm
import pashmap.contexts
from pashmap import registry


def test_per_worker_value_is_created_once_and_torn_down() -> None:
    events: list[str] = []

    def make(worker_id: int) -> list[int]:
        events.append(f"setup {worker_id}")
        return []

    scratch = pm.PerWorker(make, teardown=lambda buf: events.append(f"teardown {len(buf)}"))

    def kernel(worker_id: int, index: int, value: int) -> None:
        scratch.get().append(value)

    pm.map(kernel, range(5))
    assert events == ["setup 0", "teardown 5"]
    pm.map(kernel, range(2))  # a new map sets up afresh
    assert events[2:] == ["setup 0", "teardown 2"]


def test_per_worker_teardown_runs_after_a_kernel_error() -> None:
    closed: list[bool] = []
    handle = pm.PerWorker(lambda w: object(), teardown=lambda h: closed.append(True))

    def kernel(worker_id: int, index: int, value: int) -> None:
        handle.get()
        raise KeyError(index)

    with pytest.raises(KeyError):
        pm.map(kernel, [1, 2])
    assert closed == [True]


def test_per_worker_outside_a_kernel_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="only inside a kernel"):
        pm.PerWorker(lambda w: 1).get()
    with pytest.raises(RuntimeError, match="not inside a kernel"):
        pm.current_worker_id()
    with pytest.raises(TypeError, match="factory must be callable"):
        pm.PerWorker(3)  # type: ignore[arg-type]


def test_current_worker_id_matches_the_kernel_argument() -> None:
    assert pm.map(lambda w, i, v: pm.current_worker_id() == w, [1, 2]) == [True, True]


def test_accumulator_sums_race_free() -> None:
    total = pm.Accumulator((3,), np.int64)

    def kernel(worker_id: int, index: int, value: int) -> None:
        total.local += value
        total.local[index % 3] += 1

    pm.map(kernel, range(10))
    assert total.result().tolist() == [45 + 4, 45 + 3, 45 + 3]
    np.testing.assert_array_equal(np.asarray(total), total.result())
    total.reset()
    assert total.result().tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    ("reduce", "expected"),
    [(np.maximum, 9.0), (np.minimum, 0.0), (np.add, 45.0), (np.multiply, 0.0)],
)
def test_accumulator_reductions_start_from_their_identity(
    reduce: np.ufunc, expected: float
) -> None:
    acc = pm.Accumulator((), reduce=reduce)
    pm.map(lambda w, i, v: acc.partials.__setitem__(w, reduce(acc.local, v)), range(10))
    assert float(acc.result()) == expected


def test_a_scalar_accumulator() -> None:
    count = pm.Accumulator((), np.int64)

    def kernel(worker_id: int, index: int, value: int) -> None:
        count.local += 1

    pm.map(kernel, range(7))
    assert int(count.result()) == 7


def test_accumulator_with_a_callable_needs_a_fill() -> None:
    with pytest.raises(TypeError, match="has no identity"):
        pm.Accumulator(3, reduce=lambda a, b: a + b)
    acc = pm.Accumulator(3, reduce=lambda a, b: a + b, fill=1.0)
    assert acc.result().tolist() == [1.0, 1.0, 1.0]
    assert "workers=1" in repr(acc)


def test_accumulator_outside_a_kernel_and_for_other_workers() -> None:
    acc = pm.Accumulator(2)
    with pytest.raises(RuntimeError, match="not inside a kernel"):
        acc.local  # noqa: B018
    with pytest.raises(IndexError, match="made for 1 workers"):
        acc[3]


def _made_and_mapped() -> list[tuple[str, str]]:
    names = registry.context_names()
    return [(made, mapped) for made in names for mapped in names if made != mapped]


@pytest.mark.parametrize(("made_with", "mapped_with"), _made_and_mapped())
@pytest.mark.parametrize("length", [3, 100_000])
def test_an_accumulator_used_under_another_context_raises(
    made_with: str, mapped_with: str, length: int
) -> None:
    # Before: made under 'local' and mapped under 'processes', [0, 0, 0] instead of
    # [4, 4, 4] (the forked worker wrote into its own copy), or an IndexError.
    workers = {} if made_with == "local" else {"num_workers": 2}
    pm.set_default_context(made_with, **workers)
    made = pm.get_default_context()
    total = pm.Accumulator(3, np.int64)

    def kernel(worker_id: int, index: int, value: int) -> None:
        total.local += 1

    workers = {} if mapped_with == "local" else {"num_workers": 2}
    with pm.use_context(mapped_with, **workers) as mapping:
        with pytest.raises(pm.ContextMismatchError) as info:
            pm.map(kernel, range(length))
        message = str(info.value)
        assert f"made for {made!r}" in message
        assert f"the map runs on {mapping!r}" in message
        assert "context=ctx" in message
    assert isinstance(info.value, RuntimeError)
    made.close()


def test_an_accumulator_follows_its_own_context_only() -> None:
    context = pm.contexts.LocalContext()
    total = pm.Accumulator(3, np.int64, context=context)

    def kernel(worker_id: int, index: int, value: int) -> None:
        total.local += 1

    assert context.map(kernel, range(4)) == [None] * 4
    assert total.result().tolist() == [4, 4, 4]
    with pytest.raises(pm.ContextMismatchError, match="made for LocalContext") as info:
        pm.contexts.LocalContext().map(kernel, range(4))  # another instance: not its own
    # Two contexts that look the same are told apart.
    assert f"(object at {id(context):#x})" in str(info.value)
    assert "runs on another LocalContext" in str(info.value)
