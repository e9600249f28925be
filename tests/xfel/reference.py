"""What the tests compare against: plain serial loops over EXtra-data's own trains().

Results cross process boundaries as fingerprints (shape, dtype and a hash of the bytes
of every array, recursively), so that a parallel map can return them cheaply and a
comparison says which train and which key differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import pashmap as pm

# (context name, num_workers) of every context a result must not depend on.
LOCAL = ("local", 1)
PARALLEL = [("processes", 1), ("processes", 2), ("processes", 4), ("threads", 2)]


def fingerprint(value: Any) -> Any:
    """A small, comparable summary of a train's data that changes with any value in it."""
    if isinstance(value, dict):
        return tuple(sorted(((repr(k), fingerprint(v)) for k, v in value.items())))
    if type(value).__name__ == "DataArray":
        coords = tuple(
            sorted(
                (str(name), fingerprint(np.asarray(c.values))) for name, c in value.coords.items()
            )
        )
        return ("DataArray", tuple(value.dims), fingerprint(np.asarray(value.values)), coords)
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.hasobject:
            content = repr(array.tolist()).encode()
        else:
            content = np.ascontiguousarray(array).tobytes()
        return ("array", array.dtype.str, array.shape, hashlib.blake2b(content).hexdigest())
    return ("value", type(value).__name__, repr(value))


def serial(obj: Any, **trains_kwargs: Any) -> list[tuple[int, int, Any]]:
    """``(index, train_id, fingerprint)`` per train from a plain loop over ``obj.trains()``.

    ``index`` is the train's position in ``obj.train_ids``.
    """
    position = {int(t): i for i, t in enumerate(obj.train_ids)}
    return [
        (position[int(tid)], int(tid), fingerprint(data))
        for tid, data in obj.trains(**trains_kwargs)
    ]


def serial_source(
    source_data: Any, run: Any, keys: str = "*", **trains_kwargs: Any
) -> list[tuple[int, int, Any]]:
    """The serial loop for a SourceData: ``data[source]`` of ``run.select(...).trains()``.

    SourceData has no trains() of its own; selecting the source (with the same key
    pattern ``keys``) from its run and taking its entry of each train's dict is what
    users write.
    """
    name = source_data.source
    selection = run.select(name, keys).select_trains(_by_id(source_data.train_ids))
    position = {int(t): i for i, t in enumerate(source_data.train_ids)}
    return [
        (position[int(tid)], int(tid), fingerprint(data[name]))
        for tid, data in selection.trains(**trains_kwargs)
    ]


def serial_key(key_data: Any, *, keep_dims: bool = False) -> list[tuple[int, int, Any]]:
    """The serial loop for a KeyData, with empty arrays for trains without data.

    ``kd.trains(include_empty=True)`` gives None (or an empty array with keep_dims) for
    trains that have an index entry but no data, and skips trains its files do not have;
    both are an empty array here, so every train of ``kd.train_ids`` is present.
    """
    empty = np.empty((0, *key_data.entry_shape), dtype=key_data.dtype)
    found = {
        int(tid): (empty if value is None else value)
        for tid, value in key_data.trains(keep_dims=keep_dims, include_empty=True)
    }
    return [
        (i, int(tid), fingerprint(found.get(int(tid), empty)))
        for i, tid in enumerate(key_data.train_ids)
    ]


def _by_id(train_ids: Any) -> Any:
    from extra_data import by_id

    return by_id[np.asarray(train_ids, dtype=np.uint64)]


def fingerprint_kernel(worker_id: int, index: int, train_id: int, data: Any) -> Any:
    """The kernel of the equality tests: return what the serial loop computed."""
    return (index, train_id, fingerprint(data))


@contextmanager
def context(name: str, num_workers: int) -> Iterator[pm.Context]:
    """Make ``name`` the default context for a block; skip if its plugin is missing."""
    if name == "local":
        with pm.use_context(pm.LocalContext()) as ctx:
            yield ctx
        return
    import pytest

    pytest.importorskip(
        "pashmap_shm", reason="the 'threads'/'processes' contexts are not installed"
    )
    with pm.use_context(name, num_workers=num_workers) as ctx:
        yield ctx


def mapped(target: Any, kernel: Callable[..., Any] = fingerprint_kernel) -> list[Any]:
    """``pm.map(kernel, target)`` on the default context."""
    return pm.map(kernel, target)
