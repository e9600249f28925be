"""Arrays in shared anonymous memory, which forked workers write and the caller reads.

Memory comes from ``mmap(MAP_SHARED | MAP_ANONYMOUS)``: it is not a file, so it leaves
nothing behind in ``/dev/shm`` and holds no file descriptor; children created by
``fork()`` see the same pages, so their writes reach the caller without a copy. It is
unmapped when the last array (or view) using it is dropped.

Writing fresh anonymous memory is slow: every page is faulted in and zeroed by the kernel
on first touch (about 0.8 GB/s on a busy node, against several GB/s into memory already
touched). Programs that allocate, map and drop arrays of the same size in a loop would pay
that every cycle, so dropped blocks are kept in a small cache (at most
:func:`cache_limit` bytes, an eighth of the machine's memory by default, 4 GiB at most) and
handed out again for a request of about the same size. :func:`clear_cache` (also called by
``ProcessContext.close()``) returns the cached memory to the system. Forked workers never
reuse blocks: the parent may hand its cached blocks out again at any time.

Before mapping, the size is checked against the memory available to this process
(``MemAvailable``, and the cgroup's limit if there is one): a request that cannot fit
raises ``MemoryError`` at once, instead of the process being killed (or receiving SIGBUS)
part way through writing.
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pashmap.contexts import Order, available_memory, format_bytes

__all__ = [
    "allocate_shared",
    "cache_limit",
    "cached_bytes",
    "clear_cache",
    "is_shared",
    "set_cache_limit",
]

_GiB = 2**30

_lock = threading.Lock()
# A mapping: its size, the mmap object and its start address.
_Entry = tuple[int, mmap.mmap, int]
# Blocks whose arrays have all been dropped; oldest first.
_free: list[_Entry] = []
_free_bytes = 0
# Filled by finalizers, which may run inside an allocation (garbage collection), so they
# only append here (atomic) and the cache takes the blocks under its lock later.
_returned: deque[_Entry] = deque()
# Start address -> size of every mapping made here that is still mapped.
_mapped: dict[int, int] = {}
_limit: int | None = None
# The process this cache belongs to. In a child made by fork() the cache state it
# inherited is the parent's, whose "free" blocks the parent may hand out again at any
# time, and whose arrays the child may drop while the parent still uses them: a child
# never reuses blocks. (Checked by pid, not set by an at-fork hook, which every fork of
# the program would run, worker or not.)
_owner_pid = os.getpid()


def _forked() -> bool:
    return os.getpid() != _owner_pid


class _Block:
    """The owner of an array's memory: its finalizer returns the mapping to the cache."""

    __slots__ = ("__array_interface__", "__weakref__")

    def __init__(self, address: int, nbytes: int) -> None:
        self.__array_interface__ = {
            "shape": (nbytes,),
            "typestr": "|u1",
            "data": (address, False),
            "version": 3,
        }


def allocate_shared(shape: tuple[int, ...], dtype: np.dtype[Any], order: Order) -> NDArray[Any]:
    """Return an uninitialised array in shared anonymous memory.

    Args:
        shape: the shape, a tuple of non-negative ints.
        dtype: the dtype; it must not hold Python objects.
        order: ``'C'`` or ``'F'``.

    Returns:
        A writable array whose memory forked children share with this process.

    Raises:
        TypeError: the dtype holds Python objects (references cannot be shared between
            processes).
        MemoryError: the array is larger than the memory available (the message gives
            both sizes).
    """
    if dtype.hasobject:
        raise TypeError(
            f"cannot allocate an array of dtype {dtype} in shared memory: it holds Python "
            "object references, which other processes cannot use. Use a numeric, bytes or "
            "structured dtype, return the objects from the kernel instead, or use "
            "ThreadContext"
        )
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if nbytes == 0:
        return np.empty(shape, dtype=dtype, order=order)
    size = -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE
    entry = _take_cached(size)
    if entry is None:
        entry = _map_new(size, nbytes, shape, dtype)
    owner = _Block(entry[2], nbytes)
    weakref.finalize(owner, _give_back, entry)
    raw: NDArray[np.uint8] = np.asarray(owner)
    out: NDArray[Any] = np.ndarray(shape, dtype=dtype, buffer=raw, order=order)
    return out


def is_shared(array: NDArray[Any]) -> bool:
    """Whether ``array``'s memory is a shared mapping that forked workers write through.

    True for arrays allocated here and for any other ``MAP_SHARED`` memory (a
    ``multiprocessing.shared_memory`` block, a ``numpy.memmap`` opened ``'r+'``).

    Args:
        array: a numpy array.

    Returns:
        Whether writes made by a forked child to this array are seen by this process.
    """
    start = int(array.__array_interface__["data"][0])
    with _lock:
        for address, size in _mapped.items():
            if address <= start < address + size:
                return True
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux: assume the best rather than warn wrongly
        return True
    for line in maps.splitlines():
        span, _, rest = line.partition(" ")
        low, _, high = span.partition("-")
        if int(low, 16) <= start < int(high, 16):
            return rest[3:4] == "s"
    return False


def cache_limit() -> int:
    """The most bytes of dropped shared memory kept for reuse."""
    global _limit
    if _limit is None:
        try:
            total = mmap.PAGESIZE * os.sysconf("SC_PHYS_PAGES")
        except (OSError, ValueError):
            total = 8 * _GiB
        _limit = min(total // 8, 4 * _GiB)
    return _limit


def set_cache_limit(nbytes: int) -> None:
    """Set how many bytes of dropped shared memory to keep for reuse; 0 turns reuse off.

    Args:
        nbytes: the limit in bytes, ``>= 0``. Cached blocks beyond it are released now.

    Raises:
        ValueError: ``nbytes`` is negative.
    """
    global _limit
    if nbytes < 0:
        raise ValueError(f"the cache limit must not be negative, got {nbytes}")
    _limit = int(nbytes)
    with _lock:
        _absorb_returned()
        _evict(0)


def cached_bytes() -> int:
    """The bytes of dropped shared memory currently kept for reuse."""
    with _lock:
        _absorb_returned()
        return _free_bytes


def clear_cache() -> int:
    """Release every cached block of shared memory to the system.

    Returns:
        The number of bytes released (0 in a forked worker, which never caches).
    """
    if _forked():
        return 0
    with _lock:
        _absorb_returned()
        released = _free_bytes
        _evict(_free_bytes + cache_limit())
        return released


# ----------------------------------------------------------------- internals
def _give_back(entry: _Entry) -> None:
    """Finalizer of a block's owner: keep the mapping for reuse, or unmap it."""
    if _forked():
        return  # the parent may still use it; the mapping goes with this process
    _returned.append(entry)
    # Not blocking: this may run from garbage collection inside an allocation that holds
    # the lock; the block then waits in _returned until the next allocation.
    if _lock.acquire(blocking=False):
        try:
            _absorb_returned()
        finally:
            _lock.release()


def _take_cached(size: int) -> _Entry | None:
    """Pop the smallest cached block of at least ``size`` bytes (and not much more)."""
    global _free_bytes
    if _forked():
        return None
    with _lock:
        _absorb_returned()
        best = -1
        for position, (block_size, _, _) in enumerate(_free):
            if size <= block_size <= size + size // 4 and (best < 0 or block_size < _free[best][0]):
                best = position
        if best < 0:
            return None
        entry = _free.pop(best)
        _free_bytes -= entry[0]
        return entry


def _map_new(size: int, nbytes: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> _Entry:
    """Map ``size`` fresh bytes, after checking that they fit."""
    available = available_memory()
    if available is not None and size > available and cached_bytes():
        clear_cache()
        available = available_memory()
    if available is not None and size > available:
        raise MemoryError(
            f"cannot allocate {_describe(nbytes)} of shared memory for an array of shape "
            f"{shape} {dtype}: only {_describe(available)} is available to this process"
        )
    try:
        block = mmap.mmap(-1, size, flags=mmap.MAP_SHARED)
    except OSError as exc:
        raise MemoryError(
            f"cannot allocate {_describe(nbytes)} of shared memory for an array of shape "
            f"{shape} {dtype}: {exc}"
        ) from exc
    address = int(np.frombuffer(block, dtype=np.uint8, count=1).ctypes.data)
    with _lock:
        _mapped[address] = size
    return size, block, address


def _absorb_returned() -> None:
    """Move blocks given back by finalizers into the cache (call with the lock held)."""
    global _free_bytes
    while _returned:
        entry = _returned.popleft()
        _free.append(entry)
        _free_bytes += entry[0]
    _evict(0)


def _evict(room: int) -> None:
    """Unmap the oldest cached blocks until ``room`` more bytes fit (lock held)."""
    global _free_bytes
    limit = cache_limit()
    while _free and _free_bytes + room > limit:
        size, block, address = _free.pop(0)
        _free_bytes -= size
        _mapped.pop(address, None)
        block.close()


def _describe(nbytes: int) -> str:
    return f"{format_bytes(nbytes)} ({nbytes} bytes)"
