"""Dropped blocks of anonymous shared memory, kept to be handed out again.

Writing fresh anonymous memory is slow, since the kernel faults in and zeroes every page
on first touch, so programs that allocate, map and drop arrays of the same size in a loop
would pay that at every cycle. Dropped anonymous blocks are therefore kept here (at most
:func:`cache_limit` bytes, an eighth of the machine's memory by default, 4 GiB at most)
and handed out again for a request of about the same size (:func:`take_cached`).
:func:`clear_cache` (also called by ``ProcessContext.close()``) returns the cached memory
to the system. Forked workers never reuse blocks: the parent may hand its cached blocks
out again at any time. (memfd blocks are never cached: they are closed when their last
array goes.)
"""

from __future__ import annotations

import mmap
import os
from collections import deque

from pashmap_shm.blocks import Block, forked, lock, mapped, note_unmapped, tell_records

__all__ = [
    "cache_limit",
    "cached_bytes",
    "clear_cache",
    "give_back",
    "set_cache_limit",
    "take_cached",
]

_GiB = 2**30

# Anonymous blocks whose arrays have all been dropped; oldest first.
_free: list[Block] = []
_free_bytes = 0
# Filled by finalizers, which may run inside an allocation (garbage collection), so they
# only append here (atomic) and the cache takes the blocks under the lock later.
_returned: deque[Block] = deque()
_limit: int | None = None


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
    with lock:
        _absorb_returned()
        _evict(0)


def cached_bytes() -> int:
    """The bytes of dropped shared memory currently kept for reuse."""
    with lock:
        _absorb_returned()
        return _free_bytes


def clear_cache() -> int:
    """Release every cached block of shared memory to the system.

    Warm workers are told at once which blocks to drop of those they inherited.

    Returns:
        The number of bytes released (0 in a forked worker, which never caches).
    """
    if forked():
        return 0
    with lock:
        _absorb_returned()
        released = _free_bytes
        _evict(_free_bytes + cache_limit())
    tell_records()
    return released


def take_cached(size: int) -> Block | None:
    """Pop the smallest cached block of at least ``size`` bytes (and not much more)."""
    global _free_bytes
    if forked():
        return None
    with lock:
        _absorb_returned()
        best = -1
        for position, block in enumerate(_free):
            if size <= block.size <= size + size // 4 and (
                best < 0 or block.size < _free[best].size
            ):
                best = position
        if best < 0:
            return None
        block = _free.pop(best)
        _free_bytes -= block.size
        return block


def give_back(block: Block) -> None:
    """Finalizer of an array in anonymous memory: keep the block for reuse, or unmap it."""
    if forked():
        return  # the parent may still use it; the mapping goes with this process
    _returned.append(block)
    # Not blocking: this may run from garbage collection inside an allocation that holds
    # the lock; the block then waits in _returned until the next allocation.
    if lock.acquire(blocking=False):
        try:
            _absorb_returned()
        finally:
            lock.release()


def _absorb_returned() -> None:
    """Move blocks given back by finalizers into the cache (call with the lock held)."""
    global _free_bytes
    while _returned:
        block = _returned.popleft()
        _free.append(block)
        _free_bytes += block.size
    _evict(0)


def _evict(room: int) -> None:
    """Unmap the oldest cached blocks until ``room`` more bytes fit (lock held)."""
    global _free_bytes
    limit = cache_limit()
    while _free and _free_bytes + room > limit:
        block = _free.pop(0)
        _free_bytes -= block.size
        mapped.pop(block.address, None)
        block.mapping.close()
        note_unmapped(block)
