"""Maps over large ordinary arrays inside a ``with`` block are forked, not pickled.

A fork shares the caller's memory for free, where warm workers would get the arrays
pickled at every map. Which maps go to the warm workers is part of the context's
one-line description (``pashmap info``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import pashmap_shm
from pashmap_shm import ProcessContext

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_leaks")]

LARGE = pashmap_shm.process.WARM_COPY_LIMIT // 8 + 1  # float64 elements, just over


def test_a_map_over_a_large_ordinary_array_forks_inside_a_with_block() -> None:
    data = np.arange(float(LARGE))
    with ProcessContext(2) as ctx:
        ctx.map(lambda w, i, v: None, range(4))
        warm = set(ctx.worker_pids())
        # The array as the target, and the array in the kernel's closure.
        over = ctx.map(lambda w, i, v: (os.getpid(), v), data[:LARGE])
        assert [value for _, value in over] == data.tolist()
        assert {pid for pid, _ in over}.isdisjoint(warm)
        closure = ctx.map(lambda w, i, v: (os.getpid(), float(data[-1 - i])), range(8))
        assert [value for _, value in closure] == data[::-1][:8].tolist()
        assert {pid for pid, _ in closure}.isdisjoint(warm)
        # A small one still goes to the warm workers.
        small = data[:1000].copy()
        assert set(ctx.map(lambda w, i, v: os.getpid(), small)) <= warm
        assert set(ctx.worker_pids()) == warm


def test_persistent_workers_still_take_large_ordinary_arrays() -> None:
    data = np.arange(float(LARGE))
    with ProcessContext(2, persistent=True) as ctx:
        ctx.map(lambda w, i, v: None, range(4))
        warm = set(ctx.worker_pids())
        got = ctx.map(lambda w, i, v: (os.getpid(), float(data[-1 - i])), range(8))
        assert [value for _, value in got] == data[::-1][:8].tolist()
        assert {pid for pid, _ in got} <= warm


def test_the_description_says_which_maps_use_warm_workers() -> None:
    line = ProcessContext(2).describe()
    assert "\n" not in line
    assert "inside a with block, warm workers take the maps" in line
    assert "4.00 MiB" in line
    assert "kept between maps" in ProcessContext(2, persistent=True).describe()
