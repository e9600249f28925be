"""ProcessContext: run maps in forked worker processes writing into shared memory.

Each map forks its workers afresh, so the kernel -- a closure, a lambda, a local function
-- and everything it refers to reach the workers as they are at the moment of the call,
without pickling. The workers take share after share from a pipe holding the share
indices (dynamic load balancing), write their results into shared arrays and report on a
pipe of their own. The caller watches all pipes at once: a worker's end of file without a
final message means that worker died, which is reported at once as
:class:`pashmap.WorkerDiedError`; nothing waits on a worker that cannot answer.

Fork and threads
    Python 3.12+ warns (``DeprecationWarning``) when a process that has more than one
    thread forks, because a lock held by another thread at that instant stays locked
    forever in the child. numpy's BLAS starts such threads at import, so every fork made
    here would warn. pashmap-shm silences that one warning, for the forks it makes, on
    purpose, with a ``warnings.catch_warnings`` block around them (so it holds under
    ``-W error`` and pytest's ``filterwarnings = error`` too; the block changes the
    process-wide filters for the microseconds of the forks). The child only runs the
    kernel and this module's loop, and then leaves with ``os._exit``. BLAS libraries
    (OpenBLAS, MKL) reset their thread pools in the child, and CPython re-creates its own
    locks (import lock, stdio buffers, logging handlers) after fork. What remains unsafe
    is a kernel that takes a lock which one of *your* threads may hold during the map
    (e.g. a lock in a library you call from both); use
    :class:`~pashmap_shm.ThreadContext` for such code, or start your threads after the
    map.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
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
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from pashmap import BaseContext, MapTarget, MapTimeoutError, WorkerDiedError
from pashmap.allocation import Order
from pashmap.execution import deadline_after, returns_only_none, run_share
from pashmap.progress import progress_counts
from pashmap_shm import protocol
from pashmap_shm.blas_threads import (
    BlasThreads,
    blas_controller,
    limit_blas_threads,
    resolve_blas_threads,
    restore_blas_threads,
)
from pashmap_shm.scheduling import split_target
from pashmap_shm.shared_memory import allocate_shared, clear_cache
from pashmap_shm.unshared_writes import warn_about_unshared_writes
from pashmap_shm.worker import serve
from pashmap_shm.workers import in_worker, resolve_num_workers

if TYPE_CHECKING:
    from pashmap_shm.pool import WorkerPool

__all__ = ["ProcessContext"]

R = TypeVar("R")

# See "Fork and threads" above (Python 3.12+).
_FORK_WARNING = r"This process \(pid=\d+\) is multi-threaded, use of fork\(\) may lead to deadlocks"

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
_SIGINT = {int(signal.SIGINT)}
# signal.pthread_sigmask without the wrapper that turns the old mask into enum members:
# called four times per map, and every object touched after a fork costs a page copy.
_sigmask: Callable[[int, Iterable[int]], set[int]] = getattr(
    signal.pthread_sigmask, "__wrapped__", signal.pthread_sigmask
)
# Only Python 3.12+ warns when forking with threads (see "Fork and threads" above).
_FORK_WARNS = sys.version_info >= (3, 12)


class ProcessContext(BaseContext):
    """Run maps in forked processes; arrays it allocates live in shared memory.

    The kernel is called as ``kernel(worker_id, *entry)`` in ``num_workers`` child
    processes forked at each map. Write results into arrays from ``ctx.array`` /
    ``pm.array`` (while this context is the default): they are shared with the workers,
    so the caller sees the writes with no copy. Writes to any other object stay in the
    worker; return values are pickled back.

    Workers are forked one after another, the next one only while shares are still
    waiting (2 ms after the previous one started), so a map of a few cheap elements
    costs a single fork; a map of 50 000 elements or more (which keeps a worker busy
    for longer than a fork takes, whatever the kernel) starts them all at once.
    ``worker_id`` is always in ``range(num_workers)``.

    Behaviour at the edges:

    * a kernel exception is re-raised in the caller with its original type and the
      worker's traceback chained (:class:`~pashmap_shm.RemoteTraceback`); the other
      workers are stopped at once;
    * a worker that dies (killed, crashed, ``os._exit``) raises
      :class:`pashmap.WorkerDiedError` naming the worker and its signal or exit status;
    * Ctrl-C raises ``KeyboardInterrupt`` in the caller, which kills its workers (they
      keep SIGINT blocked, and so do programs a kernel starts with ``subprocess``);
      workers are also killed when the caller dies;
    * ``timeout=<seconds>`` past: the workers are killed and reaped and
      :class:`pashmap.MapTimeoutError` (a ``TimeoutError``) is raised, also when a
      kernel call hangs;
    * a map started inside a worker runs serially in that worker.

    Each worker runs inside :func:`pashmap.worker.worker_scope`: a
    :class:`~pashmap.PerWorker` value is created in the worker process that uses it and
    torn down there before the worker reports that it is done; an
    :class:`~pashmap.Accumulator` created with this context lives in shared memory.
    ``progress=True`` draws a tqdm bar in the caller from counters in shared memory.

    Args:
        num_workers: the number of worker processes; ``None`` (default) uses every CPU
            this process may run on (``os.sched_getaffinity``, which follows taskset,
            Slurm and cgroup CPU sets).
        blas_threads: the BLAS/OpenMP threads (OpenBLAS, MKL, OpenMP, via threadpoolctl)
            each worker process may use: ``'auto'`` (default) its share of the CPUs,
            ``max(1, cpus // num_workers)``, so the workers do not oversubscribe the
            machine; an integer that many; ``None`` leaves the libraries alone. The
            caller's own setting is not changed.
        start_method: ``'fork'`` (default) forks the workers at each map, as described
            above. ``'forkserver'`` and ``'spawn'`` start workers that did not inherit
            the caller: the kernel and the target are pickled (cloudpickle, so lambdas
            and closures work) and every array allocated by this context travels as a
            handle to the same shared memory (a memfd whose descriptor is passed to the
            worker), never as a copy. Anything else they refer to must be picklable and
            is copied (writes to it are lost).
        persistent: keep the workers between maps (warm workers), until :meth:`close`
            (or the end of a ``with`` block); with ``'fork'`` they are then forked once,
            at the first map, and maps travel pickled as with ``'forkserver'``.
            Under ``'forkserver'``/``'spawn'`` without it, each map starts its workers
            and stops them at the end.

    Raises:
        TypeError: ``num_workers`` is not an integer, or ``blas_threads`` is not
            ``'auto'``, ``None`` or an integer.
        ValueError: ``num_workers`` or ``blas_threads`` is smaller than 1, or an
            unknown ``start_method``.
    """

    def __init__(
        self,
        num_workers: int | None = None,
        *,
        blas_threads: BlasThreads = "auto",
        start_method: str = "fork",
        persistent: bool = False,
    ) -> None:
        self._num_workers = resolve_num_workers(num_workers, type(self).__name__)
        self._blas_threads = resolve_blas_threads(
            blas_threads, self._num_workers, type(self).__name__
        )
        if self._blas_threads is not None and start_method == "fork":
            blas_controller()  # find the BLAS libraries now, not in the first map
        self._start_method = _check_start_method(start_method, type(self).__name__)
        self._persistent = bool(persistent)
        self._pooled = self._persistent or self._start_method != "fork"
        self._pool: WorkerPool | None = None
        self._warm_block = False  # inside ``with`` (fork): warm when the map allows it

    @property
    def num_workers(self) -> int:
        """The number of worker processes a map forks (at most one per share)."""
        return self._num_workers

    @property
    def blas_threads(self) -> int | None:
        """The BLAS/OpenMP threads each worker process may use, or ``None`` for no limit."""
        return self._blas_threads

    @property
    def start_method(self) -> str:
        """How workers are started: ``'fork'``, ``'forkserver'`` or ``'spawn'``."""
        return self._start_method

    @property
    def persistent(self) -> bool:
        """Whether the workers are kept between maps."""
        return self._persistent

    def worker_pids(self) -> list[int]:
        """The process ids of the warm workers (empty when none are running)."""
        return self._pool.pids() if self._pool is not None else []

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype[Any], order: Order) -> NDArray[Any]:
        """An uninitialised array in shared anonymous memory (a memfd for pooled workers).

        Raises:
            TypeError: ``dtype`` holds Python objects, which cannot be shared.
            MemoryError: the array does not fit in the memory available (the message
                gives the size asked and the size available).
        """
        if self._pooled or self._warm_block:
            from pashmap_shm.shared_handles import allocate_with_handle

            return allocate_with_handle(shape, dtype, order)
        return allocate_shared(shape, dtype, order)

    def run(
        self,
        kernel: Callable[..., R],
        target: MapTarget[Any],
        /,
        *,
        progress: bool = False,
        timeout: float | None = None,
        **options: Any,
    ) -> list[R]:
        """Call ``kernel(worker_id, *entry)`` for every entry of ``target``, in workers.

        Args:
            kernel: the function to apply.
            target: the map target.
            progress: show a progress bar (tqdm) fed by counters in shared memory.
            timeout: seconds after which the workers are killed and the map raises
                :class:`~pashmap.MapTimeoutError`.
            **options: ``shares``, the number of shares to cut the target into
                (default 32 per worker).

        Returns:
            The kernel's return values in index order.

        Raises:
            TypeError: an unknown option.
            MapTimeoutError: the timeout passed.
            WorkerDiedError: a worker process ended without finishing.
            KernelError: the kernel raised an exception that could not be pickled.
            BaseException: whatever the kernel raised, with its original type.
        """
        deadline = deadline_after(timeout)
        shares = split_target(target, self._num_workers, options, type(self).__name__)
        if not shares:
            return []
        if in_worker():
            return [
                value
                for share in shares
                for value in run_share(kernel, 0, target, share, deadline=deadline)
            ]
        warn_about_unshared_writes(kernel)
        if self._pooled:
            return self._run_pooled(kernel, target, shares, progress, deadline)
        if self._warm_block and _travels_whole(kernel, target, shares):
            return self._run_pooled(kernel, target, shares, progress, deadline)
        blas = None
        if self._blas_threads is not None:
            blas = (blas_controller(), self._blas_threads)
        num_workers = min(self._num_workers, len(shares))
        if not progress:
            return _ForkedMap(kernel, target, shares, num_workers, None, deadline, blas).run()
        with progress_counts(self, target, progress) as counts:
            return _ForkedMap(kernel, target, shares, num_workers, counts, deadline, blas).run()

    def _run_pooled(
        self,
        kernel: Callable[..., R],
        target: MapTarget[Any],
        shares: Sequence[Any],
        progress: bool,
        deadline: float | None,
    ) -> list[R]:
        from pashmap_shm.pool import PoolMap, WorkerPool

        if self._pool is None or not self._pool.running:
            self._pool = WorkerPool(self._num_workers, self._start_method)
            self._pool.start()
        try:
            with progress_counts(self, target, progress) as counts:
                pooled = PoolMap(
                    self._pool, kernel, target, shares, counts, deadline, self._blas_threads
                )
                return pooled.run()
        finally:
            if not (self._persistent or self._warm_block):
                self._stop_pool()

    def _stop_pool(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> ProcessContext:
        """Keep workers warm between the maps of a ``with`` block, also for ``'fork'``.

        Inside the block, arrays this context allocates live in a memfd, which warm
        workers can map, and a map whose kernel and target can be pickled (cloudpickle)
        runs on workers kept from one map to the next. A map that cannot travel that way
        -- an unpicklable kernel or target, or one that refers to an array allocated
        before the block in fork-only shared memory -- is forked as usual, so nothing
        that works outside the block breaks inside it. The workers stop at the end of
        the block (:meth:`close`).
        """
        if self._start_method == "fork" and not self._persistent:
            self._warm_block = True
        return self

    def close(self) -> None:
        """Stop the warm workers, if any; return cached shared memory to the system."""
        self._warm_block = False
        self._stop_pool()
        clear_cache()


class _Worker:
    """The caller's view of one worker process."""

    __slots__ = ("buffer", "done", "fd", "pid", "reaped", "worker_id")

    def __init__(self, worker_id: int, pid: int, fd: int) -> None:
        self.worker_id = worker_id
        self.pid = pid
        self.fd = fd
        self.buffer = bytearray()
        self.done = False
        self.reaped = False


class _ForkedMap:
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
        self.workers: list[_Worker] = []
        self.returns_none = returns_only_none(kernel)
        self.poller = select.poll()
        self.watched: dict[int, _Worker] = {}  # the workers still running, by pipe
        self.values: list[list[Any] | None] = [None] * len(shares)
        self.none_counts = array("q")  # (share, count) pairs, flat

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

    def _start(self, count: int) -> list[_Worker]:
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
                    warnings.filterwarnings("ignore", _FORK_WARNING, DeprecationWarning)
                    return self._fork(count)
            return self._fork(count)
        finally:
            restore_blas_threads(changed, after_fork=True)
            _sigmask(signal.SIG_SETMASK, mask)
            if freeze:
                gc.unfreeze()

    def _fork(self, count: int) -> list[_Worker]:
        # A new child usually starts on the caller's CPU and runs only once the caller
        # sleeps (in poll), and every page the caller writes meanwhile is copied: so all
        # the bookkeeping is done before the fork, and after it only what must be.
        started = []
        for _ in range(count):
            worker_id = len(self.workers)
            read_fd, write_fd = os.pipe()
            worker = _Worker(worker_id, 0, read_fd)
            self.poller.register(read_fd, select.POLLIN)
            self.watched[read_fd] = worker
            self.workers.append(worker)
            started.append(worker)
            try:
                pid = os.fork()
            except BaseException:
                del self.watched[read_fd]
                self.poller.unregister(read_fd)
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
        poller = self.poller
        watched = self.watched

        def start(count: int) -> None:
            for worker in self._start(count):
                if worker.fd not in watched:  # (forked workers are registered already)
                    poller.register(worker.fd, select.POLLIN)
                    watched[worker.fd] = worker

        # A map too long for one worker to finish while the next one forks starts them
        # all at once; any other map starts one and adds more only while shares wait.
        start(self.num_workers if _element_count(self.shares) >= _START_ALL_AT else 1)
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
                            start(1)
                        now = time.monotonic()
                        ramp_at = (
                            now + _RAMP_UP
                            if len(self.workers) < self.num_workers and _queued_bytes(self.queue_fd)
                            else None
                        )
                    if ramp_at is not None:
                        wait_ms = min(wait_ms, math.ceil((ramp_at - now) * 1000))
            events = poller.poll(wait_ms)
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

    def _handle_messages(self, worker: _Worker) -> None:
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
                raise _died_error(worker, status)

    def _died(self, worker: _Worker) -> WorkerDiedError:
        _, status = _wait(worker.pid)
        worker.reaped = True
        return _died_error(worker, status)

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
                    _wait(worker.pid)
                    worker.reaped = True
                os.close(worker.fd)
            self.workers.clear()
        finally:
            _sigmask(signal.SIG_SETMASK, mask)


def _check_start_method(start_method: object, context_name: str) -> str:
    """Check a ``start_method`` argument (without importing the pool machinery)."""
    if start_method == "fork":
        return "fork"
    import multiprocessing

    methods = ("fork", "forkserver", "spawn")
    if start_method not in methods:
        raise ValueError(
            f"{context_name}(start_method=...) must be one of {', '.join(methods)}; "
            f"got {start_method!r}"
        )
    if start_method not in multiprocessing.get_all_start_methods():
        raise ValueError(f"start_method={start_method!r} is not available on this platform")
    return str(start_method)


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


def _died_error(worker: _Worker, status: int) -> WorkerDiedError:
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


def _travels_whole(
    kernel: Callable[..., Any], target: MapTarget[Any], shares: Sequence[Any]
) -> bool:
    """Whether a map can go to warm workers with nothing lost: it pickles, and it refers
    to no array that only forked workers share (such an array would arrive as a copy)."""
    from pashmap_shm.shared_handles import dumps_with_handles
    from pashmap_shm.unshared_writes import NotSharedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", NotSharedWarning)
        try:
            dumps_with_handles((kernel, target, shares))
        except Exception:
            return False
    return True
