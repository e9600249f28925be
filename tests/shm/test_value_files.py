"""Large return values arrive as memory files (issue 15 §3), from workers forked per map
and from warm workers alike.

The worker writes the array once into a memory file and the caller maps it: these tests
look at the caller's own memory map (``/proc/self/maps``) to see that the path is taken,
that the mapping is private (it behaves as the caller's own memory), and that nothing of
it is left once the values are dropped or the map fails.
"""

from __future__ import annotations

import gc
import os
import warnings
from typing import Any

import numpy as np
import pytest

from pashmap import NotSharedWarning
from pashmap_shm import ProcessContext, is_shared

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("pool_helper_processes")]

MIB = 1 << 20
FILE_NAME = "pashmap-value"


@pytest.fixture
def ctx(forked_or_warm: ProcessContext) -> ProcessContext:
    return forked_or_warm


def mapping_of(array: np.ndarray) -> str:
    """The line of /proc/self/maps whose range holds ``array``'s first byte."""
    address = array.__array_interface__["data"][0]
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(part, 16) for part in line.split()[0].split("-"))
            if start <= address < end:
                return line
    raise AssertionError(f"no mapping holds {address:#x}")


def file_mappings() -> list[str]:
    with open("/proc/self/maps") as maps:
        return [line for line in maps if FILE_NAME in line]


def filled(worker_id: int, index: int, value: Any) -> np.ndarray:
    return np.full(MIB // 8 * (1 + index % 3), float(index))  # 1 to 3 MiB


@pytest.mark.usefixtures("no_leaks")
def test_large_values_are_private_mappings_of_memory_files(ctx: ProcessContext) -> None:
    assert not file_mappings()
    values = ctx.map(filled, range(12), shares=4)
    for index, value in enumerate(values):
        assert value.shape == (MIB // 8 * (1 + index % 3),)
        assert (value == index).all()
        line = mapping_of(value)
        assert FILE_NAME in line, line
        assert line.split()[1] == "rw-p", line  # private: copy-on-write
        assert value.flags.writeable
        assert not is_shared(value)
    del values, value
    gc.collect()
    assert not file_mappings()  # the memory went with the arrays


def test_a_value_below_the_threshold_stays_in_the_pipe(ctx: ProcessContext) -> None:
    from pashmap_shm.value_files import FILE_FROM

    below, at = ctx.map(lambda w, i, v: np.ones(FILE_FROM - 1 + i, np.uint8), range(2))
    assert FILE_NAME not in mapping_of(below)
    assert FILE_NAME in mapping_of(at)


def test_a_returned_array_behaves_as_the_callers_own_memory(ctx: ProcessContext) -> None:
    """The caller's writes stay; a later map's workers write into their own copy."""
    values = ctx.map(filled, range(2))
    values[0][:5] = -1.0
    assert values[0][:6].tolist() == [-1.0] * 5 + [0.0]

    def write_into_the_result(worker_id: int, index: int, value: Any) -> None:
        values[1][index] = 99.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotSharedWarning)  # (the warning is right)
        ctx.map(write_into_the_result, range(4))
    assert (values[1] == 1.0).all()


def test_many_files_in_flight_arrive_in_order(ctx: ProcessContext) -> None:
    """More files than the channel queues at once (10 datagrams on Linux by default),
    several per share and per value."""
    values = ctx.map(lambda w, i, v: (filled(w, i, v), np.full(MIB // 8, -i)), range(48), shares=2)
    for index, (first, second) in enumerate(values):
        assert (first == index).all()
        assert (second == -index).all()


@pytest.mark.usefixtures("no_leaks")
def test_without_memory_files_values_come_through_the_pipe(
    ctx: ProcessContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that cannot make a memory file (out of descriptors) streams the value."""
    if ctx.start_method == "forkserver":
        pytest.skip("fork-server workers do not inherit this test's patch")

    def no_file(name: str, flags: int = 0) -> int:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(os, "memfd_create", no_file)  # inherited by the forked workers
    values = ctx.map(filled, range(6))
    for index, value in enumerate(values):
        assert (value == index).all()
        assert FILE_NAME not in mapping_of(value)


def fail_after_files(worker_id: int, index: int, value: Any) -> np.ndarray:
    if index == 7:
        raise ValueError("element 7")
    return np.full(2 * MIB // 8, float(index))


@pytest.mark.usefixtures("no_leaks")
def test_a_failed_map_leaves_no_file_behind(ctx: ProcessContext) -> None:
    for _ in range(5):
        with pytest.raises(ValueError, match="element 7"):
            ctx.map(fail_after_files, range(16), shares=8)
        gc.collect()
        assert not file_mappings()


def test_past_the_mapping_budget_values_are_read_into_memory(
    ctx: ProcessContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each mapped value is one entry of the process's memory map, which Linux limits
    (vm.max_map_count): past the budget the caller reads the files instead."""
    from pashmap_shm import value_files

    gc.collect()  # (values of earlier tests, unmapped during the map, would count)
    live = value_files._mapped[0] - value_files._mapped[1]
    monkeypatch.setattr(value_files, "_LIVE_MAX", live + 2)
    values = ctx.map(filled, range(6), shares=6)
    where = [FILE_NAME in mapping_of(value) for value in values]
    assert sorted(where) == [False] * 4 + [True] * 2  # (the first two to arrive)
    for index, value in enumerate(values):
        assert (value == index).all()
    del values, value
    gc.collect()  # the two mappings go, so the budget is free again
    again = ctx.map(filled, range(2))
    assert all(FILE_NAME in mapping_of(value) for value in again)
