"""DaskContext on a real cluster: the quick guide, returns, worker ids and the kit's helpers."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import pashmap as pm
from pashmap_dask import DaskContext


def test_quick_guide_under_dask_by_name(dask_cluster: Any) -> None:
    with pm.use_context("dask", address=dask_cluster.scheduler_address) as context:
        assert isinstance(context, DaskContext)
        inp = np.random.rand(100)
        outp = pm.array(100)

        def triple_it(worker_id: int, index: int, value: float) -> None:
            outp[index] = 3 * value

        assert pm.map(triple_it, inp) == [None] * 100
        assert type(outp) is np.ndarray
        np.testing.assert_allclose(outp, inp * 3)


def test_returns_in_index_order_from_worker_processes(ctx: DaskContext) -> None:
    values = ctx.map(lambda worker_id, index, value: (index, value * 2, os.getpid()), range(50))
    assert [v[:2] for v in values] == [(i, 2 * i) for i in range(50)]
    assert os.getpid() not in {v[2] for v in values}  # run on the workers


def test_a_kernel_returning_only_none_ships_nothing_back(ctx: DaskContext) -> None:
    out = ctx.zeros(1000)

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index] = value

    assert ctx.map(kernel, range(1000)) == [None] * 1000
    # only the written rows travel back: 8 KB of values, no return values
    assert ctx.last_map_bytes["received"] == 8000


def test_num_workers_is_four_ids_per_cluster_thread(ctx: DaskContext, client: Any) -> None:
    threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    assert ctx.num_workers == 4 * threads == 8
    ids = ctx.map(lambda worker_id, index, value: worker_id, range(64))
    assert sorted(set(ids)) == list(range(8))
    assert ids == sorted(ids)  # one share per worker id, shares in index order
    assert DaskContext(3, client=client).num_workers == 3


def test_worker_ids_and_empty_and_short_targets(ctx: DaskContext) -> None:
    assert ctx.map(lambda w, i, v: v, []) == []
    assert ctx.map(lambda w, i, v: v, ["only"]) == ["only"]


def test_per_worker_arrays_and_accumulator(ctx: DaskContext) -> None:
    counts = ctx.zeros(3, np.int64, per_worker=True)
    assert counts.shape == (8, 3)
    total = pm.Accumulator((2, 2), context=ctx)
    data = np.arange(40.0)

    def kernel(worker_id: int, index: int, value: float) -> None:
        counts[worker_id, index % 3] += 1
        total.local += value

    for round_ in (1, 2):  # partials keep accumulating across maps, as under any context
        ctx.map(kernel, data)
        assert counts.sum() == 40 * round_
        np.testing.assert_array_equal(total.result(), np.full((2, 2), data.sum() * round_))


def test_per_worker_in_fortran_order(ctx: DaskContext) -> None:
    acc = ctx.zeros((2, 3), order="F", per_worker=True)
    assert acc.shape == (2, 3, 8)

    def kernel(worker_id: int, index: int, value: float) -> None:
        acc[..., worker_id] += value

    ctx.map(kernel, np.ones(16))
    np.testing.assert_array_equal(acc.sum(axis=-1), np.full((2, 3), 16.0))


def test_per_worker_values_made_once_per_worker_id_and_torn_down_on_the_worker(
    ctx: DaskContext,
) -> None:
    made = ctx.zeros(8, np.int64, per_worker=False)
    torn = []

    def make(worker_id: int) -> dict[str, int]:
        made[worker_id] += 1
        return {"pid": os.getpid()}

    scratch = pm.PerWorker(make, teardown=lambda value: torn.append(value))

    def kernel(worker_id: int, index: int, value: int) -> int:
        return int(scratch.get()["pid"])

    pids = ctx.map(kernel, range(80))
    np.testing.assert_array_equal(made, np.ones(8))
    assert os.getpid() not in pids
    assert torn == []  # torn down on the worker, not here


def test_a_map_inside_a_kernel_runs_serially_in_its_task(ctx: DaskContext) -> None:
    def inner(worker_id: int, index: int, value: int) -> tuple[int, int]:
        return worker_id, os.getpid()

    def outer(worker_id: int, index: int, value: int) -> bool:
        nested = pm.map(inner, range(5))
        nested_by_context = ctx.map(inner, range(3))  # a detached copy of ctx
        return {pid for _, pid in nested + nested_by_context} == {os.getpid()}

    assert all(ctx.map(outer, range(16)))


def test_progress_bar_fed_as_shares_finish(
    ctx: DaskContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tqdm")
    import pashmap.progress

    finals: list[int] = []

    class RecordingBar(pashmap.progress.ProgressBar):
        def __exit__(self, *exc: Any) -> None:
            super().__exit__(*exc)
            finals.append(int(self._bar.n))

    monkeypatch.setattr(pashmap.progress, "ProgressBar", RecordingBar)
    out = ctx.zeros(200)

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index] = value

    ctx.map(kernel, range(200), progress=True)
    assert finals == [200]
    np.testing.assert_array_equal(out, np.arange(200))


def test_options_of_other_context_kinds_are_refused_naming_dask(client: Any) -> None:
    for option in ({"start_method": "spawn"}, {"blas_threads": 1}, {"persistent": True}):
        with pytest.raises(TypeError, match="'dask'"):
            DaskContext(client=client, **option)
    with pytest.raises(TypeError, match="'dask'"):
        pm.set_default_context("dask", client=client, start_method="fork")
    with DaskContext(client=client) as context, pytest.raises(TypeError, match="'dask'"):
        context.map(lambda w, i, v: v, [1], blas_threads=4)


def test_the_shares_option_groups_shares_by_worker_id(ctx: DaskContext) -> None:
    ids = ctx.map(lambda worker_id, index, value: worker_id, range(100), shares=50)
    assert sorted(set(ids)) == list(range(8))  # 50 shares in 8 contiguous groups
    assert ids == sorted(ids)
    assert ctx.map(lambda w, i, v: w, range(10), shares=2) == [0] * 5 + [1] * 5


def test_bad_num_workers(client: Any) -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match="num_workers"):
            DaskContext(bad, client=client)
    for wrong in (2.5, True, "4"):
        with pytest.raises(TypeError, match="num_workers"):
            DaskContext(wrong, client=client)  # type: ignore[arg-type]
    with pytest.warns(pm.OversubscriptionWarning, match="2 usable threads"):
        DaskContext(1000, client=client).close()


def test_repr_and_describe(ctx: DaskContext) -> None:
    assert repr(ctx) == "DaskContext(num_workers=8, client)"
    assert "2 workers, 2 threads" in ctx.describe()
    description = ctx.cluster_info()
    assert description["workers"] == 2
    assert description["threads"] == 2
    assert description["memory"] > 0
    assert description["scheduler"].startswith("tcp://")


def test_close_leaves_a_given_client_open(client: Any) -> None:
    context = DaskContext(client=client)
    context.close()
    context.close()
    assert client.status == "running"
    with pytest.raises(RuntimeError, match="closed"):
        context.map(lambda w, i, v: v, [1])
