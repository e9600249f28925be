"""Writes into a numpy array the dask context did not allocate are lost: a warning says so."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pashmap_dask import DaskContext
from pashmap_dask.unshared import NotSharedWarning


def test_writing_into_a_plain_numpy_array_warns(ctx: DaskContext) -> None:
    plain = np.zeros(10)

    def kernel(worker_id: int, index: int, value: int) -> None:
        plain[index] = value

    with pytest.warns(NotSharedWarning, match="'plain'") as record:
        ctx.map(kernel, range(10))
    assert record[0].filename == __file__  # points at the map call
    assert not plain.any()  # lost, as the warning says


def test_no_warning_for_context_arrays_reads_and_locals(ctx: DaskContext) -> None:
    out = ctx.zeros(10)
    view = out[2:]
    table = np.arange(10.0)

    def kernel(worker_id: int, index: int, value: int) -> None:
        scratch = np.zeros(3)
        scratch[0] = table[index]
        out[index] = scratch[0]
        if index >= 2:
            view[index - 2] += 0

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctx.map(kernel, range(10))
    np.testing.assert_array_equal(out, table)


def test_the_warning_is_the_one_of_the_process_context() -> None:
    shm = pytest.importorskip("pashmap_shm")
    assert NotSharedWarning is shm.NotSharedWarning


def test_writes_through_entries_and_aliases_warn_as_under_processes(ctx: DaskContext) -> None:
    arrays = {"out": np.zeros(4)}
    plain = np.zeros(4)

    def kernel(worker_id: int, index: int, value: int) -> None:
        arrays["out"][index] = value
        o = plain
        o[index] = value

    with pytest.warns(NotSharedWarning) as record:
        ctx.map(kernel, range(4))
    named = sorted(str(w.message).split(" writes to ")[1].split(",")[0] for w in record)
    assert named == ["\"arrays['out']\"", "'plain'"]
