"""Maps sent by the caller to its pooled workers (workers not forked at the map).

A pooled worker receives each map on its Unix socket: a header, the file descriptors of
the share queue and of the memfd blocks the map refers to (``SCM_RIGHTS``), then the map
pickled with cloudpickle, in which every array in a memfd block is a handle (block,
offset, shape, strides, dtype): the worker maps the same pages, so arrays travel with no
copy. What workers send back is in :mod:`pashmap_shm.wire`.
"""

from __future__ import annotations

import functools
import io
import mmap
import os
import pickle
import socket
import struct
from array import array
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from pashmap import MapTarget
from pashmap_shm.blocks import drop_inherited, foreign_mapping, owner_of

__all__ = [
    "EncodedMap",
    "decode_map",
    "encode_map",
    "forget_received",
    "receive_map",
    "send_map",
]

# before each map: its bytes, its descriptors, the bytes of the note in front of it
MAP_HEADER = struct.Struct("=QIQ")
_MAX_FDS = 253  # SCM_MAX_FD


class EncodedMap(NamedTuple):
    """A map pickled for pooled workers (:func:`encode_map`).

    Attributes:
        message: what :func:`send_map` sends; empty when ``complete`` is false.
        fds: the descriptors of the memfd blocks it refers to, to send alongside.
        copies: how many writable arrays in anonymous shared memory (which only forked
            workers share) it holds: they would reach the workers as copies.
        foreign: writable arrays in shared memory pashmap did not allocate, described
            (:func:`pashmap_shm.blocks.foreign_mapping`): pickled, they would
            reach the workers as copies and the kernel's writes to them would be lost.
        copied_bytes: the bytes of array data copied into the message (arrays outside
            the memfd blocks, which travel as handles), as far as pickling went.
        complete: whether ``message`` is the whole map: not when it holds foreign
            arrays, nor when pickling stopped at ``copy_limit``.
    """

    message: bytes
    fds: list[int]
    copies: int
    foreign: list[str]
    copied_bytes: int
    complete: bool


class _CopyLimitReached(Exception):  # noqa: N818 (a signal, not an error)
    """Raised inside :func:`encode_map` to stop pickling a map that copies too much."""


def encode_map(
    kernel: Callable[..., Any],
    target: MapTarget[Any],
    shares: Sequence[Any],
    counts: NDArray[np.int64] | None,
    blas_threads: int | None,
    *,
    copy_limit: int | None = None,
) -> EncodedMap:
    """Pickle a map (cloudpickle, so closures and lambdas travel) for pooled workers.

    One pass both pickles the map and looks at every array in it: the arrays of memfd
    blocks travel as handles to the same memory; the others are copied and counted, and
    the ones in foreign shared memory are noted (the message is then incomplete).

    Args:
        copy_limit: stop as soon as more bytes of array data than this would be copied
            (the result is then incomplete); ``None``: no limit.

    Raises:
        Exception: whatever pickling the kernel or the target raised.
    """
    pickler = _map_pickler()(io.BytesIO(), copy_limit)
    try:
        pickler.dump((kernel, target, shares, counts, blas_threads))
    except _CopyLimitReached:
        return EncodedMap(b"", [], pickler.copies, pickler.foreign, pickler.copied, False)
    if pickler.foreign:
        return EncodedMap(b"", [], pickler.copies, pickler.foreign, pickler.copied, False)
    fds = pickler.fds
    serials = list(fds)
    message = pickle.dumps((serials, pickler.file.getvalue()), protocol=pickle.HIGHEST_PROTOCOL)
    return EncodedMap(
        message, [fds[serial] for serial in serials], pickler.copies, [], pickler.copied, True
    )


@functools.cache
def _map_pickler() -> Any:
    """The pickler class of :func:`encode_map` (made once: cloudpickle loads on demand)."""
    import cloudpickle

    class MapPickler(cloudpickle.CloudPickler):  # type: ignore[misc]
        def __init__(self, file: io.BytesIO, copy_limit: int | None) -> None:
            super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
            self.file = file
            self.copy_limit = copy_limit
            self.fds: dict[int, int] = {}  # serial -> fd of the blocks referred to
            self.copies = 0
            self.copied = 0
            self.foreign: list[str] = []

        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, np.ndarray) and obj.size:
                block = owner_of(obj)
                if block is not None and block.fd >= 0 and type(obj) is np.ndarray:
                    self.fds[block.serial] = block.fd
                    offset = int(obj.__array_interface__["data"][0]) - block.address
                    # A view with negative strides starts before its data pointer.
                    return _rebuild, (block.serial, offset, obj.shape, obj.strides, obj.dtype)
                described = foreign_mapping(obj) if block is None else None
                if described is not None:
                    self.foreign.append(described)
                    return _nothing, ()  # (the message will not be sent)
                if block is not None and obj.flags.writeable:
                    self.copies += 1
                self.copied += obj.nbytes
                if self.copy_limit is not None and self.copied > self.copy_limit:
                    raise _CopyLimitReached
            return super().reducer_override(obj)

    return MapPickler


def _nothing() -> None:
    return None


def send_map(
    sock: socket.socket, message: bytes, fds: list[int], released: Sequence[int] = ()
) -> None:
    """Send one map to a worker: the header with the descriptors, a note, the message.

    One ``sendmsg`` carries it all when the kernel takes it whole (the usual case for
    small maps); the rest follows with ``sendall``.

    Args:
        sock: the worker's socket.
        message: the map (:func:`encode_map`), or empty: the note alone, sent between
            maps (:func:`pashmap_shm.clear_cache`).
        fds: the descriptors to hand over with it.
        released: the note, which the worker acts on before the map: the start addresses
            of the blocks of shared memory the caller unmapped since its last note, whose
            inherited mappings the worker drops
            (:func:`pashmap_shm.blocks.drop_inherited`).

    Raises:
        OSError: the worker is gone.
        ValueError: more descriptors than one message can carry.
    """
    if len(fds) > _MAX_FDS:
        raise ValueError(
            f"a map refers to {len(fds) - 1} shared arrays, more than one message can hand "
            f"to a worker ({_MAX_FDS - 1}); gather them into fewer, larger arrays"
        )
    note = array("q", released).tobytes()
    head = MAP_HEADER.pack(len(message), len(fds), len(note)) + note
    sent = socket.send_fds(sock, [head, message], fds)
    if sent < len(head):
        sock.sendall(head[sent:])
        sent = len(head)
    if sent < len(head) + len(message):
        sock.sendall(memoryview(message)[sent - len(head) :])


def receive_map(sock: socket.socket) -> tuple[bytes, list[int]] | None:
    """In a worker: receive the next map :func:`send_map` sent, as ``(message, fds)``;
    ``None`` at end of file.

    The note of each message is acted on first (the blocks it names are dropped), and a
    note sent alone is not returned.
    """
    while True:
        received = _receive_message(sock)
        if received is None:
            return None
        note, message, fds = received
        drop_inherited(list(array("q", note)))
        if message:
            return message, fds
        for fd in fds:  # (a note alone brings none)
            os.close(fd)


def _receive_message(sock: socket.socket) -> tuple[bytes, bytes, list[int]] | None:
    """What one :func:`send_map` sent, as ``(note, message, fds)``; ``None`` at end of
    file."""
    data, fds, _, _ = socket.recv_fds(sock, MAP_HEADER.size, _MAX_FDS)
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    header = bytearray(data)
    while len(header) < MAP_HEADER.size:
        more = sock.recv(MAP_HEADER.size - len(header))
        if not more:
            return None
        header += more
    length, _, note_length = MAP_HEADER.unpack(header)
    note = _receive(sock, note_length)
    message = _receive(sock, length)
    if note is None or message is None:
        return None
    return note, message, fds


def _receive(sock: socket.socket, length: int) -> bytes | None:
    """Exactly ``length`` bytes from ``sock``; ``None`` at end of file."""
    if not length:
        return b""
    received = bytearray()
    while len(received) < length:
        chunk = sock.recv(min(length - len(received), 1 << 22))
        if not chunk:
            return None
        received += chunk
    return bytes(received)


# In a worker: serial -> the mapping of a block received for the current map.
_received: dict[int, mmap.mmap] = {}


def decode_map(message: bytes, fds: list[int]) -> tuple[Any, ...]:
    """In a worker: map the blocks received, then unpickle the map.

    The descriptors stay open (the mappings hold their own); the caller closes them.

    Returns:
        ``(kernel, target, shares, counts, blas_threads)``.
    """
    serials, payload = pickle.loads(message)
    for serial, fd in zip(serials, fds, strict=True):
        if serial not in _received:
            _received[serial] = mmap.mmap(fd, os.fstat(fd).st_size, flags=mmap.MAP_SHARED)
    decoded: tuple[Any, ...] = pickle.loads(payload)
    return decoded


def forget_received() -> None:
    """In a worker: drop the mappings of the last map (unmapped once unused)."""
    _received.clear()


def _rebuild(
    serial: int, offset: int, shape: tuple[int, ...], strides: tuple[int, ...], dtype: Any
) -> NDArray[Any]:
    """In a worker: the array a handle stands for, in the memory the caller shares."""
    out: NDArray[Any] = np.ndarray(
        shape, dtype=dtype, buffer=_received[serial], offset=offset, strides=strides
    )
    return out
