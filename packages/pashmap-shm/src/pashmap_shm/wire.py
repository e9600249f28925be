"""The wire format between the caller and its worker processes, both ways.

Workers report on a pipe (forked workers) or a Unix socket (pooled workers) of their
own; the caller reads all of them at once. A message is a fixed header (kind, share
index, payload length) followed by the payload:

* ``RESULTS``: the pickled list of the kernel's return values for one share. Not sent
  when every value is ``None``, which is the common case of kernels that write into
  shared arrays;
* ``DONE``: the worker ran out of shares; the payload lists ``(share, count)`` for the
  shares whose values were all ``None``, so the caller can still return one value per
  element;
* ``ERROR``: the kernel (or the target) raised; the payload carries the exception
  (:func:`pashmap.contexts.encode_exception`).

A worker that ends without sending ``DONE`` or ``ERROR`` has died; the caller notices from
the end of file on its pipe.

Pooled workers (not forked at the map) receive each map on their socket: a header, the
file descriptors of the share queue and of the memfd blocks the map refers to
(``SCM_RIGHTS``), then the map pickled with cloudpickle, in which every array in a memfd
block is a handle (block, offset, shape, strides, dtype): the worker maps the same pages,
so arrays travel with no copy.
"""

from __future__ import annotations

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
from pashmap.contexts import decode_exception, encode_exception
from pashmap_shm.shared_memory import owner_of

__all__ = [
    "DONE",
    "ERROR",
    "HEADER",
    "RESULTS",
    "EncodedMap",
    "decode_map",
    "encode_map",
    "forget_received",
    "pickle_values",
    "receive_map",
    "send",
    "send_error",
    "send_map",
    "take_messages",
]

RESULTS = 1
DONE = 2
ERROR = 3

# kind, share index, payload length
HEADER = struct.Struct("=BiQ")
# a map: payload length, number of file descriptors
MAP_HEADER = struct.Struct("=QI")
_MAX_FDS = 253  # SCM_MAX_FD


# ------------------------------------------------------------ worker -> caller
def send(fd: int, kind: int, share: int, payload: bytes = b"") -> None:
    """Write one framed message to ``fd``, all of it.

    Raises:
        OSError: the pipe is broken (the caller is gone).
    """
    data = memoryview(HEADER.pack(kind, share, len(payload)) + payload)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def send_error(fd: int, share: int, exc: BaseException) -> None:
    """Report that running ``share`` (-1: no share) raised ``exc``."""
    send(fd, ERROR, share, encode_exception(exc))


def pickle_values(values: list[Any]) -> bytes | None:
    """Pickle one share's return values, or return ``None`` when every value is ``None``.

    The pickle of a list of ``None`` is the same bytes for every list of that length, and
    only ``None`` pickles to the ``N`` opcode, so comparing with it is an exact test that
    calls no ``__eq__`` of the kernel's values (``values.count(None)`` would, and numpy
    arrays do not answer it with a bool). It is also cheaper than testing each value
    with ``is not None``, which matters for the cheapest kernels.
    """
    count = len(values)
    if count <= _SHORT:
        # A short share is checked value by value: in a freshly forked worker this
        # touches no object but the values, where a first pickle.dumps() copies a dozen
        # pages from the caller.
        for value in values:
            if value is not None:
                return pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)
        return None
    payload = pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)
    nones = _none_pickles.get(count)
    if nones is None:
        nones = pickle.dumps([None] * count, protocol=pickle.HIGHEST_PROTOCOL)
        if len(_none_pickles) < _NONE_PICKLES_KEPT:
            _none_pickles[count] = nones
    return None if payload == nones else payload


_SHORT = 64
# A map's shares have one or two lengths; keep the pickles of the first few.
_NONE_PICKLES_KEPT = 8
_none_pickles: dict[int, bytes] = {}


def take_messages(buffer: bytearray) -> list[tuple[int, int, Any]]:
    """Decode the complete messages at the start of ``buffer`` and remove them from it.

    Returns:
        ``(RESULTS, share, values)``, ``(DONE, -1, array('q') of (share, count) pairs)``
        and ``(ERROR, share, exception to raise)`` tuples, in the order sent.
    """
    messages: list[tuple[int, int, Any]] = []
    header_size = HEADER.size
    start = 0
    while len(buffer) - start >= header_size:
        kind, share, length = HEADER.unpack_from(buffer, start)
        end = start + header_size + length
        if len(buffer) < end:
            break
        payload = bytes(buffer[start + header_size : end])
        start = end
        if kind == RESULTS:
            messages.append((kind, share, pickle.loads(payload)))
        elif kind == DONE:
            messages.append((kind, share, array("q", payload)))
        else:
            messages.append((ERROR, share, decode_exception(payload)))
    del buffer[:start]
    return messages


# ------------------------------------------------------ caller -> pooled worker
class EncodedMap(NamedTuple):
    """A map pickled for pooled workers (:func:`encode_map`).

    Attributes:
        message: what :func:`send_map` sends.
        fds: the descriptors of the memfd blocks it refers to, to send alongside.
        copies: how many writable arrays in anonymous shared memory (which only forked
            workers share) it holds: they would reach the workers as copies.
    """

    message: bytes
    fds: list[int]
    copies: int


def encode_map(
    kernel: Callable[..., Any],
    target: MapTarget[Any],
    shares: Sequence[Any],
    counts: NDArray[np.int64] | None,
    blas_threads: int | None,
) -> EncodedMap:
    """Pickle a map (cloudpickle, so closures and lambdas travel) for pooled workers.

    Raises:
        Exception: whatever pickling the kernel or the target raised.
    """
    import cloudpickle

    fds: dict[int, int] = {}  # serial -> fd of the blocks referred to
    copies = 0

    class HandlePickler(cloudpickle.CloudPickler):  # type: ignore[misc]
        def reducer_override(self, obj: Any) -> Any:
            nonlocal copies
            if type(obj) is np.ndarray and obj.size:
                block = owner_of(obj)
                if block is not None and block.fd >= 0:
                    fds[block.serial] = block.fd
                    offset = int(obj.__array_interface__["data"][0]) - block.address
                    # A view with negative strides starts before its data pointer.
                    return _rebuild, (block.serial, offset, obj.shape, obj.strides, obj.dtype)
                if block is not None and obj.flags.writeable:
                    copies += 1
            return super().reducer_override(obj)

    buffer = io.BytesIO()
    HandlePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
        (kernel, target, shares, counts, blas_threads)
    )
    serials = list(fds)
    message = pickle.dumps((serials, buffer.getvalue()), protocol=pickle.HIGHEST_PROTOCOL)
    return EncodedMap(message, [fds[serial] for serial in serials], copies)


def send_map(sock: socket.socket, message: bytes, fds: list[int]) -> None:
    """Send one map to a worker: the header with the descriptors, then the message.

    Raises:
        OSError: the worker is gone.
        ValueError: more descriptors than one message can carry.
    """
    if len(fds) > _MAX_FDS:
        raise ValueError(
            f"a map refers to {len(fds) - 1} shared arrays, more than one message can hand "
            f"to a worker ({_MAX_FDS - 1}); gather them into fewer, larger arrays"
        )
    socket.send_fds(sock, [MAP_HEADER.pack(len(message), len(fds))], fds)
    sock.sendall(message)


def receive_map(sock: socket.socket) -> tuple[bytes, list[int]] | None:
    """In a worker: receive what :func:`send_map` sent; ``None`` at end of file."""
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
    length, _ = MAP_HEADER.unpack(header)
    message = bytearray()
    while len(message) < length:
        chunk = sock.recv(min(length - len(message), 1 << 22))
        if not chunk:
            return None
        message += chunk
    return bytes(message), fds


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
