"""Warm workers and shared memory pashmap did not allocate (np.memmap, SharedMemory).

Outside a ``with`` block a forked worker writes through such a mapping; warm workers
would get a pickled copy. Inside a block those maps are forked; under
``persistent=True`` (where nothing is forked) they are refused with a clear error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest

from pashmap_shm import ProcessContext

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("pool_helper_processes", "no_leaks"),
]

N = 136


@pytest.fixture(params=["memmap", "SharedMemory"])
def kind(request: pytest.FixtureRequest) -> str:
    """The kind of shared memory pashmap did not allocate."""
    return str(request.param)


@contextlib.contextmanager
def foreign_zeros(kind: str, folder: Path) -> Iterator[np.ndarray]:
    """A writable array of N zeros in shared memory that pashmap did not allocate.

    (A context manager, not a fixture: pytest would hold a fixture's value, and with it
    the memmap's file descriptor, until after the leak check.)
    """
    if kind == "memmap":
        yield np.memmap(folder / "out.f8", dtype=np.float64, mode="w+", shape=(N,))
        return
    segment = shared_memory.SharedMemory(create=True, size=N * 8)
    try:
        array = np.ndarray((N,), dtype=np.float64, buffer=segment.buf)
        array[:] = 0
        yield array
        del array
    finally:
        segment.close()
        segment.unlink()


def test_writes_into_foreign_shared_memory_reach_it_inside_a_with_block(
    kind: str, tmp_path: Path
) -> None:
    with foreign_zeros(kind, tmp_path) as foreign, ProcessContext(2) as ctx:
        ctx.map(lambda w, i, v: None, range(4))  # the warm workers are running
        warm = set(ctx.worker_pids())

        def kernel(worker_id: int, index: int, value: int) -> int:
            foreign[index] = 1.0
            return os.getpid()

        for _ in range(3):
            foreign[:] = 0
            pids = set(ctx.map(kernel, range(N)))
            assert float(foreign.sum()) == N
            assert pids.isdisjoint(warm)  # forked, not pickled to the warm workers
        # A map that does not touch it still goes to the warm workers.
        assert set(ctx.map(lambda w, i, v: os.getpid(), range(8))) <= warm


def test_a_read_only_view_of_foreign_memory_may_travel(kind: str, tmp_path: Path) -> None:
    with foreign_zeros(kind, tmp_path) as foreign, ProcessContext(2) as ctx:
        foreign[:] = 2.0
        view = foreign[:]
        view.flags.writeable = False
        ctx.map(lambda w, i, v: None, range(4))
        warm = set(ctx.worker_pids())
        got = ctx.map(lambda w, i, v: (os.getpid(), float(view[i])), range(N))
    assert {pid for pid, _ in got} <= warm
    assert [value for _, value in got] == [2.0] * N


def test_persistent_workers_refuse_foreign_shared_memory(kind: str, tmp_path: Path) -> None:
    with foreign_zeros(kind, tmp_path) as foreign, ProcessContext(2, persistent=True) as ctx:
        with pytest.raises(TypeError, match="shared memory that pashmap did not allocate"):
            ctx.map(lambda w, i, v: foreign.__setitem__(i, 1.0), range(N))
        assert float(foreign.sum()) == 0.0
        # The context still works for maps that write into its own arrays.
        out = ctx.zeros(N)
        ctx.map(lambda w, i, v: out.__setitem__(i, 1.0), range(N))
        assert float(out.sum()) == N
