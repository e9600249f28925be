"""The pashmap-shm contexts by name (the quick guide itself: tests/core/test_quick_guide.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import pashmap as pm
from pashmap_shm import ProcessContext, ThreadContext


@pytest.mark.parametrize(
    ("name", "klass"), [("threads", ThreadContext), ("processes", ProcessContext)]
)
def test_registered_by_entry_point(name: str, klass: type) -> None:
    context = pm.set_default_context(name, num_workers=2)
    assert type(context) is klass
    assert context.num_workers == 2
    assert repr(context) == f"{klass.__name__}(num_workers=2)"


def test_processes_share_arrays_in_place() -> None:
    """The caller's array object is the same one before and after the map."""
    with pm.use_context("processes", num_workers=2):
        out = pm.full((10, 3), -1.0)
        before = out.__array_interface__["data"][0]
        pm.map(lambda wid, i, row: out.__setitem__(i, row + i), np.zeros((10, 3)))
    assert out.__array_interface__["data"][0] == before
    np.testing.assert_array_equal(out, np.repeat(np.arange(10.0), 3).reshape(10, 3))


def test_closure_lambda_and_local_function_need_no_pickling() -> None:
    ctx = ProcessContext(2)
    lock = threading.Lock()  # cannot be pickled: reaches the workers by fork
    out = ctx.zeros(20, dtype=np.int64)

    def local(wid: int, index: int, value: int) -> None:
        with lock:
            out[index] = value * 2

    ctx.map(local, list(range(20)))
    assert out.tolist() == [2 * v for v in range(20)]
    assert ctx.map(lambda wid, i, v: v + 1, range(5)) == [1, 2, 3, 4, 5]
