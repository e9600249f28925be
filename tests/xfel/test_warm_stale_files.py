"""Warm workers read run files as they are at each map, not as they were at the first.

A run file rewritten between two maps (reduced or corrected data written again during a
session) must read the same in the workers as in the caller that reopened it: warm
workers keep EXtra-data's objects from one map to the next, and unpickling the next
target would hand those back, with the old index and an open handle to the old file.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pashmap_shm import ProcessContext

extra_data = pytest.importorskip("extra_data")
h5py = pytest.importorskip("h5py")
np = pytest.importorskip("numpy")

from extra_data.tests.mockdata import write_file  # noqa: E402
from extra_data.tests.mockdata.xgm import XGM  # noqa: E402

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("pool_helper_processes")]

SOURCE = "SA1_XTD2_XGM/DOOCS/MAIN:output"
KEY = "data.intensityTD"
TRAINS = 8

WARM = {
    "fork-persistent": lambda: ProcessContext(2, persistent=True),
    "with-block": lambda: ProcessContext(2),
    "forkserver-persistent": lambda: ProcessContext(2, start_method="forkserver", persistent=True),
}


@pytest.fixture(scope="module")
def pool_helper_processes() -> Any:
    """multiprocessing's fork server for this module only (see tests/shm/conftest.py)."""
    import multiprocessing
    import multiprocessing.forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(["pashmap_shm.worker"])
    multiprocessing.forkserver.ensure_running()
    yield
    multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]


def write_run(path: Path, value: float, trains: int = TRAINS) -> None:
    """An XGM file whose intensityTD holds ``value`` in every train."""
    write_file(str(path), [XGM("SA1_XTD2_XGM/DOOCS/MAIN")], ntrains=trains)
    with h5py.File(path, "r+") as f:
        f[f"INSTRUMENT/{SOURCE}/{KEY.replace('.', '/')}"][...] = value


def first_values(ctx: ProcessContext, path: Path) -> list[float]:
    """Open the file afresh in the caller and read train by train in the workers."""
    gc.collect()  # the caller's earlier objects for the path are gone (a fresh open)
    run = extra_data.H5File(str(path))
    return ctx.map(lambda w, i, tid, data: float(data.flat[0]), run[SOURCE, KEY])


def replace(path: Path, value: float, trains: int = TRAINS) -> None:
    """A new file under the same path (a new inode), as a rewrite by a tool does."""
    new = path.with_suffix(".new.h5")
    write_run(new, value, trains)
    os.replace(new, path)


def rewrite_in_place(path: Path, value: float, trains: int = TRAINS) -> None:
    """The same file (the same inode) with new values."""
    del trains
    gc.collect()  # the caller's read-only handle is closed (HDF5 refuses r+ beside it)
    with h5py.File(path, "r+") as f:
        f[f"INSTRUMENT/{SOURCE}/{KEY.replace('.', '/')}"][...] = value


REWRITES: dict[str, Callable[..., None]] = {"replaced": replace, "in-place": rewrite_in_place}


@pytest.mark.parametrize("rewrite", REWRITES)
@pytest.mark.parametrize("kind", WARM)
def test_warm_workers_read_a_rewritten_file_as_it_is_now(
    kind: str, rewrite: str, tmp_path: Path
) -> None:
    path = tmp_path / "RAW-R0001-DA01-S00000.h5"
    write_run(path, 1.0)
    with WARM[kind]() as ctx:
        assert first_values(ctx, path) == [1.0] * TRAINS
        for value in (2.0, 3.0):
            REWRITES[rewrite](path, value)
            assert first_values(ctx, path) == [value] * TRAINS


@pytest.mark.parametrize("kind", WARM)
def test_warm_workers_see_a_file_that_grew(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "RAW-R0001-DA01-S00000.h5"
    write_run(path, 1.0, trains=4)
    with WARM[kind]() as ctx:
        assert first_values(ctx, path) == [1.0] * 4
        replace(path, 5.0, trains=TRAINS)
        assert first_values(ctx, path) == [5.0] * TRAINS
