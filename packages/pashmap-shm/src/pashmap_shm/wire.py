"""What workers report to the caller: the framing, and the decoding in the caller.

Workers report on a pipe (forked workers) or a Unix socket (pooled workers) of their
own; the caller reads all of them at once, an :class:`Inbox` for each. A message is a
fixed header (kind, share index, payload length) followed by the payload:

* ``RESULTS``: the pickled list of the kernel's return values for one share. Not sent
  when every value is ``None``, which is the common case of kernels that write into
  shared arrays;
* ``BUFFER``: the bytes of one large array among those values, sent before the
  ``RESULTS`` that refers to it. Such arrays are pickled out of band (pickle protocol 5):
  the worker writes their memory straight to the pipe and the caller reads it straight
  into the memory of the array it returns, so a large value is never copied into a
  pickle on either side (:mod:`pashmap_shm.return_values`);
* ``FILE``: the same for an array of :data:`~pashmap_shm.value_files.FILE_FROM` bytes or
  more: its memory went into a memory file whose descriptor is in the value channel
  (:mod:`pashmap_shm.value_files`); the payload names the file;
* ``DONE``: the worker ran out of shares; the payload lists ``(share, count)`` for the
  shares whose values were all ``None``, so the caller can still return one value per
  element;
* ``ERROR``: the kernel (or the target) raised; the payload carries the exception
  (:func:`pashmap.contexts.encode_exception`).

A worker that ends without sending ``DONE`` or ``ERROR`` has died; the caller notices from
the end of file on its pipe. What goes the other way, a map sent to a pooled worker, is
in :mod:`pashmap_shm.map_messages`.
"""

from __future__ import annotations

import os
import pickle
import struct
from array import array
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from pashmap.contexts import decode_exception, encode_exception

__all__ = [
    "BUFFER",
    "DONE",
    "ERROR",
    "FILE",
    "HEADER",
    "OUT_OF_BAND",
    "RESULTS",
    "FileSource",
    "Inbox",
    "send",
    "send_error",
    "write_all",
]

RESULTS = 1
DONE = 2
ERROR = 3
BUFFER = 4
FILE = 5

# kind, share index, payload length
HEADER = struct.Struct("=BiQ")
# Arrays from this size on travel out of band, and payloads from this size on are not
# copied into one buffer with their header. Below it, the copies cost less than the
# extra message (or system call).
OUT_OF_BAND = 1 << 16


def send(fd: int, kind: int, share: int, payload: bytes = b"") -> None:
    """Write one framed message to ``fd``, all of it.

    Raises:
        OSError: the pipe is broken (the caller is gone).
    """
    if len(payload) >= OUT_OF_BAND:  # not worth a copy into one buffer
        write_all(fd, [HEADER.pack(kind, share, len(payload)), payload])
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


def write_all(fd: int, parts: list[Any]) -> None:
    """Write the buffers ``parts`` in order, all of their bytes (one call when it can)."""
    views = [memoryview(part).cast("B") for part in parts]
    while views:
        written = os.writev(fd, views)
        while views and written >= views[0].nbytes:
            written -= views.pop(0).nbytes
        if written:
            views[0] = views[0][written:]


# ------------------------------------------------------------ in the caller
class FileSource(Protocol):
    """Where the memory files named by ``FILE`` messages are taken from: the map's value
    channel (:class:`pashmap_shm.value_files.ValueChannel`)."""

    def receive(self, body: bytes) -> memoryview:
        """The memory of the file the ``FILE`` message with ``body`` names."""
        ...


class Inbox:
    """In the caller: what one worker has sent that is not decoded yet.

    Messages are read into a byte buffer, except the body of a ``BUFFER``, which is read
    straight into the memory of the array that the ``RESULTS`` after it will refer to.

    Args:
        channel: the map's value channel, where the files of ``FILE`` messages are
            (:class:`FileSource`).
    """

    __slots__ = ("_buffers", "_filled", "_large", "_pending", "channel")

    def __init__(self, channel: FileSource | None = None) -> None:
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
                elif length >= OUT_OF_BAND:
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
