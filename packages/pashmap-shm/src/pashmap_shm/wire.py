"""The wire format between the caller and its worker processes, both ways.

Workers report on a pipe (forked workers) or a Unix socket (pooled workers) of their
own; the caller reads all of them at once. A message is a fixed header (kind, share
index, payload length) followed by the payload:

* ``RESULTS``: the pickled list of the kernel's return values for one share. Not sent
  when every value is ``None``, which is the common case of kernels that write into
  shared arrays;
* ``BUFFER``: the bytes of one large array among those values, sent before the
  ``RESULTS`` that refers to it. Such arrays are pickled out of band (pickle protocol 5):
  the worker writes their memory straight to the pipe and the caller reads it straight
  into the memory of the array it returns, so a large value is never copied into a
  pickle on either side;
* ``FILE``: the same for an array of :data:`~pashmap_shm.value_files.FILE_FROM` bytes or
  more: its memory went into a memory file whose descriptor is in the value channel
  (:mod:`pashmap_shm.value_files`); the payload names the file;
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

import contextlib
import fcntl
import functools
import inspect
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
from pashmap.targets import qualified_name
from pashmap_shm.shared_memory import foreign_mapping, owner_of
from pashmap_shm.value_files import FILE_FROM, ValueChannel, send_as_file

__all__ = [
    "BUFFER",
    "DONE",
    "ERROR",
    "FILE",
    "HEADER",
    "RESULTS",
    "EncodedMap",
    "Inbox",
    "PickledValues",
    "decode_map",
    "encode_map",
    "forget_received",
    "pickle_values",
    "receive_map",
    "send",
    "send_error",
    "send_map",
    "send_values",
]

RESULTS = 1
DONE = 2
ERROR = 3
BUFFER = 4
FILE = 5

# kind, share index, payload length
HEADER = struct.Struct("=BiQ")
# a map: payload length, number of file descriptors
MAP_HEADER = struct.Struct("=QIQ")  # message bytes, descriptors, note bytes
_MAX_FDS = 253  # SCM_MAX_FD


# ------------------------------------------------------------ worker -> caller
def send(fd: int, kind: int, share: int, payload: bytes = b"") -> None:
    """Write one framed message to ``fd``, all of it.

    Raises:
        OSError: the pipe is broken (the caller is gone).
    """
    if len(payload) >= _OUT_OF_BAND:  # not worth a copy into one buffer
        _write_all(fd, [HEADER.pack(kind, share, len(payload)), payload])
        return
    data = memoryview(HEADER.pack(kind, share, len(payload)) + payload)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def send_error(
    fd: int, share: int, exc: BaseException, *, dumps: Callable[[Any], bytes] | None = None
) -> None:
    """Report that running ``share`` (-1: no share) raised ``exc``.

    Args:
        fd: where to report.
        share: the share that was running.
        exc: what it raised.
        dumps: how to pickle the exception (:func:`pashmap.contexts.encode_exception`);
            a pooled worker sends classes it cannot name by value.
    """
    send(fd, ERROR, share, encode_exception(exc, dumps=dumps))


class PickledValues(NamedTuple):
    """One share's return values pickled by :func:`pickle_values`, with large arrays.

    Attributes:
        data: the pickle (protocol 5).
        buffers: the memory of the large arrays among the values, in the order the
            pickle refers to them; sent apart from it (out of band).
    """

    data: bytes
    buffers: list[pickle.PickleBuffer]


def pickle_values(values: list[Any], share: object = None) -> bytes | PickledValues | None:
    """Pickle one share's return values, or return ``None`` when every value is ``None``.

    The pickle of a list of ``None`` is the same bytes for every list of that length, and
    only ``None`` pickles to the ``N`` opcode, so comparing with it is an exact test that
    calls no ``__eq__`` of the kernel's values (``values.count(None)`` would, and numpy
    arrays do not answer it with a bool). It is also cheaper than testing each value
    with ``is not None``, which matters for the cheapest kernels.

    Arrays of at least ``_OUT_OF_BAND`` bytes are left out of the pickle: their memory is
    sent as it is (:func:`send_values`). The pickle alone (``bytes``) is returned when
    there are none.

    Args:
        values: the kernel's return values, in index order.
        share: the share that returned them (its element indices name a value that
            cannot be pickled).

    Raises:
        TypeError: a value cannot be pickled; the message says which and what to do.
    """
    count = len(values)
    if count <= _SHORT:
        # A short share is checked value by value: in a freshly forked worker this
        # touches no object but the values, where a first pickle.dumps() copies a dozen
        # pages from the caller.
        for value in values:
            if value is not None:
                return _pickle_with_buffers(values, share)
        return None
    pickled = _pickle_with_buffers(values, share)
    if not isinstance(pickled, bytes):
        return pickled
    nones = _none_pickles.get(count)
    if nones is None:
        nones = pickle.dumps([None] * count, protocol=_PROTOCOL)
        if len(_none_pickles) < _NONE_PICKLES_KEPT:
            _none_pickles[count] = nones
    return None if pickled == nones else pickled


_PROTOCOL = 5  # out-of-band buffers
_SHORT = 64
# A map's shares have one or two lengths; keep the pickles of the first few.
_NONE_PICKLES_KEPT = 8
_none_pickles: dict[int, bytes] = {}
# Arrays from this size on travel out of band. Below it, the copies into and out of the
# pickle cost less than the extra message.
_OUT_OF_BAND = 1 << 16
# What a pipe can hold while a large array streams through it (Linux allows 1 MiB to
# any user by default), instead of 64 KiB: fewer turns between worker and caller.
_STREAM_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031


def _pickle_with_buffers(values: list[Any], share: object) -> bytes | PickledValues:
    try:
        data = pickle.dumps(values, protocol=_PROTOCOL, buffer_callback=_in_band)
    except Exception as exc:
        _out_of_band.clear()
        raise _unpicklable_value(values, share, exc) from None
    if not _out_of_band:
        return data
    buffers = _out_of_band.copy()
    _out_of_band.clear()
    return PickledValues(data, buffers)


# The large buffers of the pickle being made. One list for the process rather than one
# per call, which would cost the cheapest kernels a noticeable part of their time: a
# worker pickles in one thread only (the one running serve()).
_out_of_band: list[pickle.PickleBuffer] = []


def _in_band(buffer: pickle.PickleBuffer) -> bool:
    """Whether ``buffer`` stays in the pickle; else it is kept in ``_out_of_band``."""
    with memoryview(buffer) as view:
        if view.nbytes < _OUT_OF_BAND or not view.contiguous:
            return True
    _out_of_band.append(buffer)
    return False


def _unpicklable_value(values: list[Any], share: object, error: Exception) -> TypeError:
    """The error for a share's values that cannot be pickled: which one, and what to do."""
    position = -1
    culprit: Any = values
    for index, value in enumerate(values):
        try:  # out of band: no copy of a large array, only the type of what is in it
            pickle.dumps(value, protocol=_PROTOCOL, buffer_callback=lambda buffer: False)
        except Exception as value_error:
            position, culprit, error = index, value, value_error
            break
    if position < 0:
        which = "the kernel's return values"
    elif type(share) is range:
        which = f"the kernel's return value for element {share[position]}"
    else:
        which = f"the kernel's return value for element {position} of its share"
    value = culprit
    if inspect.isgenerator(value) or inspect.isasyncgen(value):
        hint = "a generator cannot be sent: return a list of what it yields"
    elif inspect.iscoroutine(value):
        value.close()  # never to be awaited: no 'never awaited' warning
        hint = (
            "a coroutine cannot be sent: workers call the kernel and do not await what it "
            "returns, so run it inside the kernel (asyncio.run) and return its result"
        )
    else:
        hint = (
            "return plain data (numbers, strings, numpy arrays, lists or dicts of them), "
            "or write the result into a shared array (pm.array) and return None"
        )
    return TypeError(
        f"{which} ({qualified_name(type(value))}) cannot be sent to the caller, which "
        f"needs it pickled ({type(error).__name__}: {error}); {hint}"
    )


def send_values(
    fd: int, share: int, pickled: bytes | PickledValues, channel: socket.socket | None = None
) -> None:
    """Send one share's values: each out-of-band buffer, then the pickle.

    A buffer is written straight from the array's memory, copied nowhere on the way:
    into a memory file sent on ``channel`` (the value channel) when it is large, else
    into ``fd``.

    Raises:
        OSError: the pipe is broken (the caller is gone).
    """
    if isinstance(pickled, bytes):
        send(fd, RESULTS, share, pickled)
        return
    data, buffers = pickled
    widened = False  # (the pipe, for buffers that go through it)
    for buffer in buffers:
        with buffer.raw() as raw:
            if channel is not None and raw.nbytes >= FILE_FROM:
                name = send_as_file(channel, raw)
                if name is not None:
                    send(fd, FILE, share, name)
                    continue
            if not widened:
                widened = True
                with contextlib.suppress(OSError):  # a socket, or a user at the pipe limit
                    fcntl.fcntl(fd, _F_SETPIPE_SZ, _STREAM_PIPE_SIZE)
            _write_all(fd, [HEADER.pack(BUFFER, share, raw.nbytes), raw])
    send(fd, RESULTS, share, data)


def _write_all(fd: int, parts: list[Any]) -> None:
    """Write the buffers ``parts`` in order, all of their bytes (one call when it can)."""
    views = [memoryview(part).cast("B") for part in parts]
    while views:
        written = os.writev(fd, views)
        while views and written >= views[0].nbytes:
            written -= views.pop(0).nbytes
        if written:
            views[0] = views[0][written:]


class Inbox:
    """In the caller: what one worker has sent that is not decoded yet.

    Messages are read into a byte buffer, except the body of a ``BUFFER``, which is read
    straight into the memory of the array that the ``RESULTS`` after it will refer to.

    Args:
        channel: the map's value channel, where the files of ``FILE`` messages are.
    """

    __slots__ = ("_buffers", "_filled", "_large", "_pending", "channel")

    def __init__(self, channel: ValueChannel | None = None) -> None:
        self.channel = channel
        self._pending = bytearray()
        self._buffers: list[memoryview] = []  # read, for the next RESULTS
        self._large: memoryview | None = None  # the buffer being read
        self._filled = 0

    def read(self, fd: int) -> bool:
        """Read what ``fd`` holds now (at most a megabyte into the byte buffer).

        Returns:
            ``False`` at end of file.

        Raises:
            OSError: as ``os.read`` (``ConnectionResetError`` from a dead worker's socket).
        """
        large = self._large
        if large is not None:
            count = os.readv(fd, [large[self._filled :]])
            if not count:
                return False
            self._filled += count
            if self._filled == large.nbytes:
                self._buffers.append(large)
                self._large = None
            return True
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return False
        self._pending += chunk
        return True

    def take(self) -> list[tuple[int, int, Any]]:
        """Decode the complete messages read so far.

        Returns:
            ``(RESULTS, share, values)``, ``(DONE, -1, array('q') of (share, count)
            pairs)`` and ``(ERROR, share, exception to raise)`` tuples, in the order sent.
        """
        messages: list[tuple[int, int, Any]] = []
        pending = self._pending
        header_size = HEADER.size
        start = 0
        while len(pending) - start >= header_size:
            kind, share, length = HEADER.unpack_from(pending, start)
            body = start + header_size
            end = body + length
            if kind == BUFFER:
                start = self._start_buffer(pending, body, length)
                if self._large is not None:
                    break
                continue
            if len(pending) < end:
                break
            if kind == FILE:
                if self.channel is None:
                    raise RuntimeError(
                        "pashmap-shm: a FILE message from a worker with no value channel"
                    )
                self._buffers.append(self.channel.receive(bytes(pending[body:end])))
                start = end
                continue
            if kind == RESULTS:
                if self._buffers:
                    buffers, self._buffers = self._buffers, []
                    values = _loads_large(pending, body, end, buffers)
                elif length >= _OUT_OF_BAND:
                    values = _loads_large(pending, body, end, ())
                else:
                    values = pickle.loads(pending[body:end])
                messages.append((kind, share, values))
            elif kind == DONE:
                messages.append((kind, share, array("q", pending[body:end])))
            else:
                messages.append((ERROR, share, decode_exception(bytes(pending[body:end]))))
            start = end
        del pending[:start]
        return messages

    def _start_buffer(self, pending: bytearray, body: int, length: int) -> int:
        """Take the start of a ``BUFFER`` body from ``pending``; the rest is read into
        its array by :meth:`read`. Returns where the body ends in ``pending``."""
        # Fresh memory that nothing touched yet (numpy asks for huge pages for it when
        # the machine offers them).
        large = np.empty(length, np.uint8).data
        have = min(length, len(pending) - body)
        large[:have] = pending[body : body + have]
        if have < length:
            self._large, self._filled = large, have
        else:
            self._buffers.append(large)
        return body + have


def _loads_large(pending: bytearray, body: int, end: int, buffers: Any) -> Any:
    """Unpickle ``pending[body:end]`` in place, with the out-of-band ``buffers``."""
    with memoryview(pending) as whole, whole[body:end] as payload:
        return pickle.loads(payload, buffers=buffers)


# ------------------------------------------------------ caller -> pooled worker
class EncodedMap(NamedTuple):
    """A map pickled for pooled workers (:func:`encode_map`).

    Attributes:
        message: what :func:`send_map` sends; empty when ``complete`` is false.
        fds: the descriptors of the memfd blocks it refers to, to send alongside.
        copies: how many writable arrays in anonymous shared memory (which only forked
            workers share) it holds: they would reach the workers as copies.
        foreign: writable arrays in shared memory pashmap did not allocate, described
            (:func:`pashmap_shm.shared_memory.foreign_mapping`): pickled, they would
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


def send_map(sock: socket.socket, message: bytes, fds: list[int], note: bytes = b"") -> None:
    """Send one map to a worker: the header with the descriptors, a note, the message.

    One ``sendmsg`` carries it all when the kernel takes it whole (the usual case for
    small maps); the rest follows with ``sendall``.

    Args:
        sock: the worker's socket.
        message: the map (:func:`encode_map`), or empty.
        fds: the descriptors to hand over with it.
        note: what the worker must read before the map (the pool's housekeeping).

    Raises:
        OSError: the worker is gone.
        ValueError: more descriptors than one message can carry.
    """
    if len(fds) > _MAX_FDS:
        raise ValueError(
            f"a map refers to {len(fds) - 1} shared arrays, more than one message can hand "
            f"to a worker ({_MAX_FDS - 1}); gather them into fewer, larger arrays"
        )
    head = MAP_HEADER.pack(len(message), len(fds), len(note)) + note
    sent = socket.send_fds(sock, [head, message], fds)
    if sent < len(head):
        sock.sendall(head[sent:])
        sent = len(head)
    if sent < len(head) + len(message):
        sock.sendall(memoryview(message)[sent - len(head) :])


def receive_map(sock: socket.socket) -> tuple[bytes, bytes, list[int]] | None:
    """In a worker: receive what :func:`send_map` sent, as ``(note, message, fds)``;
    ``None`` at end of file."""
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
