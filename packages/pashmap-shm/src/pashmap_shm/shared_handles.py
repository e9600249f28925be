"""Shared arrays that reach workers not forked at the map as handles, never as copies.

Workers started by ``forkserver`` or ``spawn``, or kept warm between maps, were not
forked from the caller after the arrays were allocated, so they cannot inherit the
memory. Arrays allocated by such a context live in a ``memfd`` (an anonymous file in
memory, nothing in ``/dev/shm``): when a kernel, a target or anything else sent to the
workers refers to one, the pickle carries a small handle (block number, offset, shape,
strides, dtype) and the memfd's file descriptor travels next to it over the worker's
Unix socket (``SCM_RIGHTS``). The worker maps the same pages: zero copy both ways.

The memfd is closed and unmapped when the caller drops the last array using it; a
worker's mappings are dropped after each map. Nothing outlives the processes.
"""

from __future__ import annotations

import io
import itertools
import mmap
import os
import pickle
import threading
import warnings
import weakref
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pashmap.contexts import Order, available_memory
from pashmap_shm import shared_memory
from pashmap_shm.unshared_writes import NotSharedWarning

__all__ = ["HandlePickler", "allocate_with_handle", "dumps_with_handles", "loads_with_handles"]

_lock = threading.Lock()
_serials = itertools.count(1)
# start address -> (end address, serial, fd) of every memfd block alive in this process
_blocks: dict[int, tuple[int, int, int]] = {}
# In a worker: serial -> the mapping of a block received for the current map.
_received: dict[int, mmap.mmap] = {}


class _Block:
    """The owner of a memfd-backed array's memory; its finalizer closes the memfd."""

    __slots__ = ("__array_interface__", "__weakref__")

    def __init__(self, address: int, nbytes: int) -> None:
        self.__array_interface__ = {
            "shape": (nbytes,),
            "typestr": "|u1",
            "data": (address, False),
            "version": 3,
        }


def allocate_with_handle(
    shape: tuple[int, ...], dtype: np.dtype[Any], order: Order
) -> NDArray[Any]:
    """An uninitialised array in a memfd, which can be sent to workers as a handle.

    Raises:
        TypeError: the dtype holds Python objects.
        MemoryError: the array does not fit in the memory available.
    """
    if dtype.hasobject:
        raise TypeError(
            f"cannot allocate an array of dtype {dtype} in shared memory: it holds Python "
            "object references, which other processes cannot use"
        )
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if nbytes == 0:
        return np.empty(shape, dtype=dtype, order=order)
    size = -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE
    available = available_memory()
    if available is not None and size > available:
        raise MemoryError(
            f"cannot allocate {nbytes} bytes of shared memory for an array of shape {shape} "
            f"{dtype}: only {available} bytes are available to this process"
        )
    fd = os.memfd_create("pashmap", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        block = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
    except OSError as exc:
        os.close(fd)
        raise MemoryError(
            f"cannot allocate {nbytes} bytes of shared memory for an array of shape {shape} "
            f"{dtype}: {exc}"
        ) from exc
    address = int(np.frombuffer(block, dtype=np.uint8, count=1).ctypes.data)
    with _lock:
        _blocks[address] = (address + size, next(_serials), fd)
    owner = _Block(address, nbytes)
    weakref.finalize(owner, _release, address, block, fd)
    raw: NDArray[np.uint8] = np.asarray(owner)
    out: NDArray[Any] = np.ndarray(shape, dtype=dtype, buffer=raw, order=order)
    return out


def _release(address: int, block: mmap.mmap, fd: int) -> None:
    with _lock:
        _blocks.pop(address, None)
    block.close()
    os.close(fd)


def _find_block(array: NDArray[Any]) -> tuple[int, int, int] | None:
    """The (start, serial, fd) of the memfd block holding ``array``'s data, if any."""
    start = int(array.__array_interface__["data"][0])
    with _lock:
        for address, (end, serial, fd) in _blocks.items():
            if address <= start < end:
                return address, serial, fd
    return None


def _in_forked_memory(array: NDArray[Any]) -> bool:
    """Whether ``array`` lies in anonymous shared memory from :mod:`shared_memory`."""
    start = int(array.__array_interface__["data"][0])
    with shared_memory._lock:
        return any(a <= start < a + size for a, size in shared_memory._mapped.items())


def _rebuild(
    serial: int, offset: int, shape: tuple[int, ...], strides: tuple[int, ...], dtype: Any
) -> NDArray[Any]:
    """In a worker: the array a handle stands for, in the memory the caller shares."""
    out: NDArray[Any] = np.ndarray(
        shape, dtype=dtype, buffer=_received[serial], offset=offset, strides=strides
    )
    return out


class HandlePickler:
    """Pickle with cloudpickle; arrays in memfd blocks become handles plus descriptors.

    Args:
        buffer: where the pickle is written.
    """

    def __init__(self, buffer: io.BytesIO) -> None:
        import cloudpickle

        self.fds: dict[int, int] = {}  # serial -> fd of the blocks referred to
        fds = self.fds

        class _Pickler(cloudpickle.CloudPickler):  # type: ignore[misc]
            def reducer_override(self, obj: Any) -> Any:
                if type(obj) is np.ndarray and obj.size:
                    found = _find_block(obj)
                    if found is not None:
                        address, serial, fd = found
                        fds[serial] = fd
                        offset = int(obj.__array_interface__["data"][0]) - address
                        # A view with negative strides starts before its data pointer.
                        return _rebuild, (serial, offset, obj.shape, obj.strides, obj.dtype.str)
                    if _in_forked_memory(obj) and obj.flags.writeable:
                        warnings.warn(
                            "an array allocated by a fork ProcessContext (anonymous shared "
                            "memory, which only forked workers inherit) reaches these workers "
                            "as a copy: their writes to it are lost. Allocate it with the "
                            "context that runs the map (ctx.zeros(...), or "
                            "pm.Accumulator(..., context=ctx))",
                            NotSharedWarning,
                            stacklevel=2,
                        )
                return super().reducer_override(obj)

        self._pickler = _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)

    def dump(self, obj: object) -> None:
        """Write the pickle of ``obj``."""
        self._pickler.dump(obj)


def dumps_with_handles(obj: object) -> tuple[bytes, list[int], list[int]]:
    """Pickle ``obj`` for a worker.

    Returns:
        The pickle, the serials of the memfd blocks it refers to, and their descriptors
        (to send alongside, in the same order).
    """
    buffer = io.BytesIO()
    pickler = HandlePickler(buffer)
    pickler.dump(obj)
    serials = list(pickler.fds)
    return buffer.getvalue(), serials, [pickler.fds[s] for s in serials]


def loads_with_handles(payload: bytes, serials: list[int], fds: list[int]) -> Any:
    """In a worker: map the blocks received, then unpickle ``payload``.

    The descriptors stay open (the mappings hold their own); the caller closes them.
    """
    for serial, fd in zip(serials, fds, strict=True):
        if serial not in _received:
            _received[serial] = mmap.mmap(fd, os.fstat(fd).st_size, flags=mmap.MAP_SHARED)
    return pickle.loads(payload)


def forget_received() -> None:
    """In a worker: drop the mappings of the last map (unmapped once unused)."""
    _received.clear()
