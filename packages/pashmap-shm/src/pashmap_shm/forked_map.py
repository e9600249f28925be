"""One map over worker processes forked for it: start them, read their reports, clean up.

:class:`ForkedMap` is what :class:`~pashmap_shm.ProcessContext` runs for each map with
``start_method='fork'`` (and, with another way of starting workers, what the warm pool
runs in :mod:`pashmap_shm.pool`). The caller writes the share numbers into a pipe, forks
the workers (:func:`pashmap_shm.worker.serve` is what each one runs), and watches every
worker's own pipe at once: a worker's end of file without a final message means that
worker died, which is reported at once as :class:`pashmap.WorkerDiedError`; nothing waits
on a worker that cannot answer. See :mod:`pashmap_shm.process` on fork and threads.

Every page the caller or a new child writes after a fork is copied first (about 2 us in
the child on the machines measured), so the code around the forks touches as little as
it can: that is most of a small map's cost.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib
import math
import os
import pickle
import select
import signal
import sys
import termios
import time
import warnings
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from pashmap import MapTarget, MapTimeoutError, WorkerDiedError
from pashmap.contexts import available_cpus
from pashmap_shm import protocol
from pashmap_shm.blas_threads import limit_blas_threads, restore_blas_threads
from pashmap_shm.kernel_code import returns_only_none
from pashmap_shm.worker import serve

__all__ = ["FORK_WARNING", "ForkedMap", "WorkerProcess", "died_error"]

# See "Fork and threads" in pashmap_shm.process (Python 3.12+).
FORK_WARNING = r"This process \(pid=\d+\) is multi-threaded, use of fork\(\) may lead to deadlocks"

_F_SETPIPE_SZ = 1031
_PIPE_CAPACITY = 65536
_POLL_MS = 200  # how often to check for workers that died but whose pipe stays open
# Workers start one after another: the next one is forked only if shares are still
# queued after the previous one had this long to take them. A map too small to need
# every worker (a few cheap elements) then costs one fork instead of num_workers, and a
# large map starts its last worker a few milliseconds late at most.
_RAMP_UP = 0.002
# A map of this many elements keeps one worker busy for longer than a fork costs even
# with the cheapest kernel (about 50 ns per call), so all its workers start at once.
_START_ALL_AT = 50_000
# How long, in all, one map's caller may wait for its workers without sleeping, while it
# has a CPU to itself (see ForkedMap._poll): about what a small map's workers take to
# start, run and exit.
_SPIN = 0.003
_T = TypeVar("_T")
_SIGINT = {int(signal.SIGINT)}
# The C function behind signal.pthread_sigmask, whose Python wrapper turns the old mask
# into enum members: it is called four times per map (about 5 us each through the
# wrapper), and every object touched after a fork costs a page copy.
_sigmask: Callable[[int, Iterable[int]], set[int]] = getattr(
    importlib.import_module("_signal"), "pthread_sigmask", signal.pthread_sigmask
)
# Only Python 3.12+ warns when forking with threads.
_FORK_WARNS = sys.version_info >= (3, 12)


class WorkerProcess:
    """The caller's view of one worker process."""

    __slots__ = ("buffer", "done", "fd", "pid", "reaped", "worker_id")

    def __init__(self, worker_id: int, pid: int, fd: int) -> None:
        self.worker_id = worker_id
        self.pid = pid
        self.fd = fd
        self.buffer = bytearray()
        self.done = False
        self.reaped = False


class ForkedMap:
    """One map over forked workers: start them, collect their messages, clean up."""

    def __init__(
        self,
        kernel: Callable[..., Any],
        target: MapTarget[Any],
        shares: Sequence[Any],
        num_workers: int,
        counts: NDArray[np.int64] | None,
        deadline: float | None,
        blas: tuple[Any, int] | None,
    ) -> None:
        self.kernel = kernel
        self.target = target
        self.shares = shares
        self.num_workers = num_workers
        self.counts = counts
        self.deadline = deadline
        self.blas = blas
        self.workers: list[WorkerProcess] = []
        self.returns_none = returns_only_none(kernel)
        # What only the caller needs is made after the first fork (see _collect).
        self.poller: select.poll
        self.watched: dict[int, WorkerProcess]  # the workers still running, by pipe
        self.values: list[list[Any] | None]  # the values of each share that sent any
        self.none_counts: array[int]  # (share, count) pairs, flat, of shares of Nones
        self.spin_left = 0.0  # seconds the caller may still poll without sleeping
        self.spare_cpus = 0  # the CPUs this process may use, minus one for the caller

    def run(self) -> list[Any]:
        self.parent_pid = os.getpid()
        queue_read, queue_write = os.pipe()
        self.queue_fd = queue_read
        try:
            self._fill_queue(queue_write)
            os.close(queue_write)
            queue_write = -1
            self._collect()
        finally:
            if queue_write >= 0:
                os.close(queue_write)
            os.close(queue_read)
            if os.getpid() == self.parent_pid:  # (a worker leaves by os._exit, but still)
                self._stop_all()
        return self._in_index_order()

    def _in_index_order(self) -> list[Any]:
        """The values of every share, concatenated in share order."""
        sizes = [0] * len(self.shares)
        flat = self.none_counts
        for position in range(0, len(flat), 2):
            sizes[flat[position]] = flat[position + 1]
        returned = False
        for share, values in enumerate(self.values):
            if values is not None:
                sizes[share] = len(values)
                returned = True
        out: list[Any] = [None] * sum(sizes)
        if returned:
            start = 0
            for values, size in zip(self.values, sizes, strict=True):
                if values is not None:
                    out[start : start + size] = values
                start += size
        return out

    def _fill_queue(self, fd: int) -> None:
        records = array("I", range(len(self.shares))).tobytes()
        if len(records) > _PIPE_CAPACITY:
            try:
                fcntl.fcntl(fd, _F_SETPIPE_SZ, len(records))
            except OSError as exc:
                raise ValueError(
                    f"the target was cut into {len(self.shares)} shares, more than a worker "
                    f"queue can hold; pass shares=<fewer> to map() ({exc})"
                ) from exc
        os.write(fd, records)

    def _start(self, count: int) -> list[WorkerProcess]:
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
                    return self._fork(count)
            return self._fork(count)
        finally:
            restore_blas_threads(changed, after_fork=True)
            _sigmask(signal.SIG_SETMASK, mask)
            if freeze:
                gc.unfreeze()

    def _fork(self, count: int) -> list[WorkerProcess]:
        # A new child usually starts on the caller's CPU and runs only once the caller
        # sleeps (in poll), and every page the caller writes meanwhile is copied: so all
        # the bookkeeping is done before the fork, and after it only what must be.
        started = []
        for _ in range(count):
            worker_id = len(self.workers)
            read_fd, write_fd = os.pipe()
            worker = WorkerProcess(worker_id, 0, read_fd)
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
                    self.queue_fd,
                    write_fd,
                    self.parent_pid,
                    counts=self.counts,
                    returns_none=self.returns_none,
                )
            worker.pid = pid
            os.close(write_fd)
        # Let a child queued on this CPU run now rather than after the caller's
        # bookkeeping (0.1 ms per map; nothing happens when it runs on another CPU).
        os.sched_yield()
        return started

    def _collect(self) -> None:
        """Start the workers, read their messages until all are done, ramping up."""
        # A map too long for one worker to finish while the next one forks starts them
        # all at once; any other map starts one and adds more only while shares wait.
        started = self._start(
            self.num_workers if _element_count(self.shares) >= _START_ALL_AT else 1
        )
        # The caller's own bookkeeping is made now, while the first worker starts up
        # (about half a millisecond), not before the fork where it would delay it.
        poller = self.poller = select.poll()
        watched: dict[int, WorkerProcess] = {}
        self.watched = watched
        self.values = [None] * len(self.shares)
        self.none_counts = array("q")
        self.spin_left = _SPIN
        self.spare_cpus = available_cpus() - 1

        def watch(workers: list[WorkerProcess]) -> None:
            for worker in workers:
                poller.register(worker.fd, select.POLLIN)
                watched[worker.fd] = worker

        watch(started)
        ramp_at = time.monotonic() + _RAMP_UP if len(self.workers) < self.num_workers else None
        deadline = self.deadline
        while watched:
            wait_ms = _POLL_MS
            if deadline is not None or ramp_at is not None:
                now = time.monotonic()
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        # run() kills and reaps the workers.
                        raise MapTimeoutError(
                            "the map did not finish before its timeout; its workers were stopped"
                        )
                    wait_ms = min(wait_ms, math.ceil(left * 1000))
                if ramp_at is not None:
                    if now >= ramp_at:
                        if _queued_bytes(self.queue_fd):
                            watch(self._start(1))
                        now = time.monotonic()
                        ramp_at = (
                            now + _RAMP_UP
                            if len(self.workers) < self.num_workers and _queued_bytes(self.queue_fd)
                            else None
                        )
                    if ramp_at is not None:
                        wait_ms = min(wait_ms, math.ceil((ramp_at - now) * 1000))
            events = self._poll(wait_ms)
            if not events:
                self._check_alive()
            for fd, _ in events:
                worker = watched[fd]
                try:
                    chunk = os.read(fd, 1 << 20)
                except ConnectionResetError:  # a pooled worker's socket: it died
                    chunk = b""
                if not chunk:
                    raise self._died(worker)
                worker.buffer += chunk
                self._handle_messages(worker)
                if worker.done:
                    poller.unregister(fd)
                    del watched[fd]

    def _poll(self, wait_ms: int) -> list[tuple[int, int]]:
        """``poller.poll(wait_ms)``, awake at first while the caller has a CPU to itself.

        Waking a sleeping caller when a worker writes takes 0.1-0.2 ms on the virtual
        machines measured, about a tenth of a small map. While fewer workers run than
        this process has CPUs, the caller polls without sleeping (yielding its CPU at
        every turn, should a worker be queued on it), for at most ``_SPIN`` seconds per
        map; then, or when every CPU has a worker, it sleeps in ``poll()``.
        """
        poll = self.poller.poll
        if self.spin_left > 0 and len(self.watched) <= self.spare_cpus:
            start = time.monotonic()
            events: list[tuple[int, int]] = self._awake(lambda: poll(0), wait_ms / 1000)
            if events:
                return events
            wait_ms = max(0, wait_ms - math.ceil((time.monotonic() - start) * 1000))
        return poll(wait_ms)

    def _handle_messages(self, worker: WorkerProcess) -> None:
        buffer = worker.buffer
        header_size = protocol.HEADER.size
        start = 0
        while len(buffer) - start >= header_size:
            kind, share, length = protocol.HEADER.unpack_from(buffer, start)
            end = start + header_size + length
            if len(buffer) < end:
                break
            payload = bytes(buffer[start + header_size : end])
            start = end
            if kind == protocol.RESULTS:
                self.values[share] = pickle.loads(payload)
            elif kind == protocol.DONE:
                self.none_counts.frombytes(payload)
                worker.done = True
            else:
                raise protocol.decode_exception(payload)
        del buffer[:start]

    def _check_alive(self) -> None:
        """Catch a dead worker whose pipe is still held open (e.g. by a grandchild)."""
        for worker in self.workers:
            if worker.done or worker.reaped:
                continue
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by the system (SIGCHLD ignored): it is gone
                pid, status = worker.pid, 0
            if not pid:
                continue
            worker.reaped = True
            # It may have written its last messages just before exiting.
            os.set_blocking(worker.fd, False)
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(worker.fd, 1 << 20):
                    worker.buffer += chunk
                    self._handle_messages(worker)
            if not worker.done:
                raise died_error(worker, status)

    def _died(self, worker: WorkerProcess) -> WorkerDiedError:
        _, status = _wait(worker.pid)
        worker.reaped = True
        return died_error(worker, status)

    def _stop_all(self) -> None:
        """Kill what still runs, reap every worker, close every pipe; never interrupted."""
        mask = _sigmask(signal.SIG_BLOCK, _SIGINT)
        try:
            for worker in self.workers:
                if not worker.reaped and not worker.done:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGKILL)
            for worker in self.workers:
                if not worker.reaped:
                    self._reap(worker)
                os.close(worker.fd)
            self.workers.clear()
        finally:
            _sigmask(signal.SIG_SETMASK, mask)

    def _awake(self, ready: Callable[[], _T], seconds: float) -> _T:
        """Call ``ready()`` until it answers something true, without sleeping.

        The caller yields its CPU at every turn (a worker may be queued on it) and stops
        after ``seconds`` or when the map's ``_SPIN`` is used up, whichever comes first.

        Returns:
            ``ready()``'s last answer.
        """
        start = time.monotonic()
        end = start + min(seconds, self.spin_left)
        while not (answer := ready()) and time.monotonic() < end:
            os.sched_yield()
        self.spin_left -= time.monotonic() - start
        return answer

    def _reap(self, worker: WorkerProcess) -> None:
        """Wait for ``worker`` to exit and reap it.

        A worker that sent its last message is exiting already (tearing down its copy of
        the caller's memory takes it about 0.3 ms): then, as in :meth:`_poll`, the caller
        waits awake while it has a CPU to itself and time left of its ``_SPIN``.
        """
        if (
            worker.done
            and self.spin_left > 0
            and sum(not other.reaped for other in self.workers) <= self.spare_cpus
        ):
            try:
                exited = self._awake(lambda: os.waitpid(worker.pid, os.WNOHANG)[0], _SPIN)
            except ChildProcessError:  # reaped by someone else (a SIGCHLD handler)
                exited = worker.pid
            if exited:
                worker.reaped = True
                return
        _wait(worker.pid)
        worker.reaped = True


def _element_count(shares: Sequence[Any]) -> int:
    """The number of elements in ``shares`` when they are ranges (else 0: unknown).

    Shares are contiguous and in order, so the first and the last tell.
    """
    first, last = shares[0], shares[-1]
    if type(first) is range and type(last) is range and first.step == 1 == last.step:
        return max(0, last.stop - first.start)
    return 0


def _queued_bytes(fd: int) -> int:
    count = array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count, True)
    return count[0]


def _wait(pid: int) -> tuple[int, int]:
    try:
        return os.waitpid(pid, 0)
    except ChildProcessError:  # reaped by someone else (a SIGCHLD handler)
        return pid, 0


def died_error(worker: WorkerProcess, status: int) -> WorkerDiedError:
    who = f"worker {worker.worker_id} (pid {worker.pid})"
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
