"""``with ProcessContext() as ctx:`` keeps fork workers warm, without breaking fork code."""

from __future__ import annotations

import os
import threading

import numpy as np
import psutil

from pashmap_shm import ProcessContext


def test_workers_are_kept_between_the_maps_of_a_with_block() -> None:
    ctx = ProcessContext(num_workers=2)
    with ctx:
        out = ctx.zeros(16)

        def kernel(worker_id: int, index: int, value: int) -> None:
            out[index] = os.getpid()

        ctx.map(kernel, range(16))
        first = ctx.worker_pids()
        ctx.map(kernel, range(16))
        assert ctx.worker_pids() == first
        assert len(first) == 2
        assert set(out.tolist()) <= set(first)  # written by the warm workers, seen here
        late = ctx.zeros(4)  # allocated after the workers started: still shared
        ctx.map(lambda w, i, v: late.__setitem__(i, v * 2), range(4))
        assert late.tolist() == [0, 2, 4, 6]
    assert ctx.worker_pids() == []
    assert not any(p.pid in first for p in psutil.Process().children(recursive=True))


def test_maps_that_cannot_travel_are_forked_as_usual() -> None:
    ctx = ProcessContext(num_workers=2)
    before = ctx.zeros(4)  # fork-only shared memory: would reach warm workers as a copy
    lock = threading.Lock()  # not picklable
    with ctx:
        out = ctx.zeros(4)

        def locked(worker_id: int, index: int, value: int) -> None:
            with lock:
                out[index] = value + 1

        ctx.map(locked, range(4))
        assert out.tolist() == [1, 2, 3, 4]
        ctx.map(lambda w, i, v: before.__setitem__(i, 7), range(4))
        assert before.tolist() == [7, 7, 7, 7]
        assert ctx.worker_pids() == []  # nothing went to warm workers


def test_results_in_a_with_block_equal_the_serial_ones() -> None:
    data = np.arange(100.0)
    with ProcessContext(num_workers=2) as ctx:
        assert ctx.map(lambda w, i, v: float(v) ** 2, data) == [float(v) ** 2 for v in data]
