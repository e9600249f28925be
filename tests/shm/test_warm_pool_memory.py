"""Warm workers let go of the shared memory the caller frees.

Workers forked for a warm pool inherit the caller's mappings; without being told, they
would keep the memory of every array that existed when they started until the pool
closes, however often the caller drops its arrays and clears the cache.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import pashmap_shm
from pashmap_shm import ProcessContext

from .conftest import wait_until

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_leaks")]

SIZE = 256 * 2**20

WARM = {
    "with-block": lambda: ProcessContext(2),
    "persistent": lambda: ProcessContext(2, persistent=True),
}


def shared_mapping_at(pid: int, address: int) -> bool:
    """Whether process ``pid`` maps ``address`` shared (its memory is then kept)."""
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        span, perms = line.split()[:2]
        low, high = (int(bound, 16) for bound in span.split("-"))
        if low <= address < high:
            return perms[3] == "s"
    return False


def memfds(pid: int) -> int:
    """The memfds process ``pid`` holds open."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:")
        except OSError:
            continue
    return count


@pytest.mark.parametrize("kind", WARM)
def test_arrays_freed_by_the_caller_are_freed_in_warm_workers(kind: str) -> None:
    make: Callable[[], ProcessContext] = WARM[kind]
    fork_only = ProcessContext(2).zeros(SIZE // 8)  # anonymous shared memory
    fork_only[:] = 1
    with make() as ctx:
        memfd = ctx.zeros(SIZE // 8)  # a memfd
        memfd[:] = 1
        addresses = [fork_only.ctypes.data, memfd.ctypes.data]
        ctx.map(lambda w, i, v: None, range(4))
        pids = ctx.worker_pids()
        # The workers, forked after both arrays, map them (256 MiB each).
        assert all(shared_mapping_at(pid, a) for pid in pids for a in addresses)
        held = [memfds(pid) for pid in pids]

        del fork_only, memfd
        gc.collect()
        pashmap_shm.clear_cache()  # tells the idle workers, without waiting for a map

        assert wait_until(
            lambda: not any(shared_mapping_at(pid, a) for pid in pids for a in addresses)
        )
        assert wait_until(lambda: [memfds(pid) for pid in pids] == [n - 2 for n in held])
        assert ctx.map(lambda w, i, v: v + 1, range(4)) == [1, 2, 3, 4]
        assert ctx.worker_pids() == pids
        # Arrays allocated now are shared with the same workers as before.
        out = ctx.zeros(1000)
        ctx.map(lambda w, i, v: out.__setitem__(i, v), range(1000))
        assert np.array_equal(out, np.arange(1000.0))


def test_an_array_dropped_between_maps_is_dropped_by_the_workers_at_the_next() -> None:
    with ProcessContext(2, persistent=True) as ctx:
        big = ctx.zeros(SIZE // 8)
        ctx.map(lambda w, i, v: None, range(4))  # the workers inherit it
        pids = ctx.worker_pids()
        address = big.ctypes.data
        del big
        gc.collect()  # a memfd block is unmapped here as soon as its array is dropped
        assert ctx.map(lambda w, i, v: v, range(4)) == [0, 1, 2, 3]
        assert not any(shared_mapping_at(pid, address) for pid in pids)
