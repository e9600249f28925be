"""The blocks of shared memory this process has mapped, what is in them, and who hears
when one goes.

A :class:`Block` is one ``MAP_SHARED`` mapping that arrays are allocated in
(:mod:`pashmap_shm.shared_memory`). Every block mapped here is in :data:`mapped`, by start
address, until it is unmapped, so that :func:`owner_of` can find the block holding an
array's data (views included); :func:`is_shared` and :func:`foreign_mapping` say what
other memory an array is in. The rows of C-ordered arrays are in :data:`row_layouts`.

Warm workers forked from the caller inherit its mappings, which would keep the memory of
every block mapped at that moment alive until the workers end: an :class:`UnmapRecord`
(:func:`record_unmaps`) collects the blocks the caller unmaps (:func:`note_unmapped`), and
the workers drop their inherited mappings of them (:func:`drop_inherited`).
"""

from __future__ import annotations

import contextlib
import ctypes
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

__all__ = [
    "Block",
    "UnmapRecord",
    "drop_inherited",
    "drop_released",
    "foreign_mapping",
    "forked",
    "is_shared",
    "lock",
    "mapped",
    "note_rows",
    "note_unmapped",
    "owner_of",
    "record_unmaps",
    "released",
    "row_layouts",
    "tell_records",
]


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


lock = threading.Lock()
"""Held to read or change :data:`mapped` and the cache of blocks
(:mod:`pashmap_shm.block_cache`). Finalizers never wait for it: garbage collection may
run them in a thread that holds it."""
mapped: dict[int, Block] = {}
"""Start address -> every block made here that is still mapped (cached ones included)."""
released: deque[Block] = deque()
"""memfd blocks closed by a finalizer that could not take the lock: still in
:data:`mapped` until :func:`drop_released`."""
row_layouts: dict[int, tuple[weakref.ref[Any], int, int]] = {}
"""Start address of each live C-ordered array's block -> (its owner, rows, bytes per
row): what forked workers map ahead of their writes (:mod:`pashmap_shm.populate`)."""

# The process these blocks belong to. A child made by fork() inherits this state from its
# parent, whose cached blocks the parent may hand out again at any time: see forked().
# (Checked by pid, not set by an at-fork hook, which every fork of the program would run,
# worker or not.)
_owner_pid = os.getpid()
# Warm pools forked from this process, told about every block unmapped here.
_records: weakref.WeakSet[UnmapRecord] = weakref.WeakSet()
# In a warm worker: inherited blocks dropped (kept so that their mmap objects never unmap
# the reservations that replaced them).
_dropped: list[Block] = []
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


def forked() -> bool:
    """Whether this is a child forked from the process that mapped these blocks."""
    return os.getpid() != _owner_pid


def drop_released() -> None:
    """Forget the blocks closed without the lock (call with :data:`lock` held)."""
    while released:
        block = released.popleft()
        if mapped.get(block.address) is block:
            del mapped[block.address]


def owner_of(array: NDArray[Any]) -> Block | None:
    """The block allocated here that holds ``array``'s data, or ``None``.

    Args:
        array: a numpy array (a view of a shared array is found too).
    """
    start = int(array.__array_interface__["data"][0])
    with lock:
        drop_released()
        for address, block in mapped.items():
            if address <= start < address + block.size:
                return block
    return None


def note_rows(address: int, owner: object, shape: tuple[int, ...], nbytes: int) -> None:
    """Note the rows of an array allocated at ``address`` while ``owner`` lives."""
    if not shape or shape[0] < 2:
        return

    def forget(ref: weakref.ref[Any]) -> None:
        if row_layouts.get(address, (None,))[0] is ref:
            del row_layouts[address]

    row_layouts[address] = (weakref.ref(owner, forget), shape[0], nbytes // shape[0])


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


class UnmapRecord:
    """The start addresses of the blocks this process unmapped since the last :meth:`take`.

    Attributes:
        addresses: those addresses, oldest first.
        on_clear: called by :func:`pashmap_shm.clear_cache` when addresses are waiting (to
            tell the workers now rather than at the next map); it must not raise.
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


def note_unmapped(block: Block) -> None:
    """Tell every live :class:`UnmapRecord` that ``block`` was unmapped here."""
    if not forked():
        for record in list(_records):
            record.addresses.append(block.address)


def tell_records() -> None:
    """Call the ``on_clear`` of every record that has addresses waiting."""
    for record in list(_records):
        if record.addresses and record.on_clear is not None:
            record.on_clear()


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
    if not forked() or _libc_mmap is None:
        return 0
    dropped = 0
    for address in addresses:
        with lock:
            drop_released()
            block = mapped.pop(address, None)
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
