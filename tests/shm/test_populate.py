"""Forked workers map the rows of outputs already in memory before writing them.

The proof is the kernel's own count of page faults (``ru_minflt``) around its write: a
row of 16 pages written into memory the worker has not mapped costs 16 faults; a row the
worker mapped before the share costs none. Values, rows left alone, memory that stays
unallocated and the fallback when the kernel refuses the advice are checked too.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import resource
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import pashmap_shm
from pashmap_shm import ProcessContext, populate

ROWS = 64
ROW_PAGES = 16
COLUMNS = ROW_PAGES * mmap.PAGESIZE // 8  # float64 rows of 16 pages each

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)


def _kernel_populates() -> bool:
    """Whether this kernel knows MADV_POPULATE_READ (Linux 5.14+)."""
    page = mmap.mmap(-1, mmap.PAGESIZE)
    try:
        page.madvise(populate.MADV_POPULATE_READ)
    except OSError:
        return False
    finally:
        page.close()
    return True


def _shmem_in_small_pages() -> bool:
    """Whether fresh shared memory faults in 4 KiB at a time (no shmem huge pages)."""
    try:
        setting = Path("/sys/kernel/mm/transparent_hugepage/shmem_enabled").read_text()
    except OSError:
        return True
    return "[never]" in setting or "[deny]" in setting


needs_populate = pytest.mark.skipif(
    not _kernel_populates(), reason="the kernel lacks MADV_POPULATE_READ (Linux < 5.14)"
)
# The first write of a fresh row costs one fault per page only in small pages.
SMALL_PAGES = _shmem_in_small_pages()


@pytest.fixture(autouse=True)
def fresh_memory() -> None:
    """Each test allocates fresh memory, not blocks an earlier test dropped."""
    pashmap_shm.clear_cache()


def resident_pages(array: NDArray[Any]) -> NDArray[np.bool_]:
    """Which pages of ``array`` (page-aligned, whole pages) are in memory (mincore)."""
    start = int(array.__array_interface__["data"][0])
    assert start % mmap.PAGESIZE == 0
    assert array.nbytes % mmap.PAGESIZE == 0
    pages = np.zeros(array.nbytes // mmap.PAGESIZE, dtype=np.uint8)
    assert _libc.mincore(start, array.nbytes, pages.ctypes.data) == 0
    return (pages & 1).astype(bool)


def assert_rows(out: NDArray[np.float64], values: NDArray[Any]) -> None:
    """Every element of row ``i`` of ``out`` is ``values[i]``."""
    np.testing.assert_array_equal(out, np.broadcast_to(values[:, None], out.shape))


def write_rows(
    out: NDArray[np.float64], faults: NDArray[np.int64], worker_id: int, index: int, value: int
) -> None:
    """The kernel: write one row, and count the page faults the write cost."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    out[index] = value
    faults[index] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@needs_populate
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["closure", "partial"])
def test_rows_written_again_cost_no_page_faults(kind: str) -> None:
    ctx = ProcessContext(2)
    out = ctx.empty((ROWS, COLUMNS))
    faults = ctx.zeros(ROWS, dtype=np.int64)

    def closure(worker_id: int, index: int, value: int) -> None:
        write_rows(out, faults, worker_id, index, value)

    kernel = closure if kind == "closure" else functools.partial(write_rows, out, faults)
    for attempt in range(3):
        ctx.map(kernel, range(attempt, ROWS + attempt))
        assert_rows(out, np.arange(attempt, ROWS + attempt))
        if attempt == 0:  # fresh memory: every page of every row faulted in
            assert faults.sum() >= ROWS * ROW_PAGES or not SMALL_PAGES
        else:  # written before: mapped before each share, not one fault per page
            assert faults.sum() < ROWS, faults


@needs_populate
@pytest.mark.timeout(60)
def test_a_block_handed_out_again_by_the_cache_is_mapped_too() -> None:
    ctx = ProcessContext(2)
    first = ctx.empty((ROWS, COLUMNS))
    first[:] = 1
    address = first.__array_interface__["data"][0]
    del first
    out = ctx.empty((ROWS, COLUMNS))
    assert out.__array_interface__["data"][0] == address  # the same block, reused
    faults = ctx.zeros(ROWS, dtype=np.int64)
    ctx.map(functools.partial(write_rows, out, faults), range(ROWS))
    assert_rows(out, np.arange(ROWS))
    assert faults.sum() < ROWS, faults


@pytest.mark.skipif(not SMALL_PAGES, reason="shmem huge pages: a write allocates 2 MiB")
@pytest.mark.timeout(60)
def test_rows_never_written_stay_unallocated_and_zero() -> None:
    ctx = ProcessContext(2)
    out = ctx.empty((ROWS, COLUMNS))
    assert not resident_pages(out).any()  # fresh: no page allocated yet
    even = np.arange(0, ROWS, 2)

    def every_other(worker_id: int, index: int, value: int) -> None:
        if index % 2 == 0:
            out[index] = value

    for _ in range(3):  # the later maps see the even rows in memory, the odd ones not
        ctx.map(every_other, range(ROWS))
    resident = resident_pages(out).reshape(ROWS, ROW_PAGES)
    assert resident[even].all()
    assert not resident[1::2].any()  # nothing mapped (allocated) that was not written
    assert_rows(out[even], even)
    assert not out[1::2].any()  # read as zeros (which allocates them only now)


@pytest.mark.timeout(60)
def test_one_dimensional_outputs() -> None:
    ctx = ProcessContext(2)
    n = 8 * mmap.PAGESIZE
    out = ctx.zeros(n, dtype=np.int64)

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index] = value

    for shift in (1, 2):
        ctx.map(kernel, np.arange(n) + shift)
        np.testing.assert_array_equal(out, np.arange(n) + shift)


@pytest.mark.timeout(60)
def test_a_kernel_that_refuses_the_advice_falls_back_to_faults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An advice number no kernel knows: madvise really fails (EINVAL), as
    # MADV_POPULATE_READ does on Linux before 5.14; the workers inherit the setting.
    monkeypatch.setattr(populate, "_advice", 0x7FFF)
    ctx = ProcessContext(2)
    out = ctx.empty((ROWS, COLUMNS))
    faults = ctx.zeros(ROWS, dtype=np.int64)
    kernel = functools.partial(write_rows, out, faults)
    for attempt in range(2):
        ctx.map(kernel, range(attempt, ROWS + attempt))
        assert_rows(out, np.arange(attempt, ROWS + attempt))
    if SMALL_PAGES:
        assert faults.sum() >= ROWS * ROW_PAGES  # each page faulted in again, as before


@needs_populate
@pytest.mark.timeout(60)
def test_warm_workers_map_the_rows_of_the_blocks_they_receive() -> None:
    with ProcessContext(2) as ctx:
        out = ctx.empty((ROWS, COLUMNS))
        faults = ctx.zeros(ROWS, dtype=np.int64)
        kernel = functools.partial(write_rows, out, faults)
        for attempt in range(3):
            ctx.map(kernel, range(attempt, ROWS + attempt))
            assert_rows(out, np.arange(attempt, ROWS + attempt))
            if attempt == 0:
                assert faults.sum() >= ROWS * ROW_PAGES or not SMALL_PAGES
            else:  # the block is mapped anew at each map, its rows before each share
                assert faults.sum() < ROWS, faults
        assert len(set(ctx.worker_pids())) == 2  # (warm workers did run these maps)
