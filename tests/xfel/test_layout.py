"""TrainLayout: where each train's entries are, and reading them byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pashmap_xfel.layout import TrainLayout, _read_chunks, _whole_entry_chunks
from tests.xfel.conftest import AGIPD_MISSED_TRAIN, AGIPD_SOURCE, AGIPD_TRAINS, XGM_TRAINS

h5py = pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path: Path = tmp_path_factory.mktemp("layout") / "chunks.h5"
    rng = np.random.default_rng(5)
    with h5py.File(path, "w") as f:
        for entries in (1, 3, 4, 7):
            data = rng.integers(0, 60000, size=(30, 5, 6), dtype=np.uint16)
            f.create_dataset(
                f"chunks{entries}", data=data, chunks=(entries, 5, 6), maxshape=(None, 5, 6)
            )
        f.create_dataset("scalars", data=rng.random(30), chunks=(8,))
        f.create_dataset("big_endian", data=np.arange(30, dtype=">i4"), chunks=(4,))
        f.create_dataset("compressed", data=np.arange(30.0), chunks=(4,), compression="gzip")
        f.create_dataset("partial_chunks", data=np.ones((30, 6)), chunks=(1, 3))
        f.create_dataset("contiguous", data=np.arange(30))
        unwritten = f.create_dataset(
            "half_written", shape=(30, 2), dtype="f4", chunks=(5, 2), fillvalue=-1
        )
        unwritten[:10] = 7
    with h5py.File(path, "r") as f:
        yield f


@pytest.mark.parametrize("entries", [1, 3, 4, 7])
def test_chunks_are_read_byte_for_byte(datasets: Any, entries: int) -> None:
    dataset = datasets[f"chunks{entries}"]
    assert _whole_entry_chunks(dataset) == entries
    for first in range(30):
        for count in (1, 2, 3, 5, 8, 30 - first):
            if first + count > 30:
                continue
            got = _read_chunks(dataset, entries, first, count)
            np.testing.assert_array_equal(got, dataset[first : first + count])
            assert got.dtype == dataset.dtype


def test_scalar_entries(datasets: Any) -> None:
    dataset = datasets["scalars"]
    assert _whole_entry_chunks(dataset) == 8
    np.testing.assert_array_equal(_read_chunks(dataset, 8, 5, 13), dataset[5:18])


@pytest.mark.parametrize("name", ["big_endian", "compressed", "partial_chunks", "contiguous"])
def test_other_layouts_go_through_h5py(datasets: Any, name: str) -> None:
    assert _whole_entry_chunks(datasets[name]) == 0


def test_unwritten_chunks_read_as_the_fill_value(datasets: Any, tmp_path: Path) -> None:
    dataset = datasets["half_written"]
    assert _whole_entry_chunks(dataset) == 5
    with pytest.raises((RuntimeError, ValueError, OSError)):
        _read_chunks(dataset, 5, 8, 4)

    class File:  # what TrainLayout needs of an EXtra-data FileAccess
        file = datasets

    layout = TrainLayout(
        np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1, np.int64), [File()], "half_written"
    )
    np.testing.assert_array_equal(layout.read(0, 8, 4), [[7, 7], [7, 7], [-1, -1], [-1, -1]])


def test_layout_of_a_key_with_a_missed_train(agipd_run: Any) -> None:
    key = agipd_run[AGIPD_SOURCE.format(3), "image.data"]
    layout = TrainLayout.of(key)
    assert layout is not None
    tids = np.asarray(key.train_ids)
    has_data = (tids < 10000 + AGIPD_TRAINS) & (tids != AGIPD_MISSED_TRAIN)
    np.testing.assert_array_equal(layout.file_number >= 0, has_data)
    np.testing.assert_array_equal(layout.count, np.where(has_data, 3, 0))
    # Module 3 lost a train: its later trains start 3 entries earlier than the others'.
    np.testing.assert_array_equal(layout.first[has_data], 3 * np.arange(has_data.sum()))
    assert len(tids) == XGM_TRAINS


def test_layout_follows_a_train_selection(agipd_run: Any) -> None:
    key = agipd_run[AGIPD_SOURCE.format(0), "image.data"].select_trains(np.s_[4:9])
    layout = TrainLayout.of(key)
    assert layout is not None
    np.testing.assert_array_equal(layout.first, 3 * np.arange(4, 9))
    for i in range(5):
        np.testing.assert_array_equal(
            layout.read(int(layout.file_number[i]), int(layout.first[i]), 3),
            key.select_trains(np.s_[i]).ndarray(),
        )
