"""Workers forked for one map: they inherit the kernel and the target, nothing is pickled.

:class:`ForkedWorkers` is the worker set of a map under ``start_method='fork'``: each
worker is a child forked from the caller at the map (it runs
:func:`pashmap_shm.worker.serve` and exits), so kernels may be closures over whatever the
caller has just computed. Every page the caller or a new child writes after a fork is
copied first, which is most of a small map's cost: so the code on both sides of the
forks touches as little as it can.

Fork and threads
    Python 3.12+ warns (``DeprecationWarning``) when a process that has more than one
    thread forks, because a lock held by another thread at that instant stays locked
    forever in the child. numpy's BLAS starts such threads at import, so every fork made
    here would warn. pashmap-shm silences that one warning, for the forks it makes, on
    purpose, with a ``warnings.catch_warnings`` block around them (so it holds under
    ``-W error`` and pytest's ``filterwarnings = error`` too; the block changes the
    process-wide filters for the instant of the forks). The child only runs the
    kernel and the worker loop, and then leaves with ``os._exit``. BLAS libraries
    (OpenBLAS, MKL) reset their thread pools in the child, and CPython re-creates some of
    its own locks (the import lock, logging's) after fork, but not those of the stdio
    buffers. What remains unsafe is a kernel that takes a lock which one of *your*
    threads may hold during the map (e.g. a lock in a library you call from both, or
    ``sys.stdout``'s while a thread prints); use :class:`~pashmap_shm.ThreadContext` for
    such code, or start your threads after the map. A worker that has reported DONE and
    then blocks on such a lock on its way out (in its last flush) is killed after
    ``_EXIT_GRACE``: it cannot hold up the map.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import math
import os
import select
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pashmap import MapTarget
from pashmap_shm.blas_threads import limit_blas_threads, restore_blas_threads
from pashmap_shm.collector import FORK_WARNING, STATUS_UNKNOWN, Awake, WorkerProcess, WorkerSet
from pashmap_shm.kernel_code import returns_only_none
from pashmap_shm.value_files import ValueChannel, open_channel
from pashmap_shm.worker import serve

__all__ = ["ForkedWorkers"]

_SIGINT = {int(signal.SIGINT)}
# The C function behind signal.pthread_sigmask, whose Python wrapper turns the old mask
# into enum members: it is called four times per map, and every object touched after a
# fork costs a page copy.
_sigmask: Callable[[int, Iterable[int]], set[int]] = getattr(
    importlib.import_module("_signal"), "pthread_sigmask", signal.pthread_sigmask
)
# Only Python 3.12+ warns when forking with threads.
_FORK_WARNS = sys.version_info >= (3, 12)
# How long a worker that reported DONE may take to leave (it flushes what the kernel
# printed, then exits) before it is killed: it has nothing left to do for the map, and
# something it inherited (a lock of sys.stdout held by another of the caller's threads
# at the fork) may keep it from ever leaving on its own.
_EXIT_GRACE = 1.0
_EXIT_POLL_MS = 20  # how often, during that time, to look for a Ctrl-C


class ForkedWorkers(WorkerSet):
    """Up to ``num_workers`` children forked for one map, one after another.

    Args:
        kernel: the kernel.
        target: the map target.
        shares: its shares.
        num_workers: the most workers to fork.
        counts: the progress counters in shared memory, or ``None``.
        blas: ``(threadpoolctl controller, thread limit)`` for the children, or ``None``.
    """

    def __init__(
        self,
        kernel: Callable[..., Any],
        target: MapTarget[Any],
        shares: Sequence[Any],
        num_workers: int,
        counts: NDArray[np.int64] | None,
        blas: tuple[Any, int] | None,
    ) -> None:
        super().__init__(num_workers)
        self.kernel = kernel
        self.target = target
        self.shares = shares
        self.counts = counts
        # Values of a kernel that can only return None are not even collected.
        self.returns_none = returns_only_none(kernel)
        self.blas = blas
        self.parent_pid = os.getpid()
        # The value channel (large return values as memory files), made at the first
        # fork of a kernel that may return values: (caller's end, workers' end).
        self.channel: ValueChannel | None = None
        self.channel_end: Any = None

    def start(self, count: int, queue_fd: int) -> list[WorkerProcess]:
        """Fork the next ``count`` workers; return them."""
        # Output buffered now would be written again by every child that flushes it.
        for stream in (sys.stdout, sys.stderr):
            try:  # (not contextlib.suppress: this runs at every fork, keep it light)  # noqa: SIM105
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        # Objects the child inherits are never scanned by its garbage collector, which
        # would otherwise copy (on write) every page holding one.
        # (Not when the program froze objects itself: unfreezing would undo that.)
        freeze = gc.get_freeze_count() == 0
        if freeze:
            gc.freeze()
        # SIGINT is blocked while forking: a Ctrl-C landing in a child between fork() and
        # its first line would unwind the caller's code there. The children keep it
        # blocked (see worker.serve); the caller restores its signal mask right after.
        mask = _sigmask(signal.SIG_BLOCK, _SIGINT)
        # The BLAS limit is set here, around the forks, for the children to inherit
        # (see pashmap_shm.blas_threads on why not in the children).
        changed = limit_blas_threads(*self.blas, around_fork=True) if self.blas is not None else []
        try:
            if _FORK_WARNS:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", FORK_WARNING, DeprecationWarning)
                    return self._fork(count, queue_fd)
            return self._fork(count, queue_fd)
        finally:
            restore_blas_threads(changed, after_fork=True)
            _sigmask(signal.SIG_SETMASK, mask)
            if freeze:
                gc.unfreeze()

    def _fork(self, count: int, queue_fd: int) -> list[WorkerProcess]:
        # A new child usually starts on the caller's CPU and runs only once the caller
        # sleeps (in poll), and every page the caller writes meanwhile is copied: so all
        # the bookkeeping is done before the fork, and after it only what must be.
        started = []
        if self.channel is None and not self.returns_none:
            caller_end, self.channel_end = open_channel()
            self.channel = ValueChannel(caller_end)
        for _ in range(count):
            worker_id = len(self.workers)
            read_fd, write_fd = os.pipe()
            worker = WorkerProcess(worker_id, 0, read_fd)
            worker.inbox.channel = self.channel
            self.workers.append(worker)
            started.append(worker)
            try:
                pid = os.fork()
            except BaseException:
                self.workers.pop()
                started.pop()
                os.close(read_fd)
                os.close(write_fd)
                raise
            if pid == 0:
                for other in self.workers:
                    os.close(other.fd)
                serve(
                    worker_id,
                    self.kernel,
                    self.target,
                    self.shares,
                    queue_fd,
                    write_fd,
                    self.counts,
                    self.returns_none,
                    self.parent_pid,
                    self.channel_end,
                )
            worker.pid = pid
            os.close(write_fd)
        # Let a child queued on this CPU run now rather than after the caller's
        # bookkeeping (nothing happens when it runs on another CPU).
        os.sched_yield()
        return started

    def exit_status(self, worker: WorkerProcess, *, wait: bool) -> int | None:
        """See :meth:`WorkerSet.exit_status`."""
        try:
            pid, status = os.waitpid(worker.pid, 0 if wait else os.WNOHANG)
        except ChildProcessError:  # reaped by the system (SIGCHLD ignored) or a handler
            pid, status = worker.pid, STATUS_UNKNOWN
        if not pid:
            return None
        worker.reaped = True
        return status

    def stop(self, awake: Awake | None) -> None:
        """Kill what still runs, reap every worker, close every pipe.

        SIGINT is blocked meanwhile, and a worker that reported DONE gets at most
        ``_EXIT_GRACE`` seconds (not past the map's deadline, none after Ctrl-C) to
        leave before it is killed: nothing a worker does can keep the caller waiting.
        """
        if os.getpid() != self.parent_pid:  # (a worker leaves by os._exit, but still)
            return
        # The mask to go back to is read before SIGINT is blocked: an interrupt raised
        # just after the blocking call then still finds it restored.
        mask = _sigmask(signal.SIG_BLOCK, ())
        try:
            _sigmask(signal.SIG_BLOCK, _SIGINT)
            for worker in self.workers:
                if not worker.reaped and not worker.done:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGKILL)
            grace_end = None
            for worker in self.workers:
                if not worker.reaped:
                    if worker.done and grace_end is None:
                        grace_end = self._grace_end()
                    self._reap(worker, awake, grace_end)
                fd, worker.fd = worker.fd, -1  # (closed once, should this be re-run)
                if fd >= 0:
                    os.close(fd)
            self.workers.clear()
            channel, self.channel = self.channel, None
            if channel is not None:  # (files still in it are closed with it)
                channel.close()
                self.channel_end.close()
        finally:
            _sigmask(signal.SIG_SETMASK, mask)

    def _grace_end(self) -> float:
        """Until when workers that reported DONE may take to leave."""
        if self.interrupted:
            return 0.0
        end = time.monotonic() + _EXIT_GRACE
        return end if self.deadline is None else min(end, self.deadline)

    def _reap(self, worker: WorkerProcess, awake: Awake | None, grace_end: float | None) -> None:
        """Wait for ``worker`` to exit and reap it.

        A worker that sent its last message is exiting already (tearing down its copy of
        the caller's memory): then the caller waits for it awake, as it waits for
        messages (:class:`~pashmap_shm.collector.Awake`), then asleep until
        ``grace_end``, and then kills it.
        """
        if worker.done:
            if awake is not None and awake.allows(sum(not other.reaped for other in self.workers)):
                try:
                    exited = awake.wait(lambda: os.waitpid(worker.pid, os.WNOHANG)[0], awake.left)
                except ChildProcessError:  # reaped by someone else (a SIGCHLD handler)
                    exited = worker.pid
                if exited:
                    worker.reaped = True
                    return
            if grace_end is not None and not _exits_by(worker.pid, grace_end):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
        self.exit_status(worker, wait=True)


def _exits_by(pid: int, end: float) -> bool:
    """Wait until child ``pid`` has ended (not reaping it), ``end`` has passed, or a
    Ctrl-C is pending (SIGINT is blocked meanwhile); say whether it ended."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:  # ended, and reaped already by the system
        return True
    except (AttributeError, OSError):  # no pidfd (not Linux >= 5.3)
        pidfd = -1
    try:
        poller = select.poll()
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        while True:
            try:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return True
            except ChildProcessError:
                return True
            left = end - time.monotonic()
            if left <= 0 or signal.SIGINT in signal.sigpending():
                return False
            wait_ms = min(_EXIT_POLL_MS, math.ceil(left * 1000))
            if pidfd >= 0:
                poller.poll(wait_ms)
            else:
                time.sleep(min(0.001, wait_ms / 1000))
    finally:
        if pidfd >= 0:
            os.close(pidfd)
