"""Where each train's data for one key lie: file, first entry and entry count, per train.

Reading a KeyData share through ``kd.select_trains(...).trains()`` has a fixed cost per
share before the first byte is read (a new KeyData, its chunk list, and opening the
dataset), which adds up when a map is cut into dozens of shares per worker.
A :class:`TrainLayout` is computed once per target from the index EXtra-data already
holds (``FileAccess.get_index``), so a worker goes straight from a train's position to
the entries to read.

Reading itself (:meth:`TrainLayout.read`) takes HDF5's direct chunk path where the
stored bytes are the array's bytes: uncompressed, unfiltered chunks that hold whole
entries of a plain numeric type in native byte order (raw and corrected detector images
usually are). Each chunk is then read straight into the result, skipping HDF5's
selection, type conversion and chunk cache: less time per byte than
``dataset[first:stop]`` when the data are in the page cache (benchmarks/code_figures.py
measures both savings). Anything else, and chunks never written (which read as the fill
value), goes through ``dataset[first:stop]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TrainLayout"]


@dataclass
class TrainLayout:
    """Per train of a KeyData: which of its files holds the data, from which entry, how many.

    Attributes:
        file_number: per train, the position in ``kd.files`` of the file holding its data,
            -1 for a train that no file of the key has.
        first: per train, the first entry of the train's data in that file's dataset.
        count: per train, the number of entries (0 for a train without data).
        files: ``kd.files``, EXtra-data's ``FileAccess`` objects.
        path: the HDF5 path of the key's dataset in each file.
    """

    file_number: np.ndarray[Any, np.dtype[np.int64]]
    first: np.ndarray[Any, np.dtype[np.int64]]
    count: np.ndarray[Any, np.dtype[np.int64]]
    files: list[Any]
    path: str
    _datasets: dict[int, tuple[Any, int]] = field(default_factory=dict, repr=False)
    _datasets_pid: int = field(default=-1, repr=False)

    @classmethod
    def of(cls, key_data: Any) -> TrainLayout | None:
        """Find where the data of every train of ``key_data`` are.

        A train present in several files (suspect trains) is read from the first file
        that has it, and the first entry of it there, as ``KeyData.train_from_id`` does.

        Args:
            key_data: an ``extra_data.KeyData``.

        Returns:
            The layout; ``None`` when the KeyData's train IDs are not sorted and unique,
            or its files lack the index this relies on (then read through
            ``KeyData.trains()`` instead).
        """
        train_ids = np.asarray(key_data.train_ids, dtype=np.uint64)
        ntrains = len(train_ids)
        if ntrains > 1 and not bool(np.all(train_ids[1:] > train_ids[:-1])):
            return None
        file_number = np.full(ntrains, -1, dtype=np.int64)
        first = np.zeros(ntrains, dtype=np.int64)
        count = np.zeros(ntrains, dtype=np.int64)
        try:
            for number, file in enumerate(key_data.files):
                file_tids = np.asarray(file.train_ids, dtype=np.uint64)
                if not len(file_tids) or not ntrains:
                    continue
                firsts, counts = file.get_index(key_data.source, key_data.index_group)
                usable = min(len(file_tids), len(firsts), len(counts))
                file_tids = file_tids[:usable]
                wanted = np.ones(usable, dtype=bool)
                if not key_data.inc_suspect_trains:
                    wanted &= np.asarray(file.validity_flag[:usable], dtype=bool)
                position = np.searchsorted(train_ids, file_tids)
                inside = position < ntrains
                wanted &= inside
                wanted[inside] &= train_ids[position[inside]] == file_tids[inside]
                rows = np.nonzero(wanted)[0]
                # Keep the first row of each train in this file, and only trains that no
                # earlier file had.
                positions, first_rows = np.unique(position[rows], return_index=True)
                rows = rows[first_rows]
                new = file_number[positions] < 0
                positions, rows = positions[new], rows[new]
                file_number[positions] = number
                first[positions] = np.asarray(firsts, dtype=np.int64)[rows]
                count[positions] = np.asarray(counts, dtype=np.int64)[rows]
        except (AttributeError, KeyError, TypeError):
            return None
        return cls(file_number, first, count, list(key_data.files), key_data.hdf5_data_path)

    def __getstate__(self) -> dict[str, Any]:
        # Open datasets belong to this process and do not pickle; the receiver reopens.
        state = self.__dict__.copy()
        state["_datasets"] = {}
        state["_datasets_pid"] = -1
        return state

    def read(self, number: int, first: int, count: int) -> np.ndarray[Any, Any]:
        """Read entries ``first`` to ``first + count`` of the key's dataset in file ``number``.

        Args:
            number: a position in :attr:`files`.
            first: the first entry.
            count: the number of entries, ``>= 1``.

        Returns:
            A new array of shape ``(count, *entry_shape)``, as ``dataset[first:stop]``
            gives it.

        Raises:
            IndexError: the dataset ends before entry ``first + count`` (it is shorter
                than the file's INDEX section says).
        """
        dataset, chunk_entries = self._dataset(number)
        if chunk_entries:
            try:
                return _read_chunks(dataset, chunk_entries, first, count)
            except (RuntimeError, ValueError, OSError):
                # Mostly a chunk never written, which h5py/HDF5 versions report as any of
                # these: dataset[...] below gives its fill value (or raises a real error).
                pass
        result: np.ndarray[Any, Any] = dataset[first : first + count]
        if len(result) != count:  # a slice past the end is short, not an error
            raise IndexError(
                f"the dataset {self.path} has {dataset.shape[0]} entries, but the INDEX "
                f"section puts this train at entries {first} to {first + count - 1}"
            )
        return result

    def _dataset(self, number: int) -> tuple[Any, int]:
        # Opened once per process: one opened before a fork reads through a file that
        # close_inherited_files closes in the worker.
        pid = os.getpid()
        if self._datasets_pid != pid:
            self._datasets = {}
            self._datasets_pid = pid
        found = self._datasets.get(number)
        if found is None:
            dataset = self.files[number].file[self.path]
            found = self._datasets[number] = (dataset, _whole_entry_chunks(dataset))
        return found


def _whole_entry_chunks(dataset: Any) -> int:
    """Entries per chunk if chunks can be copied byte for byte into arrays, else 0."""
    chunks = dataset.chunks
    dtype = dataset.dtype
    if (
        chunks is None
        or dataset.is_virtual
        or tuple(chunks[1:]) != tuple(dataset.shape[1:])
        or dtype.kind not in "iufc"
        or not dtype.isnative
        or dtype.fields is not None
        or dtype.subdtype is not None
        or dataset.id.get_create_plist().get_nfilters() != 0
    ):
        return 0
    return int(chunks[0])


def _read_chunks(dataset: Any, chunk_entries: int, first: int, count: int) -> np.ndarray[Any, Any]:
    out: np.ndarray[Any, Any] = np.empty((count, *dataset.shape[1:]), dtype=dataset.dtype)
    rows = out.reshape(count, -1).view(np.uint8)  # one row of bytes per entry
    corner = (0,) * (dataset.ndim - 1)
    read_chunk = dataset.id.read_direct_chunk
    stop = first + count
    entry = first
    while entry < stop:
        chunk_start = entry - entry % chunk_entries
        chunk_stop = chunk_start + chunk_entries
        if chunk_start == entry and chunk_stop <= stop:
            # A whole chunk inside the range: straight into the result.
            read_chunk(
                (chunk_start, *corner), out=rows[entry - first : chunk_stop - first].reshape(-1)
            )
            entry = chunk_stop
        else:
            scratch = np.empty((chunk_entries, rows.shape[1]), dtype=np.uint8)
            read_chunk((chunk_start, *corner), out=scratch.reshape(-1))
            end = min(chunk_stop, stop)
            rows[entry - first : end - first] = scratch[entry - chunk_start : end - chunk_start]
            entry = end
    return out
