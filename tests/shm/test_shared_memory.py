"""Arrays in shared memory: allocation, sizes, reuse of dropped blocks, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import pashmap as pm
import pashmap.contexts
import pashmap_shm
from pashmap_shm import ProcessContext, ThreadContext
from tests.cgroups import run_in_cgroup


def test_allocations_are_shared_and_writable_by_workers() -> None:
    ctx = ProcessContext(2)
    for order in ("C", "F"):
        out = ctx.empty((30, 7), dtype=np.int32, order=order)  # type: ignore[arg-type]
        assert out.flags.writeable
        assert out.flags.c_contiguous if order == "C" else out.flags.f_contiguous
        assert pashmap_shm.is_shared(out)
        assert pashmap_shm.is_shared(out[3:, 2])

        def kernel(worker_id: int, index: int, value: int) -> None:
            out[index] = index  # noqa: B023 - runs before the loop moves on

        ctx.map(kernel, range(30))
        np.testing.assert_array_equal(out, np.repeat(np.arange(30), 7).reshape(30, 7))


@pytest.mark.parametrize(
    "make",
    [
        lambda: pm.zeros((3, 4), dtype=np.uint8),
        lambda: pm.ones(5),
        lambda: pm.full(4, 7, dtype=np.int16),
        lambda: pm.empty_like(np.zeros((2, 2), dtype=np.complex64)),
        lambda: pm.zeros_like(np.zeros((2, 3), order="F")),
        lambda: pm.array(4, dtype=[("a", "i4"), ("b", "f8")]),
        lambda: pm.array(fill=np.arange(6).reshape(2, 3)),
    ],
)
def test_every_helper_allocates_shared_memory(make) -> None:  # type: ignore[no-untyped-def]
    pm.set_default_context("processes", num_workers=2)
    assert pashmap_shm.is_shared(make())


def test_ordinary_arrays_are_not_shared() -> None:
    assert not pashmap_shm.is_shared(np.zeros(1000))
    assert not ThreadContext(2).zeros(10).base  # ordinary numpy memory
    assert not pashmap_shm.is_shared(ThreadContext(2).zeros(10))


def test_zero_size_array() -> None:
    out = ProcessContext(2).zeros((0, 5))
    assert out.shape == (0, 5)


@pytest.mark.parametrize("dtype", [object, [("a", "i4"), ("b", object)]])
def test_object_dtype_is_refused(dtype: object) -> None:
    with pytest.raises(TypeError, match="Python object"):
        ProcessContext(2).zeros(10, dtype=dtype)  # type: ignore[arg-type]


def test_object_dtype_is_fine_under_threads() -> None:
    out = ThreadContext(2).empty(3, dtype=object)
    ThreadContext(2).map(lambda wid, i, v: out.__setitem__(i, {v}), range(3))
    assert out.tolist() == [{0}, {1}, {2}]


def test_oversize_allocation_raises_memory_error_with_the_size() -> None:
    available = pashmap.contexts.available_memory()
    assert available is not None
    elements = (available // 8) * 2
    with pytest.raises(MemoryError, match=r"cannot allocate .* GiB \(\d+ bytes\).*available"):
        ProcessContext(2).empty(elements)


def test_absurd_allocation_raises_memory_error() -> None:
    with pytest.raises(MemoryError, match="cannot allocate"):
        ProcessContext(2).empty((2**40, 2**10))


def test_available_memory_is_plausible() -> None:
    available = pashmap.contexts.available_memory()
    assert available is not None
    assert 0 < available <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_dropped_blocks_are_reused() -> None:
    pashmap_shm.clear_cache()
    ctx = ProcessContext(2)
    first = ctx.empty(10**6)
    address = first.__array_interface__["data"][0]
    del first
    assert pashmap_shm.cached_bytes() >= 8 * 10**6
    second = ctx.empty(10**6 - 100)  # about the same size: same block
    assert second.__array_interface__["data"][0] == address
    assert pashmap_shm.cached_bytes() == 0
    third = ctx.empty(10**6)  # the block is taken: a new one
    assert third.__array_interface__["data"][0] != address


def test_much_smaller_requests_do_not_take_a_big_block() -> None:
    pashmap_shm.clear_cache()
    ctx = ProcessContext(2)
    big = ctx.empty(10**6)
    del big
    small = ctx.empty(10)
    assert pashmap_shm.cached_bytes() >= 8 * 10**6
    del small


def test_cache_limit_and_clear() -> None:
    ctx = ProcessContext(2)
    pashmap_shm.set_cache_limit(10**6)
    try:
        pashmap_shm.clear_cache()
        arrays = [ctx.empty(50_000) for _ in range(4)]  # 400 kB each
        del arrays
        assert 0 < pashmap_shm.cached_bytes() <= 10**6
        ctx.close()
        assert pashmap_shm.cached_bytes() == 0
    finally:
        pashmap_shm.set_cache_limit(2**30)
    with pytest.raises(ValueError, match="must not be negative"):
        pashmap_shm.set_cache_limit(-1)


def test_reused_memory_is_shared_again() -> None:
    ctx = ProcessContext(2)
    for cycle in range(5):
        out = ctx.empty(1000)
        ctx.map(lambda wid, i, v, out=out, c=cycle: out.__setitem__(i, v + c), range(1000))
        np.testing.assert_array_equal(out, np.arange(1000) + cycle)


def test_workers_never_reuse_the_callers_blocks() -> None:
    """A worker's nested allocation must not land in memory the caller may reuse."""
    pashmap_shm.clear_cache()
    ctx = ProcessContext(2)
    dropped = ctx.empty(10_000)
    free_address = dropped.__array_interface__["data"][0]
    del dropped  # cached in the caller
    assert pashmap_shm.cached_bytes() > 0

    def kernel(worker_id: int, index: int, value: int) -> int:
        scratch = ctx.empty(10_000)
        scratch[:] = -1
        return int(scratch.__array_interface__["data"][0])

    addresses = ctx.map(kernel, range(4))
    assert free_address not in addresses
    reused = ctx.empty(10_000)
    assert reused.__array_interface__["data"][0] == free_address
    assert not (reused == -1).all()


@pytest.mark.parametrize("child_cgroup", ["memory"], indirect=True)
def test_an_array_beyond_a_cgroup_v1_memory_limit_is_a_memory_error(child_cgroup: Path) -> None:
    # Before: the caller was OOM-killed (exit status 137 from a shell, -9 here) instead
    # of getting a MemoryError: only /sys/fs/cgroup (v2) was read for the limit.
    (child_cgroup / "memory.limit_in_bytes").write_text(str(2**30))
    out = run_in_cgroup(
        child_cgroup,
        "import numpy as np\n"
        "import pashmap as pm\n"
        "from pashmap_shm import ProcessContext\n"
        "pm.set_default_context(ProcessContext(2))\n"
        "try:\n"
        "    pm.zeros(3 * 2**29, dtype=np.uint8)\n"  # 1.5 GiB
        "except MemoryError as exc:\n"
        "    print('MemoryError:', exc)\n"
        "else:\n"
        "    print('allocated')\n",
    )
    assert out.startswith("MemoryError: "), out
    assert "1.50 GiB" in out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("memfd", [True, False])
def test_an_array_freed_while_the_allocator_is_busy_does_not_deadlock(memfd: bool) -> None:
    # Garbage collection may run an array's finalizer in a thread that holds the
    # allocator's lock (inside owner_of or an allocation): the finalizer must not wait
    # for that lock.
    from pashmap_shm import blocks, shared_memory

    array = shared_memory.allocate_shared((1 << 16,), np.dtype(np.float64), "C", memfd=memfd)
    block = blocks.owner_of(array)
    assert block is not None
    address = block.address
    with blocks.lock:
        del array  # the finalizer runs here, the lock held (a deadlock before)
    # Forgotten: no array of the program is said to live at the old address.
    probe = np.ndarray((1,), dtype=np.uint8, buffer=memoryview(bytearray(1)))
    assert blocks.owner_of(probe) is None
    if memfd:
        assert all(b.address != address for b in blocks.mapped.values())
    fresh = shared_memory.allocate_shared((1 << 16,), np.dtype(np.float64), "C", memfd=memfd)
    fresh[:] = 1.0
    assert blocks.owner_of(fresh) is not None
