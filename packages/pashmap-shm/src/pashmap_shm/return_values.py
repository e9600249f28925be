"""One share's return values, packed in a worker and sent to the caller.

Values that are all ``None`` (kernels that write into shared arrays) send nothing. The
others are pickled (protocol 5), with arrays of :data:`~pashmap_shm.wire.OUT_OF_BAND`
bytes or more left out of the pickle and sent as they are: through the pipe (``BUFFER``)
or, from :data:`~pashmap_shm.value_files.FILE_FROM` bytes on, as a memory file
(``FILE``). :class:`pashmap_shm.wire.Inbox` puts them back together in the caller.
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import pickle
import socket
from typing import Any, NamedTuple

from pashmap.targets import qualified_name
from pashmap_shm.value_files import FILE_FROM, send_as_file
from pashmap_shm.wire import BUFFER, FILE, HEADER, OUT_OF_BAND, RESULTS, send, write_all

__all__ = ["PickledValues", "pickle_values", "send_values"]


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

    Arrays of at least :data:`~pashmap_shm.wire.OUT_OF_BAND` bytes are left out of the
    pickle: their memory is sent as it is (:func:`send_values`). The pickle alone
    (``bytes``) is returned when there are none.

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
# What a pipe can hold while a large array streams through it (Linux allows 1 MiB to
# any user by default), instead of 64 KiB: fewer turns between worker and caller.
_STREAM_PIPE_SIZE = 1 << 20


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
        if view.nbytes < OUT_OF_BAND or not view.contiguous:
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
                    fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _STREAM_PIPE_SIZE)
            write_all(fd, [HEADER.pack(BUFFER, share, raw.nbytes), raw])
    send(fd, RESULTS, share, data)
