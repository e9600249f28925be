"""Arrays in shared memory, which workers write and the caller reads with no copy.

Every array lives in a :class:`pashmap_shm.blocks.Block`, one ``MAP_SHARED`` mapping with
one of two backends:

* anonymous memory (``mmap(MAP_SHARED | MAP_ANONYMOUS)``), for workers forked at each
  map: children made by ``fork()`` see the same pages. It is not a file, so it leaves
  nothing in ``/dev/shm`` and holds no file descriptor. Dropped blocks are kept for
  reuse (:mod:`pashmap_shm.block_cache`);
* a ``memfd`` (an anonymous file in memory), for workers that were not forked after the
  allocation (``forkserver``, ``spawn``, warm workers): its descriptor can be handed to
  them, and they map the same pages (see :mod:`pashmap_shm.map_messages`). A memfd block
  is closed and unmapped when its last array is dropped.

:mod:`pashmap_shm.blocks` knows which block holds an array's data, and the rows of each
C-ordered array, for forked workers, which map the rows they are about to write when
those are in memory already (:mod:`pashmap_shm.populate`). This module is the public face
of shared arrays: allocation, :func:`is_shared`, and the cache of dropped blocks.

Before mapping, the size is checked against the memory available to this process
(``MemAvailable``, and the cgroup's limit if there is one): a request that cannot fit
raises ``MemoryError`` at once, instead of the process being killed (or receiving SIGBUS)
part way through writing.
"""

from __future__ import annotations

import itertools
import mmap
import os
import weakref
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pashmap.contexts import Order, available_memory, format_bytes
from pashmap_shm.block_cache import (
    cache_limit,
    cached_bytes,
    clear_cache,
    give_back,
    set_cache_limit,
    take_cached,
)
from pashmap_shm.blocks import (
    Block,
    drop_released,
    is_shared,
    lock,
    mapped,
    note_rows,
    note_unmapped,
    released,
)

__all__ = [
    "allocate_shared",
    "cache_limit",
    "cached_bytes",
    "clear_cache",
    "is_shared",
    "set_cache_limit",
]


class _Owner:
    """The owner of one array's memory: its finalizer gives the block back."""

    __slots__ = ("__array_interface__", "__weakref__")

    def __init__(self, address: int, nbytes: int) -> None:
        self.__array_interface__ = {
            "shape": (nbytes,),
            "typestr": "|u1",
            "data": (address, False),
            "version": 3,
        }


_serials = itertools.count(1)


def allocate_shared(
    shape: tuple[int, ...], dtype: np.dtype[Any], order: Order, *, memfd: bool = False
) -> NDArray[Any]:
    """Return an uninitialised array in shared memory.

    Args:
        shape: the shape, a tuple of non-negative ints.
        dtype: the dtype; it must not hold Python objects.
        order: ``'C'`` or ``'F'``.
        memfd: back it with a memfd, which workers not forked after this call can map;
            else with anonymous memory, which only forked children share.

    Returns:
        A writable array whose memory the workers share with this process.

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
    block = None if memfd else take_cached(size)
    if block is None:
        what = f"{_describe(nbytes)} of shared memory for an array of shape {shape} {dtype}"
        block = _map_new(size, memfd, what)
    owner = _Owner(block.address, nbytes)
    weakref.finalize(owner, _release if memfd else give_back, block)
    raw: NDArray[np.uint8] = np.asarray(owner)
    out: NDArray[Any] = np.ndarray(shape, dtype=dtype, buffer=raw, order=order)
    if order == "C" or len(shape) == 1:
        note_rows(block.address, owner, shape, nbytes)
    return out


# ----------------------------------------------------------------- internals
def _map_new(size: int, memfd: bool, what: str) -> Block:
    """Map ``size`` fresh bytes, after checking that they fit."""
    available = available_memory()
    if available is not None and size > available and cached_bytes():
        clear_cache()
        available = available_memory()
    if available is not None and size > available:
        raise MemoryError(
            f"cannot allocate {what}: only {_describe(available)} is available to this process"
        )
    fd = -1
    try:
        if memfd:
            fd = os.memfd_create("pashmap", os.MFD_CLOEXEC)
            os.ftruncate(fd, size)
        block = Block(mmap.mmap(fd, size, flags=mmap.MAP_SHARED), size, fd, 0)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        raise MemoryError(f"cannot allocate {what}: {exc}") from exc
    with lock:
        drop_released()  # (before a new block may take the address of a closed one)
        if memfd:
            block.serial = next(_serials)
        mapped[block.address] = block
    return block


def _release(block: Block) -> None:
    """Finalizer of an array in a memfd block: close the block."""
    # Not blocking, as in give_back: garbage collection may run this in a thread that
    # holds the lock; the entry is then dropped by the next holder (drop_released).
    if lock.acquire(blocking=False):
        try:
            mapped.pop(block.address, None)
        finally:
            lock.release()
    else:
        released.append(block)
    block.mapping.close()
    os.close(block.fd)
    note_unmapped(block)


def _describe(nbytes: int) -> str:
    return f"{format_bytes(nbytes)} ({nbytes} bytes)"
