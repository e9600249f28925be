"""ProcessContext: run maps in worker processes writing into shared memory.

A map runs in one of three modes, which the context decides before it starts the map
(:meth:`ProcessContext.run`):

* **fork per map** (the default): the workers are forked afresh at each map, so the
  kernel -- a closure, a lambda, a local function -- and everything it refers to reach
  them as they are at the moment of the call, without pickling;
* **pooled** (``start_method='forkserver'``/``'spawn'``, or ``persistent=True``): the
  map is pickled once and sent to workers that did not inherit the caller;
* **warm block** (inside ``with ProcessContext() as ctx:``): pooled when the map can
  travel whole and cheaply (it pickles, refers to no writable array that only forked
  workers share -- fork-only blocks, a ``numpy.memmap``, a ``SharedMemory`` buffer --
  and copies at most :data:`WARM_COPY_LIMIT` bytes of ordinary arrays), else forked.

How a map moves:

```text
caller                                            worker processes
------                                            ----------------
ProcessContext.run
  split_target -> shares
  mode?  fork per map --> ForkedWorkers  --fork---> worker.serve (inherits all)
         pooled/warm  --> PooledWorkers  --socket-> worker.serve_maps -> serve
                          (the map pickled once, warm_maps)
  WorkerSet.map (collector):
    share numbers  ------------ queue pipe ------>  read a share, run the kernel
    poll all pipes <-- BUFFER/RESULTS/DONE/ERROR --  report (wire, return_values)
  values in index order; shared arrays hold what the kernels wrote
```

See :mod:`pashmap_shm.collector` for what the caller makes of the workers' reports, and
:mod:`pashmap_shm.forked` on fork and threads.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from pashmap import MapTarget
from pashmap.contexts import (
    BaseContext,
    Order,
    deadline_after,
    format_bytes,
    in_worker,
    progress_counts,
    resolve_num_workers,
    run_serially,
    split_target,
)
from pashmap_shm.blas_threads import BlasThreads, blas_controller, resolve_blas_threads
from pashmap_shm.forked import ForkedWorkers
from pashmap_shm.main_guard import explain_unguarded_main, refuse_in_reimported_main
from pashmap_shm.shared_memory import allocate_shared, clear_cache
from pashmap_shm.unshared_writes import warn_about_unshared_writes

if TYPE_CHECKING:
    from pashmap_shm.pool import WorkerPool

__all__ = ["WARM_COPY_LIMIT", "ProcessContext"]

R = TypeVar("R")

WARM_COPY_LIMIT = 4 * 2**20
"""Inside a ``with`` block, a map holding more bytes than this of arrays that pickling
would copy (ordinary numpy arrays, not the context's shared ones) is forked rather than
sent to the warm workers: a fork shares them for free, where pickling copies them at
every map."""

# The modes of a map (see the module's docstring).
_FORK_PER_MAP = "fork per map"
_POOLED = "pooled"
_WARM_BLOCK = "warm block"


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

    Each worker runs inside :func:`pashmap.contexts.worker_scope`: a
    :class:`~pashmap.PerWorker` value is created in the worker process that uses it and
    torn down there before the worker reports that it is done; an
    :class:`~pashmap.Accumulator` created with this context lives in shared memory.
    ``progress=True`` draws a tqdm bar in the caller from counters in shared memory.

    Args:
        num_workers: the number of worker processes; ``None`` (default) uses every CPU
            this process may use (:func:`pashmap.contexts.available_cpus`: CPU affinity,
            which follows taskset, Slurm and cgroup CPU sets, and the cgroup CPU quota).
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
            at the first map, and maps travel pickled as with ``'forkserver'``
            (a map writing into a ``numpy.memmap`` or a ``SharedMemory`` buffer, which
            would reach them as a copy, raises ``TypeError``).
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
        self._pool_lock = threading.Lock()
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

    def describe(self) -> str:
        """One line on where this context's maps run (shown by ``pashmap info``)."""
        if self._pooled:
            kept = "kept between maps" if self._persistent else "started at each map"
            return (
                f"{self._start_method} workers {kept}: every map is pickled to them, the "
                "context's arrays as handles, other arrays as copies"
            )
        return (
            "workers forked at each map; inside a with block, warm workers take the maps "
            f"that pickle and copy at most {format_bytes(WARM_COPY_LIMIT)} of arrays (the "
            "others are forked); persistent=True sends every map to warm workers"
        )

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
        return allocate_shared(shape, dtype, order, memfd=self._mode() != _FORK_PER_MAP)

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
            **options: ``shares``, the number of equal shares to cut the target into
                (by default a :class:`~pashmap.GuidedTarget` is cut guided, any other
                target into 32 shares per worker; see :func:`pashmap.contexts.split_target`).

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
            return run_serially(kernel, target, shares, deadline=deadline)
        warn_about_unshared_writes(kernel)
        mode = self._mode()
        if mode == _FORK_PER_MAP and not progress:
            # The usual map: no counters to make, and no with block, whose exit after
            # the fork would touch (copy) pages of its own.
            return self._run_in(mode, kernel, target, shares, None, deadline)
        with progress_counts(self, target, progress) as counts:
            return self._run_in(mode, kernel, target, shares, counts, deadline)

    def _run_in(
        self,
        mode: str,
        kernel: Callable[..., Any],
        target: MapTarget[Any],
        shares: Sequence[Any],
        counts: NDArray[np.int64] | None,
        deadline: float | None,
    ) -> list[Any]:
        """Run the map in ``mode``: on warm workers if it goes there, else forked."""
        encoded = None
        if mode != _FORK_PER_MAP:
            from pashmap_shm.warm_maps import pickle_for_warm_workers

            warm_block = mode == _WARM_BLOCK
            encoded = pickle_for_warm_workers(
                kernel,
                target,
                shares,
                counts,
                self._blas_threads,
                warm_block=warm_block,
                copy_limit=WARM_COPY_LIMIT if warm_block else None,
                start_method=self._start_method,
                persistent=self._persistent,
            )
        if encoded is not None:
            from pashmap_shm.pool import PooledWorkers, WorkerPool

            pooled = PooledWorkers(encoded, self._num_workers)
            # One map at a time on the pool: its workers answer on shared sockets.
            with self._pool_lock:
                if self._pool is None or not self._pool.running:
                    if self._start_method != "fork":
                        refuse_in_reimported_main(self._start_method)
                    self._pool = WorkerPool(self._num_workers, self._start_method)
                    self._pool.start()
                    if self._pool.unmaps is not None:
                        self._pool.unmaps.on_clear = _tidier(weakref.ref(self))
                try:
                    with explain_unguarded_main(self._start_method):
                        return pooled.run_on(self._pool, shares, deadline)
                finally:
                    if not (self._persistent or self._warm_block):
                        self._stop_pool_locked()
        blas = None
        if self._blas_threads is not None:
            blas = (blas_controller(), self._blas_threads)
        num_workers = min(self._num_workers, len(shares))
        forked = ForkedWorkers(kernel, target, shares, num_workers, counts, blas)
        return forked.map(shares, deadline)

    def _mode(self) -> str:
        """How the next map runs: fork per map, pooled, or inside a warm block."""
        if self._pooled:
            return _POOLED
        return _WARM_BLOCK if self._warm_block else _FORK_PER_MAP

    def _tidy_pool(self) -> None:
        """Tell the idle warm workers which blocks to drop; skipped while a map runs
        (which tells them itself)."""
        if self._pool_lock.acquire(blocking=False):
            try:
                if self._pool is not None and self._pool.running:
                    self._pool.tidy()
            finally:
                self._pool_lock.release()

    def _stop_pool(self) -> None:
        with self._pool_lock:
            self._stop_pool_locked()

    def _stop_pool_locked(self) -> None:
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
        that works outside the block breaks inside it. So is a map that refers to a
        writable ``numpy.memmap`` or ``multiprocessing.shared_memory`` buffer (warm
        workers would write into a copy), or to more than :data:`WARM_COPY_LIMIT` bytes
        of ordinary numpy arrays (which a fork shares, where pickling would copy them at
        every map). The workers stop at the end of the block (:meth:`close`).
        """
        if self._start_method == "fork" and not self._persistent:
            self._warm_block = True
        return self

    def close(self) -> None:
        """Stop the warm workers, if any; return cached shared memory to the system."""
        self._warm_block = False
        self._stop_pool()
        clear_cache()


def _tidier(context: weakref.ref[ProcessContext]) -> Callable[[], None]:
    """What ``clear_cache()`` calls for a context's warm pool (not keeping it alive)."""

    def tidy() -> None:
        live = context()
        if live is not None:
            live._tidy_pool()

    return tidy


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
