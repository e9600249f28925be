"""EXtra-data targets on a Dask cluster: files reopened and read on the workers, results
equal to plain serial trains() loops (the cases of tests/xfel/test_target.py)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import pashmap as pm
from pashmap_dask import DaskContext

pytest.importorskip("extra_data")

from tests.xfel.conftest import AGIPD_SOURCE, AGIPD_TRAINS
from tests.xfel.reference import fingerprint_kernel
from tests.xfel.test_target import CASES, expected


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_dask_map_equals_serial_loop(
    request: pytest.FixtureRequest, case: str, ctx: DaskContext
) -> None:
    target, serial_loop = CASES[case](request)
    assert ctx.map(fingerprint_kernel, target) == expected(case, serial_loop)


def test_the_data_are_read_on_the_workers_not_shipped(ctx: DaskContext, agipd_run: Any) -> None:
    key = agipd_run[AGIPD_SOURCE.format(2), "image.data"]

    def kernel(worker_id: int, index: int, train_id: int, data: Any) -> tuple[int, int]:
        return os.getpid(), int(data.nbytes)

    results = ctx.map(kernel, key)
    read = sum(nbytes for _, nbytes in results)
    assert read > 4_000_000  # 16 trains of 3 frames of 2 x 512 x 128 uint16
    assert os.getpid() not in {pid for pid, _ in results}
    assert ctx.last_map_bytes["sent"] < read / 10  # the files' names and index, not data


def test_mean_image_per_train_into_a_context_array(ctx: DaskContext, agipd_run: Any) -> None:
    key = agipd_run[AGIPD_SOURCE.format(2), "image.data"]
    out = ctx.array((len(key.train_ids), 2, 512, 128), np.float64, fill=np.nan)

    def mean_image(worker_id: int, index: int, train_id: int, data: Any) -> None:
        if len(data):
            out[index] = data.mean(axis=0)

    ctx.map(mean_image, key)
    for i in range(len(key.train_ids)):
        if i < AGIPD_TRAINS:
            np.testing.assert_allclose(out[i], key.select_trains(np.s_[i]).ndarray().mean(axis=0))
        else:
            assert np.isnan(out[i]).all()


def test_a_run_by_name_under_the_dask_default(dask_cluster: Any, agipd_run: Any) -> None:
    total = None
    with pm.use_context("dask", address=dask_cluster.scheduler_address):
        total = pm.Accumulator((2, 512, 128))

        def add(worker_id: int, index: int, train_id: int, data: Any) -> None:
            frames = data.get(AGIPD_SOURCE.format(1), {}).get("image.data")
            if frames is not None:  # the run has 4 trains more than the detector
                total.local += frames.sum(axis=0)

        pm.map(add, agipd_run.select(AGIPD_SOURCE.format(1), "image.data"))
    expected_sum = agipd_run[AGIPD_SOURCE.format(1), "image.data"].ndarray().sum(axis=0)
    np.testing.assert_allclose(total.result(), expected_sum)
