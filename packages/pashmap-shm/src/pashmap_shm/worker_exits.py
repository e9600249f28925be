"""What the caller says when a worker process ended before finishing its shares.

A worker set (:class:`pashmap_shm.collector.WorkerSet`) learns a worker's end from its
exit status; this module turns that status into a :class:`pashmap.WorkerDiedError` that says what is
knowable: the signal that killed it (with the usual culprit), the exit code, or why the
status could not be read at all.
"""

from __future__ import annotations

import os
import signal
from typing import Protocol

from pashmap import WorkerDiedError

__all__ = ["STATUS_UNKNOWN", "Worker", "died_error"]

# The status for a worker that ended but whose status the caller could not read: the
# system reaped it (SIGCHLD ignored), or another part of the program did (a SIGCHLD
# handler, os.wait()). A status from os.waitpid is never negative.
STATUS_UNKNOWN = -1


class Worker(Protocol):
    """A worker process as the error names it."""

    worker_id: int
    pid: int


def died_error(worker: Worker, status: int) -> WorkerDiedError:
    """The error for a worker that ended with ``status`` (as ``os.waitpid`` gives it, or
    :data:`STATUS_UNKNOWN`)."""
    who = f"worker {worker.worker_id} (pid {worker.pid})"
    if status == STATUS_UNKNOWN:
        if signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN:
            why = (
                "because SIGCHLD is ignored in this process (signal.signal(signal.SIGCHLD, "
                "signal.SIG_IGN)), so the system discards the status of every child. It "
                "was killed (SIGKILL from the out-of-memory killer or a user?), crashed, "
                "or exited in the kernel; set SIGCHLD back to signal.SIG_DFL while "
                "mapping to see which"
            )
        else:
            why = (
                "because another part of the program reaped it first (a SIGCHLD handler "
                "or a call to os.wait()). It was killed, crashed, or exited in the kernel"
            )
        return WorkerDiedError(
            f"{who} ended before finishing its shares; its exit status could not be read {why}",
            worker_id=worker.worker_id,
            pid=worker.pid,
        )
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        hints: dict[int, str] = {
            signal.SIGKILL: "; SIGKILL usually comes from the out-of-memory killer "
            "(check the memory limit of the job, or dmesg) or from a user",
            signal.SIGSEGV: "; a segmentation fault is a bug in compiled code called by the kernel",
            signal.SIGBUS: "; SIGBUS often means shared memory or a memory-mapped file ran out",
        }
        hint = hints.get(number, "")
        return WorkerDiedError(
            f"{who} was killed by {name} ({number}) during the map{hint}",
            worker_id=worker.worker_id,
            pid=worker.pid,
            signal=number,
        )
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return WorkerDiedError(
        f"{who} exited with status {code} before finishing its shares (os._exit(), or a "
        "library calling exit(), in the kernel?)",
        worker_id=worker.worker_id,
        pid=worker.pid,
        exitcode=code,
    )
