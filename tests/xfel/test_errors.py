"""Errors reading European XFEL files name the file, the data and the train.

The damaged runs are real EuXFEL files (extra_data's mock writers), damaged the ways
files are found damaged: a dataset shorter than its INDEX section says (a file written
incompletely), a file cut short while the caller holds it open, and a corrupted chunk
index ("wrong B-tree signature").
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

import pashmap as pm
from tests.xfel.reference import LOCAL, context

extra_data = pytest.importorskip("extra_data")
h5py = pytest.importorskip("h5py")
np = pytest.importorskip("numpy")
from extra_data.tests.mockdata import write_file  # noqa: E402
from extra_data.tests.mockdata.xgm import XGM  # noqa: E402

from pashmap_xfel import DataReadError  # noqa: E402

SOURCE = "SPB_XTD9_XGM/DOOCS/MAIN:output"
KEY = "data.intensityTD"
FILE = "RAW-R0001-DA01-S00000.h5"
CONTEXTS = [LOCAL, ("threads", 2), ("processes", 2)]


def write_xgm_run(path: Path) -> Path:
    """An XGM over 16 trains, one entry per train in its output channel."""
    write_file(str(path / FILE), [XGM("SPB_XTD9_XGM/DOOCS/MAIN")], ntrains=16, chunksize=4)
    return path / FILE


def shorten(filename: Path, entries: int) -> None:
    """Rewrite the key's dataset with only its first ``entries`` entries."""
    with h5py.File(filename, "r+") as f:
        path = f"INSTRUMENT/{SOURCE}/data/intensityTD"
        kept = f[path][:entries]
        del f[path]
        f.create_dataset(path, data=kept, chunks=(2, *kept.shape[1:]))


def targets(run: Any) -> dict[str, Any]:
    return {
        "KeyData": run[SOURCE, KEY],
        "SourceData": run[SOURCE].select_keys(KEY),
        "DataCollection": run.select(SOURCE, KEY),
    }


def total(worker_id: int, index: int, train_id: int, data: Any) -> float:
    if isinstance(data, dict):  # {source: {key: value}} or {key: value}
        data = data[SOURCE][KEY] if SOURCE in data else data[KEY]
    return float(np.sum(data))


@pytest.mark.parametrize(("name", "num_workers"), CONTEXTS)
@pytest.mark.parametrize("kind", ["KeyData", "SourceData", "DataCollection"])
def test_a_dataset_shorter_than_its_index_names_file_key_and_train(
    tmp_path: Path, name: str, num_workers: int, kind: str
) -> None:
    # Before: "IndexError: index 0 is out of bounds for axis 0 with size 0" (KeyData) or
    # "Index (10) out of range for (0-9)", naming no file, key or train.
    filename = write_xgm_run(tmp_path)
    shorten(filename, 10)
    run = extra_data.RunDirectory(str(tmp_path))
    with context(name, num_workers), pytest.raises(DataReadError) as info:
        pm.map(total, targets(run)[kind])
    message = str(info.value)
    assert str(filename) in message
    assert SOURCE in message
    # (Under a parallel context the first worker to fail may hold a later train.)
    assert re.search(r"for train 1001[0-5] from", message), message
    assert "shorter than the INDEX section" in message
    if kind == "KeyData":
        assert KEY in message
        assert info.value.key == KEY
    cause = info.value.__cause__  # the original, chained (from a process: its traceback)
    assert isinstance(cause, IndexError) or "IndexError" in str(cause)
    assert isinstance(info.value, OSError)
    assert isinstance(info.value, pm.PashmapError)
    assert info.value.train_id in range(10010, 10016)


def test_a_short_dataset_is_not_read_as_short_trains(tmp_path: Path) -> None:
    # Two entries per train, the dataset cut in the middle of the run: the last trains
    # used to come back with fewer entries (or none), with no error.
    path = tmp_path / "RAW-R0001-DA01-S00000.h5"
    write_file(str(path), [XGM("SPB_XTD9_XGM/DOOCS/MAIN")], ntrains=8, chunksize=4)
    with h5py.File(path, "r+") as f:
        counts = f[f"INDEX/{SOURCE}/data/count"]
        firsts = f[f"INDEX/{SOURCE}/data/first"]
        counts[:] = 2
        firsts[:] = np.arange(0, 16, 2)
        data = f[f"INSTRUMENT/{SOURCE}/data/intensityTD"]
        kept = np.concatenate([data[:], data[:]])[:12]  # trains 0-5 complete, then none
        del f[f"INSTRUMENT/{SOURCE}/data/intensityTD"]
        f.create_dataset(f"INSTRUMENT/{SOURCE}/data/intensityTD", data=kept, chunks=(2, 1000))
    run = extra_data.RunDirectory(str(tmp_path))
    with pytest.raises(DataReadError, match="train 10006"):
        pm.map(lambda w, i, t, d: len(d), run[SOURCE, KEY])


def test_a_file_truncated_after_opening_is_named_by_the_process_workers(tmp_path: Path) -> None:
    pytest.importorskip("pashmap_shm")
    filename = write_xgm_run(tmp_path)
    run = extra_data.RunDirectory(str(tmp_path))
    key_data = run[SOURCE, KEY]
    key_data.ndarray()  # the caller has the file open, as after a look at the data
    os.truncate(filename, os.path.getsize(filename) // 2)
    with context("processes", 2), pytest.raises(DataReadError) as info:
        pm.map(total, key_data)
    message = str(info.value)
    assert str(filename) in message
    assert "truncated file" in message  # HDF5's words, which named no file
    assert info.value.filename == str(filename)


@pytest.mark.parametrize(("name", "num_workers"), CONTEXTS)
def test_a_corrupted_chunk_index_names_the_file(
    tmp_path: Path, name: str, num_workers: int
) -> None:
    filename = write_xgm_run(tmp_path)
    run = extra_data.RunDirectory(str(tmp_path))
    selection = run.select(SOURCE, KEY)
    data = filename.read_bytes()
    filename.write_bytes(data.replace(b"TREE", b"XXXX"))  # every B-tree node's signature
    with context(name, num_workers), pytest.raises(DataReadError) as info:
        pm.map(total, selection)
    message = str(info.value)
    assert "B-tree signature" in message
    assert str(filename) in message


def test_the_error_travels_from_a_worker_with_its_attributes() -> None:
    error = DataReadError("message", filename="f.h5", source="S", key="k", train_id=3)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.filename, copy.source, copy.key, copy.train_id) == (
        DataReadError,
        "message",
        "f.h5",
        "S",
        "k",
        3,
    )
