"""What travels: kernels by value where the workers cannot import them, inputs once per
worker per map, output arrays never whole."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from pashmap_dask import DaskContext


class Scaler:
    """A class of this test module: the command-line workers cannot import it."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, worker_id: int, index: int, value: float) -> float:
        return value * self.factor


def add(worker_id: int, index: int, value: float, *, offset: float) -> float:
    return value + offset


def test_kernels_of_every_shape_travel_to_workers_on_another_sys_path(
    scheduler_file: Path,
) -> None:
    with DaskContext(scheduler_file=str(scheduler_file)) as context:
        assert context.map(Scaler(2.0), [1.0, 2.0]) == [2.0, 4.0]
        assert context.map(functools.partial(add, offset=1.0), [1.0]) == [2.0]
        assert context.map(lambda w, i, v: Scaler(v)(w, i, 3.0), [1.0, 2.0]) == [3.0, 6.0]


def test_a_large_input_travels_once_per_worker(ctx: DaskContext, client: Any) -> None:
    data = np.random.default_rng(1).random(4 * 2**20)  # 32 MiB, read by every share
    out = ctx.zeros(64)

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index] = data[index::64].sum()

    ctx.map(kernel, range(64))
    np.testing.assert_allclose(out, [data[i::64].sum() for i in range(64)])
    workers = len(client.scheduler_info()["workers"])
    assert ctx.num_workers == 8  # 8 shares, but only 2 copies
    assert data.nbytes * workers <= ctx.last_map_bytes["sent"] <= 1.1 * data.nbytes * workers


def test_a_context_array_the_caller_filled_travels_once_per_worker(ctx: DaskContext) -> None:
    table = ctx.array(fill=np.arange(2**20, dtype=np.float64))  # 8 MiB: an input
    out = ctx.zeros((8, 2**17))  # 8 MiB of zeros: never travels

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index] = table[index * 2**17 : (index + 1) * 2**17]

    ctx.map(kernel, range(8))
    np.testing.assert_array_equal(out.ravel(), table)
    assert ctx.last_map_bytes["sent"] <= 1.1 * table.nbytes * 2
    assert ctx.last_map_bytes["received"] == out.nbytes
