"""Large return values handed over as memory files, not streamed through a pipe.

A worker that returns a large array (``FILE_FROM`` bytes or more) writes the array's
memory once into a memory file (``memfd_create``), sends the file's descriptor to the
caller on the *value channel* (a datagram socket pair: one per map for workers forked
for it, made before the forks; one per pool for warm workers; descriptors travel only
on sockets) and reports a ``FILE`` message on its pipe or socket, which names the file
by a token. The caller maps the file and the returned array is that mapping: one copy
in all (the worker's write), where a pipe costs two (into the pipe, out of it) and a
round trip between the two processes for every megabyte.

The caller's mapping is private (copy-on-write), so the array behaves as memory of the
caller's own, as an array read from a pipe would: a process forked later (the next
map's workers) sees it, but its writes stay its own, and ``pashmap_shm.is_shared`` says
``False``. The pages are mapped at once (``MADV_POPULATE_READ``), so reading the array
takes no page faults; a page the caller writes is copied first, as after a fork, and the
file's page stays until the array is freed: an array the caller rewrites in full holds
twice its size meanwhile (an array it only reads, the usual case, holds its size).

Each such value is one entry in the caller's memory map, and Linux allows a process
``vm.max_map_count`` of them (65530 by default) for everything it maps. So at most
``_LIVE_MAX`` returned values stay mapped at a time: past that (a map returning tens of
thousands of large arrays), and whenever a mapping fails, the caller reads the file into
memory of its own instead (one more copy, still no round trips).

Nothing can be left behind: a memory file has no name, a descriptor still in the
channel when the map ends is closed with the channel, and the file's memory is freed
with the last mapping (the array).
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import socket
import struct
import weakref
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FILE_FROM", "TOKEN", "ValueChannel", "open_channel", "send_as_file"]

# Arrays from this size on go by memory file. Measured per value against the pipe (2
# workers): 0.38-0.48x the time from 256 KiB to 2 MiB for workers forked per map,
# 0.9-1.0x for warm workers; below it, the pipe costs little and a process's mappings
# are better kept for its own use.
FILE_FROM = 1 << 18
# What a FILE message carries: the array's size in bytes, the worker's process id and a
# number of its own (unique among the workers sharing a channel).
TOKEN = struct.Struct("=Qqq")
_MADV_POPULATE_READ = 22  # Linux 5.14+; older kernels map each page at first read
_WRITE_MAX = 1 << 30  # bytes per pwrite call (Linux writes at most ~2 GiB in one)

_numbers = itertools.count()  # (a forked worker inherits it; its pid tells it apart)


def _live_max() -> int:
    """How many returned values may be mapped at once: a quarter of what the process
    may map, at most 16384 (the rest is the program's own)."""
    try:
        allowed = int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        allowed = 65530
    return max(0, min(16384, allowed // 4))


_LIVE_MAX = _live_max()
# Returned values mapped so far, and unmapped so far (by finalizers, in any thread: a
# lost count only makes the caller copy a value it could have mapped).
_mapped = [0, 0]


def open_channel() -> tuple[socket.socket, socket.socket]:
    """A value channel: ``(caller's end, workers' end)``."""
    caller, workers = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    caller.setblocking(False)
    return caller, workers


def send_as_file(channel: socket.socket, data: memoryview) -> bytes | None:
    """Write ``data`` into a new memory file and send its descriptor on ``channel``.

    Returns:
        The body of the ``FILE`` message that names the file, to send on the worker's
        pipe *after* this (the descriptor is then in the channel when the caller reads
        it); ``None`` when no memory file can be made here (not Linux, out of
        descriptors or memory): the caller of this sends ``data`` through the pipe.

    Raises:
        OSError: the channel is broken (the caller is gone).
    """
    try:
        fd = os.memfd_create("pashmap-value", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        return None
    try:
        try:
            offset, size = 0, data.nbytes
            while offset < size:
                offset += os.pwrite(fd, data[offset : offset + _WRITE_MAX], offset)
        except OSError:  # no memory for the file: the pipe needs none
            return None
        body = TOKEN.pack(size, os.getpid(), next(_numbers))
        socket.send_fds(channel, [body], [fd])
        return body
    finally:
        os.close(fd)


class ValueChannel:
    """The caller's end of a value channel: maps the files the workers send.

    Args:
        sock: the caller's end (non-blocking) from :func:`open_channel`.
    """

    __slots__ = ("_early", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._early: dict[bytes, int] = {}  # files of messages not read yet

    def receive(self, body: bytes) -> memoryview:
        """The memory of the file a ``FILE`` message with ``body`` names, mapped privately.

        Raises:
            RuntimeError: the file is not in the channel (the worker sends it first, so
                this is a bug).
        """
        fd = self._early.pop(body, -1)
        while fd < 0:
            try:
                message, fds, _, _ = socket.recv_fds(self._sock, TOKEN.size, 1)
            except BlockingIOError:
                raise RuntimeError(
                    "pashmap-shm: a worker's returned value was announced but its memory "
                    "file is not in the map's value channel (please report this bug)"
                ) from None
            if not fds:
                continue
            if message == body:
                fd = fds[0]
            else:
                self._early[message] = fds[0]
        size = TOKEN.unpack(body)[0]
        try:
            if _mapped[0] - _mapped[1] < _LIVE_MAX:
                with contextlib.suppress(OSError):  # (ENOMEM: too many mappings)
                    return _map_privately(fd, size)
            return _read(fd, size)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the channel and every file received and not mapped."""
        for fd in self._early.values():
            os.close(fd)
        self._early.clear()
        self._sock.close()


def _map_privately(fd: int, size: int) -> memoryview:
    """``size`` bytes of file ``fd``, mapped copy-on-write, every page mapped now."""
    region: Any = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    with contextlib.suppress(OSError, ValueError):  # before Linux 5.14: faults instead
        region.madvise(_MADV_POPULATE_READ)
    _mapped[0] += 1
    weakref.finalize(region, _unmapped)
    return memoryview(region)


def _unmapped() -> None:
    _mapped[1] += 1


def _read(fd: int, size: int) -> memoryview:
    """``size`` bytes of file ``fd``, read into fresh memory of this process."""
    data = np.empty(size, np.uint8).data
    done = 0
    while done < size:
        count = os.preadv(fd, [data[done:]], done)
        if not count:
            raise OSError(f"pashmap-shm: a returned value's memory file ended at {done} bytes")
        done += count
    return data
