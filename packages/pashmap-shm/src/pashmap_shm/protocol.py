"""The messages a forked worker sends to the caller, and how they are framed on a pipe.

Each worker has a pipe of its own to the caller; the caller reads all of them at once.
A message is a fixed header (kind, share index, payload length) followed by the payload:

* ``RESULTS``: the pickled list of the kernel's return values for one share. Not sent
  when every value is ``None``, which is the common case of kernels that write into
  shared arrays;
* ``DONE``: the worker ran out of shares; the payload lists ``(share, count)`` for the
  shares whose values were all ``None``, so the caller can still return one value per
  element;
* ``ERROR``: the kernel (or the target) raised; the payload carries the exception,
  pickled if it can be, its type and message as text, and the formatted traceback.

A worker that ends without sending ``DONE`` or ``ERROR`` has died; the caller notices from
the end of file on its pipe.
"""

from __future__ import annotations

import os
import pickle
import struct
from array import array
from typing import Any

from pashmap.contexts import decode_exception, encode_exception

__all__ = [
    "DONE",
    "ERROR",
    "HEADER",
    "RESULTS",
    "decode_exception",
    "encode_exception",
    "encode_none_counts",
    "pickle_values",
    "send",
]

RESULTS = 1
DONE = 2
ERROR = 3

# kind, share index, payload length
HEADER = struct.Struct("=BiQ")


def send(fd: int, kind: int, share: int, payload: bytes = b"") -> None:
    """Write one framed message to ``fd``, all of it.

    Raises:
        OSError: the pipe is broken (the caller is gone).
    """
    data = memoryview(HEADER.pack(kind, share, len(payload)) + payload)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def pickle_values(values: list[Any]) -> bytes | None:
    """Pickle one share's return values, or return ``None`` when every value is ``None``.

    The pickle of a list of ``None`` is the same bytes for every list of that length, and
    only ``None`` pickles to the ``N`` opcode, so comparing with it is an exact test that
    calls no ``__eq__`` of the kernel's values (``values.count(None)`` would, and numpy
    arrays do not answer it with a bool). It is also about 3.5 times cheaper than testing
    each value with ``is not None``, which matters for the cheapest kernels.
    """
    count = len(values)
    if count <= _SHORT:
        # A short share is checked value by value: in a freshly forked worker this
        # touches no object but the values, where a first pickle.dumps() copies a dozen
        # pages (tens of microseconds) from the caller.
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


def encode_none_counts(pairs: array[int]) -> bytes:
    """Pack ``(share, count)`` pairs, flattened in an ``array('q')``."""
    return pairs.tobytes()
