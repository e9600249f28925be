"""ThreadContext: run maps in threads of the calling process.

Threads share everything with the caller, so arrays are ordinary numpy arrays and the
kernel may write anywhere. Useful when the kernel spends its time in code that releases
the GIL (most numpy operations on large arrays, h5py reads, compression libraries); pure
Python kernels are better served by :class:`~pashmap_shm.ProcessContext`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from pashmap import MapTarget, MapTimeoutError
from pashmap.contexts import (
    BaseContext,
    Order,
    StopSignal,
    deadline_after,
    format_bytes,
    in_worker,
    progress_counts,
    resolve_num_workers,
    run_serially,
    share_runner,
    split_target,
    worker_scope,
)
from pashmap_shm.blas_threads import (
    BlasThreads,
    blas_controller,
    limit_blas_threads,
    resolve_blas_threads,
    restore_blas_threads,
)

__all__ = ["ThreadContext"]

R = TypeVar("R")

# After Ctrl-C or a kernel exception, how long the caller waits for the threads to finish
# the element they are running (they start no other) before it raises anyway.
_STOP_GRACE = 5.0
# The caller waits for its threads in slices this long. A signal (Ctrl-C) that arrives
# just before a blocking lock acquire starts is not seen until the acquire returns
# (CPython checks for signals before blocking, and nothing wakes the acquire): an
# unbounded wait could sit on a Ctrl-C until the map ended by itself.
_WAIT_SLICE = 0.1


class ThreadContext(BaseContext):
    """Run maps in ``num_workers`` threads started for each map.

    Every worker takes the next share when it finishes one (dynamic load balancing).
    A kernel exception stops the other threads after the element they are running and is
    re-raised in the caller as it is. On Ctrl-C the threads start no further element and
    the caller waits for the ones they are running (up to 5 s: Python cannot interrupt a
    thread) before it raises ``KeyboardInterrupt``, so that no thread of the interrupted
    map writes into the arrays of the next one. A map started inside a worker thread runs
    serially in that thread.

    Each thread runs inside :func:`pashmap.contexts.worker_scope`: a
    :class:`~pashmap.PerWorker` value is created and torn down in the thread that uses
    it, and :attr:`pashmap.Accumulator.local` is that thread's own slice.

    ``timeout=<seconds>`` raises :class:`pashmap.MapTimeoutError` in the caller as soon
    as the time is up, without waiting for a kernel call still running (Python cannot
    interrupt a thread): the threads start no further element, and one stuck in a call
    finishes it in the background (its per-worker teardowns run then).

    Args:
        num_workers: the number of threads; ``None`` (default) uses every CPU this
            process may run on (``os.sched_getaffinity``).
        blas_threads: BLAS/OpenMP threads allowed while a map runs. ``None`` (default)
            leaves the libraries alone; ``'auto'`` allows each worker its share of the
            CPUs (``max(1, cpus // num_workers)``); an integer that many. Such limits are
            process-wide (threadpoolctl), so they also hold for the caller's other
            threads until the map ends, when the previous setting is restored.

    Raises:
        TypeError: ``num_workers`` is not an integer, or ``blas_threads`` is not
            ``'auto'``, ``None`` or an integer.
        ValueError: ``num_workers`` or ``blas_threads`` is smaller than 1.
    """

    def __init__(self, num_workers: int | None = None, *, blas_threads: BlasThreads = None) -> None:
        self._num_workers = resolve_num_workers(num_workers, type(self).__name__)
        self._blas_threads = resolve_blas_threads(
            blas_threads, self._num_workers, type(self).__name__
        )

    @property
    def num_workers(self) -> int:
        """The number of threads a map runs on (at most one per share)."""
        return self._num_workers

    @property
    def blas_threads(self) -> int | None:
        """The BLAS/OpenMP threads allowed during a map, or ``None`` for no limit."""
        return self._blas_threads

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype[Any], order: Order) -> NDArray[Any]:
        """An ordinary ``numpy.empty`` array: threads share the caller's memory.

        Raises:
            MemoryError: the array does not fit (the message gives the size asked).
        """
        try:
            return np.empty(shape, dtype=dtype, order=order)
        except MemoryError as exc:
            size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
            raise MemoryError(
                f"cannot allocate {format_bytes(size)} ({size} bytes) for an array of shape "
                f"{shape} {dtype}"
            ) from exc

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
        """Call ``kernel(worker_id, *entry)`` for every entry of ``target``, in threads.

        Args:
            kernel: the function to apply.
            target: the map target.
            progress: show a progress bar (tqdm) fed by per-thread counters.
            timeout: seconds after which the map is cancelled.
            **options: ``shares``, the number of equal shares to cut the target into
                (by default a :class:`~pashmap.GuidedTarget` is cut guided, any other
                target into 32 shares per worker; see :func:`pashmap.contexts.split_target`).

        Returns:
            The kernel's return values in index order.

        Raises:
            TypeError: an unknown option.
            MapTimeoutError: the timeout passed (at once, not after the running calls).
            BaseException: whatever the kernel raised, unchanged.
        """
        deadline = deadline_after(timeout)
        shares = split_target(target, self._num_workers, options, type(self).__name__)
        if not shares:
            return []
        if in_worker():
            return run_serially(kernel, target, shares, deadline=deadline)
        changed = []
        if self._blas_threads is not None:
            changed = limit_blas_threads(blas_controller(), self._blas_threads)
        try:
            with progress_counts(self, target, progress) as counts:
                threaded = _ThreadedMap(
                    kernel, target, shares, min(self._num_workers, len(shares)), counts, deadline
                )
                return threaded.run()
        finally:
            restore_blas_threads(changed)


class _ThreadedMap:
    """One map over threads: the shared share counter, the results, the first failure."""

    def __init__(
        self,
        kernel: Callable[..., Any],
        target: MapTarget[Any],
        shares: Sequence[Any],
        num_workers: int,
        counts: NDArray[np.int64] | None,
        deadline: float | None,
    ) -> None:
        self.kernel = kernel
        self.target = target
        self.shares = shares
        self.num_workers = num_workers
        self.counts = counts
        self.deadline = deadline
        self.values: list[list[Any]] = [[] for _ in shares]
        self.failures: list[BaseException] = []
        self.stop = StopSignal()
        # Set by each thread as it ends. The caller waits on these rather than joining:
        # a join interrupted by Ctrl-C can leave a running thread marked as ended
        # (CPython's Thread._wait_for_tstate_lock), and the wait after Ctrl-C must not
        # be fooled by that.
        self.finished = [_Finished() for _ in range(num_workers)]
        self.next_share = 0
        self.lock = threading.Lock()

    def run(self) -> list[Any]:
        # Daemon threads: one stuck in a kernel call past a timeout must not keep the
        # program from exiting.
        threads = [
            threading.Thread(
                target=self._work,
                args=(worker_id,),
                name=f"pashmap-worker-{worker_id}",
                daemon=True,
            )
            for worker_id in range(self.num_workers)
        ]
        started: list[threading.Thread] = []
        try:
            for thread in threads:
                thread.start()
                started.append(thread)
            for worker_id in range(len(started)):
                finished = self.finished[worker_id]
                if self.deadline is None:
                    finished.wait(None)
                    continue
                if not finished.wait(max(0.0, self.deadline - time.monotonic())):
                    timed_out = MapTimeoutError(
                        "the map did not finish before its timeout; its threads start no "
                        "further element (a kernel call still running finishes in the "
                        "background)"
                    )
                    self.failures.insert(0, timed_out)
                    self.stop.stop(timed_out)
                    raise timed_out
        except MapTimeoutError:
            raise
        except BaseException as exc:  # KeyboardInterrupt while starting or joining
            self.stop.stop(exc)
            # (A thread interrupted in start() runs, though not in ``started`` yet.)
            running = [i for i, thread in enumerate(threads) if thread.ident is not None]
            self._wait_for(running, exc)
            raise
        if self.failures:
            raise self.failures[0]
        return list(chain.from_iterable(self.values))

    def _wait_for(self, worker_ids: list[int], exc: BaseException) -> None:
        """Wait (bounded) for stopped threads to finish the element they run; a second
        Ctrl-C meanwhile does not cut the wait short."""
        end = time.monotonic() + _STOP_GRACE
        for worker_id in worker_ids:
            finished = self.finished[worker_id]
            while not finished.done and time.monotonic() < end:
                try:
                    finished.wait(end - time.monotonic())
                except KeyboardInterrupt:
                    continue
        still = [f"pashmap-worker-{i}" for i in worker_ids if not self.finished[i].done]
        if still and hasattr(exc, "add_note"):
            exc.add_note(
                f"pashmap: {', '.join(still)} still ran a kernel call {_STOP_GRACE:g} s "
                "later and may yet finish it"
            )

    def _take(self) -> int:
        with self.lock:
            share = self.next_share
            self.next_share += 1
        return share

    def _work(self, worker_id: int) -> None:
        try:
            with worker_scope(worker_id):
                shares = self.shares
                # Stopped (or past the deadline), the runner starts no further element.
                run = share_runner(
                    self.kernel,
                    worker_id,
                    self.target,
                    counts=self.counts,
                    deadline=self.deadline,
                    stop=self.stop,
                )
                count = len(shares)
                stop = self.stop
                while not stop.stopped:
                    share = self._take()
                    if share >= count:
                        return
                    self.values[share] = run(shares[share])
        except BaseException as exc:
            if exc is not self.stop.reason:  # (the reason is the failure of another)
                self.failures.append(exc)
            self.stop.stop(exc)
        finally:
            self.finished[worker_id].set()


class _Finished:
    """Set once by a worker thread as it ends; the caller waits for it.

    A bare lock, held until the worker ends, rather than a ``threading.Event``: a
    Ctrl-C landing inside ``Event.wait`` (in its condition's bookkeeping) can leave the
    event unusable, and the caller must be able to wait again right after one. Acquiring
    a lock is one call, which a signal interrupts cleanly. The wait goes in slices of
    ``_WAIT_SLICE`` so that a Ctrl-C that came just before an acquire began is still
    seen within one slice.
    """

    __slots__ = ("_lock", "done")

    def __init__(self) -> None:
        self.done = False
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        self.done = True
        self._lock.release()

    def wait(self, timeout: float | None) -> bool:
        """Wait until set or ``timeout`` seconds (``None``: no limit); whether it is set."""
        end = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while not self.done:
            left = _WAIT_SLICE if end is None else min(_WAIT_SLICE, end - time.monotonic())
            if left <= 0:
                break
            if self._lock.acquire(timeout=left):
                self._lock.release()
        return self.done
