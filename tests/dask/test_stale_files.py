"""Dask workers read run files as they are at each map, not as they were at the first.

A Dask worker process lives across maps. A run file rewritten between two maps (reduced
or corrected data written again during a session) must read the same in the workers as
in the caller that reopened it, whatever EXtra-data kept from the map before.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from pashmap_dask import DaskContext

extra_data = pytest.importorskip("extra_data")
h5py = pytest.importorskip("h5py")

from extra_data.tests.mockdata import write_file  # noqa: E402
from extra_data.tests.mockdata.xgm import XGM  # noqa: E402

pytestmark = pytest.mark.timeout(180)

SOURCE = "SA1_XTD2_XGM/DOOCS/MAIN:output"
KEY = "data.intensityTD"
TRAINS = 8


def write_run(path: Path, value: float, trains: int = TRAINS) -> None:
    """An XGM file whose intensityTD holds ``value`` in every train."""
    write_file(str(path), [XGM("SA1_XTD2_XGM/DOOCS/MAIN")], ntrains=trains)
    with h5py.File(path, "r+") as f:
        f[f"INSTRUMENT/{SOURCE}/{KEY.replace('.', '/')}"][...] = value


def first_values(ctx: DaskContext, path: Path) -> list[float]:
    gc.collect()
    run = extra_data.H5File(str(path))
    return ctx.map(lambda w, i, tid, data: float(data.flat[0]), run[SOURCE, KEY])


def test_dask_workers_read_a_replaced_file_as_it_is_now(ctx: DaskContext, tmp_path: Path) -> None:
    path = tmp_path / "RAW-R0001-DA01-S00000.h5"
    write_run(path, 1.0)
    assert first_values(ctx, path) == [1.0] * TRAINS
    for value in (2.0, 3.0):
        new = path.with_suffix(".new.h5")
        write_run(new, value)
        os.replace(new, path)
        assert first_values(ctx, path) == [value] * TRAINS


def test_dask_workers_see_a_file_that_grew(ctx: DaskContext, tmp_path: Path) -> None:
    path = tmp_path / "RAW-R0001-DA01-S00000.h5"
    write_run(path, 1.0, trains=4)
    assert first_values(ctx, path) == [1.0] * 4
    new = path.with_suffix(".new.h5")
    write_run(new, 5.0, trains=TRAINS)
    os.replace(new, path)
    assert first_values(ctx, path) == [5.0] * TRAINS
