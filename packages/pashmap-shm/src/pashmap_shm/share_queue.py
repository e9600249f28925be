"""The share queue of one map: a pipe holding the share numbers, which every worker reads.

The caller writes every share number (4 bytes each) into the pipe before the workers
start, then closes its end for writing; each worker reads one number at a time and runs
that share, so faster workers take more shares (dynamic load balancing), and a worker
that reads end of file has no work left. What is still queued tells the caller whether
starting another worker is worth it (:func:`queued_bytes`).
"""

from __future__ import annotations

import fcntl
import os
import termios
from array import array

__all__ = ["ShareQueue", "queued_bytes"]

_PIPE_CAPACITY = 65536


class ShareQueue:
    """The pipe of one map's share numbers, each end closed once however often
    :meth:`close` runs.

    Attributes:
        read: the end the workers read (``-1`` once closed).
        write: the end the caller fills (``-1`` once closed).
    """

    __slots__ = ("read", "write")

    def __init__(self) -> None:
        self.read = -1
        self.write = -1

    def fill(self, count: int) -> None:
        """Open the pipe, write the share numbers ``0 .. count-1`` and close the write end.

        Raises:
            ValueError: more shares than a pipe can be made to hold (the message says to
                pass fewer ``shares=``).
        """
        self.read, self.write = os.pipe()
        records = array("I", range(count)).tobytes()
        if len(records) > _PIPE_CAPACITY:
            try:
                fcntl.fcntl(self.write, fcntl.F_SETPIPE_SZ, len(records))
            except OSError as exc:
                raise ValueError(
                    f"the target was cut into {count} shares, more than a worker queue can "
                    f"hold; pass shares=<fewer> to map() ({exc})"
                ) from exc
        os.write(self.write, records)
        self.close_write()

    def close_write(self) -> None:
        """Close the caller's end: workers that find the queue empty then see its end."""
        fd, self.write = self.write, -1
        if fd >= 0:
            os.close(fd)

    def close(self) -> None:
        """Close both ends (idempotent)."""
        self.close_write()
        fd, self.read = self.read, -1
        if fd >= 0:
            os.close(fd)


def queued_bytes(fd: int) -> int:
    """How many bytes of share numbers still wait in the queue read by ``fd``."""
    count = array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count, True)
    return count[0]
