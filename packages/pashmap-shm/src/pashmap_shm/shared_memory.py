"""Arrays in shared memory, which workers write and the caller reads with no copy.

Every array lives in a :class:`Block`, one ``MAP_SHARED`` mapping with one of two
backends:

* anonymous memory (``mmap(MAP_SHARED | MAP_ANONYMOUS)``), for workers forked at each
  map: children made by ``fork()`` see the same pages. It is not a file, so it leaves
  nothing in ``/dev/shm`` and holds no file descriptor;
* a ``memfd`` (an anonymous file in memory), for workers that were not forked after the
  allocation (``forkserver``, ``spawn``, warm workers): its descriptor can be handed to
  them, and they map the same pages (see :mod:`pashmap_shm.map_messages`).

:func:`owner_of` finds the block holding an array's data (views included). The rows of
each C-ordered array are noted in :data:`row_layouts` for forked workers, which map the
rows they are about to write when those are in memory already (:mod:`pashmap_shm.populate`).

Writing fresh anonymous memory is slow, since the kernel faults in and zeroes every
page on first touch, so programs that allocate, map and drop arrays of the same size in
a loop would pay that at every cycle: dropped anonymous blocks are kept in a small cache
(at most :func:`cache_limit` bytes, an eighth of the machine's memory by default, 4 GiB
at most) and handed out again for a request of about the same size. :func:`clear_cache`
(also called by ``ProcessContext.close()``) returns the cached memory to the system.
Forked workers never reuse blocks: the parent may hand its cached blocks out again at
any time. A memfd block is closed and unmapped when its last array is dropped.

Warm workers forked from the caller inherit its mappings, which would keep the memory
of every block mapped at that moment alive until the workers end: an
:class:`UnmapRecord` (:func:`record_unmaps`) collects what the caller unmaps, and the
workers drop their inherited mappings of it (:func:`drop_inherited`).

Before mapping, the size is checked against the memory available to this process
(``MemAvailable``, and the cgroup's limit if there is one): a request that cannot fit
raises ``MemoryError`` at once, instead of the process being killed (or receiving SIGBUS)
part way through writing.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import mmap
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pashmap.contexts import Order, available_memory, format_bytes

__all__ = [
    "Block",
    "UnmapRecord",
    "allocate_shared",
    "cache_limit",
    "cached_bytes",
    "clear_cache",
    "drop_inherited",
    "foreign_mapping",
    "is_shared",
    "owner_of",
    "record_unmaps",
    "row_layouts",
    "set_cache_limit",
]

_GiB = 2**30


class Block:
    """One mapping of shared memory, which arrays are allocated in.

    Attributes:
        address: where the mapping starts in this process.
        size: its length in bytes (whole pages).
        mapping: the ``mmap`` object.
        fd: the memfd behind it, or ``-1`` for anonymous memory (forked workers only).
        serial: a number naming a memfd block to workers, unique in this process
            (0 for anonymous memory).
    """

    __slots__ = ("address", "fd", "mapping", "serial", "size")

    def __init__(self, mapping: mmap.mmap, size: int, fd: int, serial: int) -> None:
        self.mapping = mapping
        self.size = size
        self.fd = fd
        self.serial = serial
        self.address = int(np.frombuffer(mapping, dtype=np.uint8, count=1).ctypes.data)


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


_lock = threading.Lock()
_serials = itertools.count(1)
# Start address -> every block made here that is still mapped (cached ones included).
_mapped: dict[int, Block] = {}
# Anonymous blocks whose arrays have all been dropped; oldest first.
_free: list[Block] = []
_free_bytes = 0
# Filled by finalizers, which may run inside an allocation (garbage collection), so they
# only append here (atomic) and the cache takes the blocks under its lock later.
_returned: deque[Block] = deque()
# memfd blocks closed by a finalizer that could not take the lock: still in _mapped.
_released: deque[Block] = deque()
_limit: int | None = None
# The process this cache belongs to. In a child made by fork() the cache state it
# inherited is the parent's, whose "free" blocks the parent may hand out again at any
# time, and whose arrays the child may drop while the parent still uses them: a child
# never reuses blocks. (Checked by pid, not set by an at-fork hook, which every fork of
# the program would run, worker or not.)
_owner_pid = os.getpid()
# Warm pools forked from this process, told about every block unmapped here.
_records: weakref.WeakSet[UnmapRecord] = weakref.WeakSet()
# In a warm worker: inherited blocks dropped (kept so that their mmap objects never unmap
# the reservations that replaced them).
_dropped: list[Block] = []
# Start address of each live C-ordered array's block -> (its owner, rows, bytes per row):
# what forked workers map ahead of their writes (:mod:`pashmap_shm.populate`).
row_layouts: dict[int, tuple[weakref.ref[Any], int, int]] = {}
_PROT_NONE = 0
_MAP_FIXED = 0x10
_MAP_NORESERVE = 0x4000
_RESERVE_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED | _MAP_NORESERVE
try:
    _libc_mmap: Any = ctypes.CDLL(None, use_errno=True).mmap
    _libc_mmap.restype = ctypes.c_void_p
    _libc_mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
except (OSError, AttributeError):  # no C library to ask
    _libc_mmap = None


def _forked() -> bool:
    return os.getpid() != _owner_pid


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
    block = None if memfd else _take_cached(size)
    if block is None:
        what = f"{_describe(nbytes)} of shared memory for an array of shape {shape} {dtype}"
        block = _map_new(size, memfd, what)
    owner = _Owner(block.address, nbytes)
    weakref.finalize(owner, _release if memfd else _give_back, block)
    raw: NDArray[np.uint8] = np.asarray(owner)
    out: NDArray[Any] = np.ndarray(shape, dtype=dtype, buffer=raw, order=order)
    if order == "C" or len(shape) == 1:
        _note_rows(block.address, owner, shape, nbytes)
    return out


def _note_rows(address: int, owner: object, shape: tuple[int, ...], nbytes: int) -> None:
    """Note the rows of an array allocated at ``address`` while ``owner`` lives."""
    if not shape or shape[0] < 2:
        return

    def forget(ref: weakref.ref[Any]) -> None:
        if row_layouts.get(address, (None,))[0] is ref:
            del row_layouts[address]

    row_layouts[address] = (weakref.ref(owner, forget), shape[0], nbytes // shape[0])


def owner_of(array: NDArray[Any]) -> Block | None:
    """The block allocated here that holds ``array``'s data, or ``None``.

    Args:
        array: a numpy array (a view of a shared array is found too).
    """
    start = int(array.__array_interface__["data"][0])
    with _lock:
        _drop_released()
        for address, block in _mapped.items():
            if address <= start < address + block.size:
                return block
    return None


def foreign_mapping(array: NDArray[Any]) -> str | None:
    """Describe ``array`` if it is writable and lies in a shared ``mmap`` pashmap did not
    make (a ``numpy.memmap`` opened ``'r+'``, a ``multiprocessing.shared_memory``
    buffer); else ``None``.

    Such an array reaches workers that did not inherit it (pickled) as a copy, so the
    kernel's writes to it would be lost.
    """
    if not array.flags.writeable or owner_of(array) is not None:
        return None
    base: Any = array
    while not isinstance(base, mmap.mmap):
        if isinstance(base, memoryview):
            base = base.obj
        elif isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        else:
            return None
    if not is_shared(array):
        return None  # a private (copy-on-write) mapping: nobody else sees the writes
    kind = "a numpy.memmap" if isinstance(array, np.memmap) else "an array in an mmap"
    filename = getattr(array, "filename", None)
    where = f" of {filename}" if filename else ""
    return f"{kind}{where} (shape {array.shape}, {array.dtype})"


def is_shared(array: NDArray[Any]) -> bool:
    """Whether ``array``'s memory is a shared mapping that forked workers write through.

    True for arrays allocated here and for any other ``MAP_SHARED`` memory (a
    ``multiprocessing.shared_memory`` block, a ``numpy.memmap`` opened ``'r+'``).

    Args:
        array: a numpy array.

    Returns:
        Whether writes made by a forked child to this array are seen by this process.
    """
    if owner_of(array) is not None:
        return True
    start = int(array.__array_interface__["data"][0])
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
    for record in list(_records):
        if record.addresses and record.on_clear is not None:
            record.on_clear()
    return released


class UnmapRecord:
    """The start addresses of the blocks this process unmapped since the last :meth:`take`.

    Attributes:
        addresses: those addresses, oldest first.
        on_clear: called by :func:`clear_cache` when addresses are waiting (to tell the
            workers now rather than at the next map); it must not raise.
    """

    __slots__ = ("__weakref__", "addresses", "on_clear")

    def __init__(self) -> None:
        self.addresses: deque[int] = deque()
        self.on_clear: Callable[[], None] | None = None

    def take(self) -> list[int]:
        """The addresses recorded since the last call, oldest first."""
        taken: list[int] = []
        while self.addresses:
            taken.append(self.addresses.popleft())
        return taken


def record_unmaps() -> UnmapRecord:
    """Start recording the blocks this process unmaps, until the record is dropped."""
    record = UnmapRecord()
    _records.add(record)
    return record


def drop_inherited(addresses: list[int]) -> int:
    """In a worker forked from the caller: drop inherited blocks the caller unmapped.

    Each block's range is replaced by an inaccessible private reservation rather than
    unmapped, so the address cannot be handed to another mapping while stale objects
    inherited from the caller still point into it (touching them kills the worker,
    which the caller reports); an inherited memfd descriptor is let go. The block's
    memory is then free once no other process maps it.

    Args:
        addresses: start addresses of blocks, as the caller's :class:`UnmapRecord` gave
            them; those this process did not inherit are ignored.

    Returns:
        The number of blocks dropped.
    """
    if not _forked() or _libc_mmap is None:
        return 0
    dropped = 0
    for address in addresses:
        with _lock:
            _drop_released()
            block = _mapped.pop(address, None)
        if block is None:
            continue
        result = _libc_mmap(address, block.size, _PROT_NONE, _RESERVE_FLAGS, -1, 0)
        if result is None or result != address:
            continue  # left mapped: costs memory, never correctness
        if block.fd >= 0:
            _let_go_of_memfd(block.fd)
        _dropped.append(block)  # its mmap object unmaps the reservation only if it dies
        dropped += 1
    return dropped


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
    with _lock:
        _drop_released()  # (before a new block may take the address of a closed one)
        if memfd:
            block.serial = next(_serials)
        _mapped[block.address] = block
    return block


def _release(block: Block) -> None:
    """Finalizer of an array in a memfd block: close the block."""
    # Not blocking, as in _give_back: garbage collection may run this in a thread that
    # holds the lock; the entry is then dropped by the next holder (_drop_released).
    if _lock.acquire(blocking=False):
        try:
            _mapped.pop(block.address, None)
        finally:
            _lock.release()
    else:
        _released.append(block)
    block.mapping.close()
    os.close(block.fd)
    _note_unmapped(block)


def _drop_released() -> None:
    """Forget the blocks :func:`_release` closed without the lock (call with it held)."""
    while _released:
        block = _released.popleft()
        if _mapped.get(block.address) is block:
            del _mapped[block.address]


def _give_back(block: Block) -> None:
    """Finalizer of an array in anonymous memory: keep the block for reuse, or unmap it."""
    if _forked():
        return  # the parent may still use it; the mapping goes with this process
    _returned.append(block)
    # Not blocking: this may run from garbage collection inside an allocation that holds
    # the lock; the block then waits in _returned until the next allocation.
    if _lock.acquire(blocking=False):
        try:
            _absorb_returned()
        finally:
            _lock.release()


def _take_cached(size: int) -> Block | None:
    """Pop the smallest cached block of at least ``size`` bytes (and not much more)."""
    global _free_bytes
    if _forked():
        return None
    with _lock:
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
        _mapped.pop(block.address, None)
        block.mapping.close()
        _note_unmapped(block)


def _let_go_of_memfd(fd: int) -> None:
    """Make every descriptor of the memfd ``fd`` (the block's, and the one its mmap
    object keeps) name ``/dev/null`` instead: the memfd is let go, and whatever closes
    those descriptors later (a finalizer run by a stale array) closes them harmlessly."""
    try:
        memfd = os.fstat(fd)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError, ValueError):
                other = os.fstat(int(name))
                if (other.st_dev, other.st_ino) == (memfd.st_dev, memfd.st_ino):
                    os.dup2(null, int(name))
    finally:
        os.close(null)


def _note_unmapped(block: Block) -> None:
    if not _forked():
        for record in list(_records):
            record.addresses.append(block.address)


def _describe(nbytes: int) -> str:
    return f"{format_bytes(nbytes)} ({nbytes} bytes)"
