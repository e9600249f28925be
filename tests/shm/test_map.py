"""What every map guarantees: each index once, worker ids, order, balancing, options."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import pashmap as pm
from pashmap.contexts import SHARES_PER_WORKER, BaseContext
from pashmap_shm import ProcessContext, ThreadContext

from .conftest import wait_until


def test_every_index_exactly_once(context: BaseContext) -> None:
    n = 1000
    visits = context.zeros(n, dtype=np.int64)
    workers = context.full(n, -1, dtype=np.int64)

    def kernel(worker_id: int, index: int, value: int) -> None:
        visits[index] += 1
        workers[index] = worker_id

    context.map(kernel, range(n))
    assert visits.tolist() == [1] * n
    assert set(workers.tolist()) <= set(range(context.num_workers))


def test_return_values_in_index_order(context: BaseContext) -> None:
    values = context.map(lambda wid, i, v: (i, v * 2), list(range(500)))
    assert values == [(i, 2 * i) for i in range(500)]


def test_none_returns_give_a_list_of_none(context: BaseContext) -> None:
    assert context.map(lambda wid, i, v: None, range(300)) == [None] * 300


def test_mixed_none_and_values(context: BaseContext) -> None:
    values = context.map(lambda wid, i, v: i if i % 100 == 0 else None, range(1000))
    assert values == [i if i % 100 == 0 else None for i in range(1000)]


def test_empty_target(context: BaseContext) -> None:
    assert context.map(lambda wid, i, v: 1 / 0, []) == []


@pytest.mark.parametrize("kind", [ThreadContext, ProcessContext])
def test_all_workers_take_part_in_a_balanced_map(kind: type[BaseContext]) -> None:
    with kind(2) as ctx:
        workers = ctx.full(64, -1, dtype=np.int64)
        seen = ctx.zeros(2, dtype=np.int64)

        def kernel(worker_id: int, index: int, value: int) -> None:
            # Each worker's first element waits for the other worker to start: the map
            # completes with both or not at all, however late the second one starts.
            seen[worker_id] = 1
            wait_until(lambda: bool(seen.all()))
            workers[index] = worker_id

        ctx.map(kernel, range(64))
    assert set(workers.tolist()) == {0, 1}


@pytest.mark.parametrize("kind", [ThreadContext, ProcessContext])
def test_dynamic_balancing_takes_shares_in_turn(kind: type[BaseContext]) -> None:
    """A worker stuck on an expensive element does not hold up the remaining shares."""
    n = 4 * SHARES_PER_WORKER
    with kind(2) as ctx:
        workers = ctx.full(n, -1, dtype=np.int64)
        done = ctx.zeros(1, dtype=np.int64)

        def kernel(worker_id: int, index: int, value: int) -> None:
            if index == 0:  # the expensive element: it ends when every other one is done
                wait_until(lambda: int(done[0]) == n - 1)
            else:
                done[0] += 1  # one writer: the worker that is not stuck
            workers[index] = worker_id

        ctx.map(kernel, range(n), shares=n)
    # The worker that ran index 0 was busy; the other one took every other share.
    slow = workers[0]
    assert np.count_nonzero(workers == slow) == 1
    assert int(done[0]) == n - 1


@pytest.mark.parametrize("kind", [ThreadContext, ProcessContext])
def test_shares_stay_contiguous(kind: type[BaseContext]) -> None:
    with kind(2) as ctx:
        seen = ctx.map(lambda wid, i, v: (os.getpid(), wid, i), range(200), shares=4)
    # Four shares of 50: inside each, one worker ran the indices in order.
    for start in range(0, 200, 50):
        block = seen[start : start + 50]
        assert len({(pid, wid) for pid, wid, _ in block}) == 1
        assert [i for _, _, i in block] == list(range(start, start + 50))


def test_processes_really_run_in_other_processes() -> None:
    with ProcessContext(2) as ctx:
        pids = set(ctx.map(lambda wid, i, v: os.getpid(), range(100)))
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2


def test_writes_to_ordinary_objects_stay_in_the_worker() -> None:
    record: list[int] = []
    with ProcessContext(2) as ctx:
        ctx.map(lambda wid, i, v: record.append(i), range(10))
    assert record == []


def test_numpy_and_xarray_targets(kind: str) -> None:
    xr = pytest.importorskip("xarray")
    pm.set_default_context(kind, num_workers=2)
    data = xr.DataArray(np.arange(12.0).reshape(4, 3), dims=("train", "pixel"))
    out = pm.zeros((4, 3))

    def kernel(worker_id: int, index: int, row: object) -> None:
        out[index] = row * 2  # type: ignore[operator]

    pm.map(kernel, data)
    np.testing.assert_array_equal(out, data.values * 2)
    out2 = pm.zeros(3)
    pm.map(
        lambda wid, i, col: out2.__setitem__(i, col.sum()), pm.NdarrayTarget(data.values, axis=1)
    )
    np.testing.assert_array_equal(out2, data.values.sum(axis=0))


def test_per_worker_accumulation(kind: str) -> None:
    with pm.use_context(kind, num_workers=2) as ctx:
        partial_sums = pm.zeros(3, per_worker=True)
        assert partial_sums.shape == (2, 3)

        def kernel(worker_id: int, index: int, value: int) -> None:
            partial_sums[worker_id, value % 3] += value

        pm.map(kernel, range(300))
        assert ctx.num_workers == 2
    np.testing.assert_array_equal(
        partial_sums.sum(axis=0), [sum(v for v in range(300) if v % 3 == k) for k in range(3)]
    )


def test_fill_copies_an_existing_array_into_shared_memory() -> None:
    existing = np.arange(10.0)
    with pm.use_context("processes", num_workers=2):
        shared = pm.array(fill=existing)

        def kernel(worker_id: int, index: int, value: float) -> None:
            shared[index] += 100

        pm.map(kernel, range(10))
    np.testing.assert_array_equal(shared, existing + 100)
    np.testing.assert_array_equal(existing, np.arange(10.0))


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_nested_map_runs_serially_in_the_worker(kind: str) -> None:
    pm.set_default_context(kind, num_workers=2)

    def inner(worker_id: int, index: int, value: int) -> tuple[int, int]:
        return os.getpid(), worker_id

    def outer(worker_id: int, index: int, value: int) -> tuple[int, list[tuple[int, int]]]:
        return os.getpid(), pm.map(inner, range(5))

    for pid, inner_results in pm.map(outer, range(4)):
        # Same process (no fork per worker), and one serial worker.
        assert inner_results == [(pid, 0)] * 5


def test_nested_map_in_a_kernel_that_returns_nothing_runs_serially() -> None:
    # The same under a kernel known to return None (the workers' fast path).
    ctx = ProcessContext(2)
    same_process = ctx.zeros(4, dtype=np.int64)

    def inner(worker_id: int, index: int, value: int) -> tuple[int, int]:
        return os.getpid(), worker_id

    def outer(worker_id: int, index: int, value: int) -> None:
        same_process[index] = pm.map(inner, range(3)) == [(os.getpid(), 0)] * 3

    with pm.use_context(ctx):
        pm.map(outer, range(4))
    assert same_process.all()


def test_unknown_option(context: BaseContext) -> None:
    with pytest.raises(TypeError, match=r"unexpected option.*chunks"):
        context.map(lambda wid, i, v: None, range(3), chunks=3)


@pytest.mark.parametrize("shares", [0, -1])
def test_bad_number_of_shares(shares: int) -> None:
    with pytest.raises(ValueError, match="shares must be at least 1"):
        ProcessContext(2).map(lambda wid, i, v: None, range(3), shares=shares)


@pytest.mark.parametrize("shares", [1.5, "4", True])
def test_shares_must_be_an_integer(shares: object) -> None:
    with pytest.raises(TypeError, match="shares must be a positive integer"):
        ThreadContext(2).map(lambda wid, i, v: None, range(3), shares=shares)


@pytest.mark.parametrize("klass", [ThreadContext, ProcessContext])
def test_default_num_workers_is_the_affinity(klass: type[BaseContext]) -> None:
    assert klass().num_workers == len(os.sched_getaffinity(0))  # type: ignore[call-arg]


@pytest.mark.parametrize("klass", [ThreadContext, ProcessContext])
@pytest.mark.parametrize("bad", [0, -2])
def test_num_workers_must_be_positive(klass: type[BaseContext], bad: int) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        klass(num_workers=bad)  # type: ignore[call-arg]


@pytest.mark.parametrize("klass", [ThreadContext, ProcessContext])
@pytest.mark.parametrize("bad", [2.0, "4", True, [2]])
def test_num_workers_must_be_an_integer(klass: type[BaseContext], bad: object) -> None:
    with pytest.raises(TypeError, match="positive integer or None"):
        klass(num_workers=bad)  # type: ignore[call-arg]


def test_numpy_integer_num_workers() -> None:
    assert ProcessContext(np.int64(3)).num_workers == 3  # type: ignore[arg-type]


def test_kernel_must_be_callable(context: BaseContext) -> None:
    with pytest.raises(TypeError, match="kernel must be callable"):
        context.map(42, range(3))  # type: ignore[call-overload]


def test_more_shares_than_a_pipe_holds() -> None:
    n = 20_000  # 80 kB of share indices, more than the default 64 kB pipe
    with ProcessContext(2) as ctx:
        assert ctx.map(lambda wid, i, v: None, range(n), shares=n) == [None] * n


def test_small_maps_do_not_fork_every_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers start one after another, only while shares are left to take."""
    import pashmap_shm.collector

    # Forked per map (not a with block, whose maps go to warm workers started together).
    ctx = ProcessContext(4)
    # A ramp-up no first worker can miss: a small map is then one fork, every time.
    monkeypatch.setattr(pashmap_shm.collector, "_RAMP_UP", 30.0)
    counts = [len(set(ctx.map(lambda wid, i, v: os.getpid(), range(4)))) for _ in range(10)]
    assert counts == [1] * 10
    monkeypatch.undo()
    # A map whose elements wait for four workers ends only if all four were started.
    started = ctx.zeros(4, dtype=np.int64)

    def slow(worker_id: int, index: int, value: int) -> int:
        started[worker_id] = 1
        wait_until(lambda: bool(started.all()))
        return os.getpid()

    assert len(set(ctx.map(slow, range(40)))) == 4


def test_kernels_returning_arrays(context: BaseContext) -> None:
    """Arrays, whose == does not give a bool, come back as values."""
    values = context.map(lambda wid, i, v: np.full(3, v), range(50))
    np.testing.assert_array_equal(np.stack(values), np.repeat(np.arange(50), 3).reshape(50, 3))


class EqualsEverything:
    """A value that says it equals None: the all-None check must not be fooled by it."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


@pytest.mark.parametrize("n", [5, 300, 5000])
def test_values_that_compare_equal_to_none_are_kept(n: int) -> None:
    ctx = ProcessContext(2)
    odd = EqualsEverything()
    # One value in the last share only; short and long shares take different checks.
    values = ctx.map(lambda wid, i, v: odd if i == n - 1 else None, range(n))
    assert values[:-1] == [None] * (n - 1)
    assert isinstance(values[-1], EqualsEverything)


def test_array_values_in_long_shares_come_back() -> None:
    values = ProcessContext(2).map(
        lambda wid, i, v: np.full(3, i) if i % 1000 == 0 else None, range(4000)
    )
    assert [i for i, value in enumerate(values) if value is not None] == [0, 1000, 2000, 3000]
    assert all((values[i] == i).all() for i in (0, 1000, 2000, 3000))


def test_a_large_map_starts_every_worker_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import pashmap_shm.collector

    # With a ramp-up of 30 s, a second worker started by the ramp would come far too
    # late: the first element sees both workers only if both started at the first fork.
    monkeypatch.setattr(pashmap_shm.collector, "_RAMP_UP", 30.0)
    ctx = ProcessContext(2)
    n = 200_000  # at least 50 000 elements: no ramp-up, both start at the first fork
    seen = ctx.zeros(2, dtype=np.int64)
    both = ctx.zeros(1, dtype=np.int64)

    def kernel(worker_id: int, index: int, value: int) -> None:
        seen[worker_id] = 1
        if index == 0:
            end = time.monotonic() + 20
            while not seen.all() and time.monotonic() < end:
                time.sleep(0.001)
            both[0] = seen.all()

    ctx.map(kernel, range(n))
    assert both[0] == 1


def test_a_kernel_known_to_return_none_under_processes() -> None:
    ctx = ProcessContext(2)
    n = 100_000
    out = ctx.zeros(n)

    def kernel(worker_id: int, index: int, value: float) -> None:
        out[index] = 2 * value
        if index % 7 == 0:
            return

    inp = np.arange(n, dtype=np.float64)
    assert ctx.map(kernel, inp) == [None] * n
    np.testing.assert_array_equal(out, 2 * inp)

    def sometimes(worker_id: int, index: int, value: float) -> float | None:
        return value if index == n - 1 else None

    values = ctx.map(sometimes, inp)
    assert values[-1] == n - 1
    assert values[:-1] == [None] * (n - 1)


def test_the_caller_sleeps_while_a_long_map_runs() -> None:
    # The caller waits awake for a small map's workers (a few milliseconds at most per
    # map), then sleeps in poll(): the worker sees it asleep, and the map costs it a small
    # part of its length in CPU time (a caller polling awake would use about all of it).
    import resource

    caller = os.getpid()

    def caller_state() -> str:
        with open(f"/proc/{caller}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0]

    def kernel(worker_id: int, index: int, value: int) -> bool:
        asleep = wait_until(lambda: caller_state() == "S")
        time.sleep(0.1)
        return asleep

    ctx = ProcessContext(1)
    ctx.map(lambda worker_id, index, value: None, range(2))  # first-map set-up done
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    assert ctx.map(kernel, range(5)) == [True] * 5
    elapsed = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert used < elapsed / 2, f"the caller used {used:.3f} s of CPU during a {elapsed:.3f} s map"
