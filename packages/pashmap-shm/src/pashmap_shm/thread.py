"""ThreadContext: run maps in threads of the calling process.

Threads share everything with the caller, so arrays are ordinary numpy arrays and the
kernel may write anywhere. Useful when the kernel spends its time in code that releases
the GIL (most numpy operations on large arrays, h5py reads, compression libraries); pure
Python kernels are better served by :class:`~pashmap_shm.ProcessContext`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from itertools import chain, starmap
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from pashmap import BaseContext, MapTarget
from pashmap.allocation import Order
from pashmap_shm.scheduling import split_target
from pashmap_shm.workers import in_worker, mark_thread_as_worker, resolve_num_workers

__all__ = ["ThreadContext"]

R = TypeVar("R")

# After Ctrl-C, how long the caller waits for threads to finish their current share.
_INTERRUPT_GRACE = 1.0


class ThreadContext(BaseContext):
    """Run maps in ``num_workers`` threads started for each map.

    Every worker takes the next share when it finishes one (dynamic load balancing).
    A kernel exception stops the other threads after their current share and is
    re-raised in the caller as it is. On Ctrl-C the caller raises ``KeyboardInterrupt``
    at once; threads cannot be interrupted, so they stop after their current share (the
    caller waits up to a second for them). A map started inside a worker thread runs
    serially in that thread.

    Args:
        num_workers: the number of threads; ``None`` (default) uses every CPU this
            process may run on (``os.sched_getaffinity``).

    Raises:
        TypeError: ``num_workers`` is not an integer.
        ValueError: ``num_workers`` is smaller than 1.
    """

    def __init__(self, num_workers: int | None = None) -> None:
        self._num_workers = resolve_num_workers(num_workers, type(self).__name__)

    @property
    def num_workers(self) -> int:
        """The number of threads a map runs on (at most one per share)."""
        return self._num_workers

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
                f"cannot allocate {size / 2**30:.2f} GiB ({size} bytes) for an array of shape "
                f"{shape} {dtype}"
            ) from exc

    def run(self, kernel: Callable[..., R], target: MapTarget[Any], /, **options: Any) -> list[R]:
        """Call ``kernel(worker_id, *entry)`` for every entry of ``target``, in threads.

        Args:
            kernel: the function to apply.
            target: the map target.
            **options: ``shares``, the number of shares to cut the target into
                (default 32 per worker).

        Returns:
            The kernel's return values in index order.

        Raises:
            TypeError: an unknown option.
            BaseException: whatever the kernel raised, unchanged.
        """
        shares = split_target(target, self._num_workers, options, type(self).__name__)
        if not shares:
            return []
        if in_worker():
            return [kernel(0, *entry) for share in shares for entry in target.iterate(share)]
        return _ThreadedMap(kernel, target, shares, min(self._num_workers, len(shares))).run()


class _ThreadedMap:
    """One map over threads: the shared share counter, the results, the first failure."""

    def __init__(
        self,
        kernel: Callable[..., Any],
        target: MapTarget[Any],
        shares: Sequence[Any],
        num_workers: int,
    ) -> None:
        self.kernel = kernel
        self.target = target
        self.shares = shares
        self.num_workers = num_workers
        self.values: list[list[Any]] = [[] for _ in shares]
        self.failures: list[BaseException] = []
        self.next_share = 0
        self.lock = threading.Lock()

    def run(self) -> list[Any]:
        threads = [
            threading.Thread(
                target=self._work, args=(worker_id,), name=f"pashmap-worker-{worker_id}"
            )
            for worker_id in range(self.num_workers)
        ]
        started: list[threading.Thread] = []
        try:
            for thread in threads:
                thread.start()
                started.append(thread)
            for thread in started:
                thread.join()
        except BaseException:  # KeyboardInterrupt while joining
            self.failures.append(KeyboardInterrupt())  # stops the others after their share
            for thread in started:
                thread.join(_INTERRUPT_GRACE / len(started))
            raise
        if self.failures:
            raise self.failures[0]
        return list(chain.from_iterable(self.values))

    def _take(self) -> int:
        with self.lock:
            share = self.next_share
            self.next_share += 1
        return share

    def _work(self, worker_id: int) -> None:
        mark_thread_as_worker(True)
        try:
            call = partial(self.kernel, worker_id)
            iterate = self.target.iterate
            count = len(self.shares)
            while not self.failures:
                share = self._take()
                if share >= count:
                    return
                self.values[share] = list(starmap(call, iterate(self.shares[share])))
        except BaseException as exc:
            self.failures.append(exc)
        finally:
            mark_thread_as_worker(False)
