"""DaskContext: pashmap maps on a Dask distributed cluster.

::

    caller (pm.map)                          Dask scheduler          Dask workers
    ---------------                          --------------          ------------
    split target into num_workers shares
    pickle kernel + target (cloudpickle);
      context arrays -> specs, inputs ->
      buffers: one MapPayload     -- scatter (broadcast, once) -->   payload per worker
    one task per share (worker id) -- submit ------------------->    run_task: own tracked
                                                                     copies of the context
                                                                     arrays, worker_scope,
                                                                     run_share
    as results arrive:            <-- ShareResult (values, runs) --
      copy written runs into the caller's arrays (conflicts -> error),
      progress bar, exceptions re-raised, timeout/Ctrl-C -> cancel + Event

Dask schedules the tasks, reruns a share whose worker died, and moves the bytes; this
module only decides what a map sends and what it does with what comes back.
"""

from __future__ import annotations

import contextlib
import threading
import time
import types
import uuid
import warnings
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import cloudpickle
import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from pashmap import MapTimeoutError, OversubscriptionWarning, PashmapError, WorkerDiedError
from pashmap.contexts import (
    BaseContext,
    Order,
    decode_exception,
    format_bytes,
    in_worker,
    progress_counts,
    run_share,
    split_target,
    worker_scope,
)
from pashmap_dask.cluster import (
    CONNECT_TIMEOUT,
    Connection,
    ConnectionFailedError,
    connect,
    describe_cluster,
)
from pashmap_dask.task import ShareResult, run_task, stop_map
from pashmap_dask.unshared import array_names, warn_about_writes_in_vain
from pashmap_dask.wire import ArrayTable, MapPayload, pickled, pickled_by_value
from pashmap_dask.writes import ConflictingWritesError, WriteBack

__all__ = ["SHARES_PER_THREAD", "DaskContext"]

R = TypeVar("R")

SHARES_PER_THREAD = 4
"""Default worker ids (shares) per thread of the cluster: Dask balances skewed work."""

# More shares than this many per thread of the cluster (and than _FEW_SHARES) is a
# mistake worth a warning.
_OVERSUBSCRIPTION = 64
_FEW_SHARES = 256

# A payload up to this size goes with each task; a larger one is scattered to every
# worker once.
_INLINE_BYTES = 1 << 20

# Options of the other context kinds, for a helpful error.
_OTHER_KINDS = {
    "start_method": "'processes'",
    "blas_threads": "'processes' and 'threads'",
    "persistent": "'processes'",
}


class DaskContext(BaseContext):
    """Runs maps on a Dask distributed cluster; its arrays are numpy arrays in the caller.

    Each map is cut into ``num_workers`` shares, one Dask task each; the kernel and the
    target travel by cloudpickle (by value when the workers cannot import their module),
    with the inputs they refer to once per worker. A kernel writes into the context's
    arrays as under any context (``out[index] = ...``); each share sends back what it
    wrote, which is copied into the caller's arrays as the shares finish. Two shares
    writing the same element of an array that is not ``per_worker`` raise
    :class:`~pashmap_dask.ConflictingWritesError`. See the "Scaling out with Dask" page.

    The cluster, in order: ``client=``, ``cluster=`` (a Client is made on it),
    ``address=``, ``scheduler_file=``; else the current ``distributed`` Client; else the
    scheduler named by Dask's configuration (``DASK_SCHEDULER_ADDRESS``,
    ``scheduler-address``); else an embedded ``LocalCluster`` with one single-threaded
    worker process per available CPU, owned by the context. The context closes only
    what it created: in :meth:`close`, at the end of a ``with`` block, and at
    interpreter exit.

    Args:
        num_workers: the worker ids of a map: its number of shares, the first axis of
            ``per_worker`` arrays and of :class:`~pashmap.Accumulator` partials. By
            default ``SHARES_PER_THREAD`` (4) times the threads of the cluster's workers
            when the context is created (the available CPUs if it has none yet), so that
            Dask balances uneven shares.
        client: a ``distributed.Client`` to run on (left open by :meth:`close`).
        cluster: a cluster object (``LocalCluster``, ``SLURMCluster``, ...) to connect to.
        address: the address of a running scheduler, e.g. ``'tcp://host:8786'``.
        scheduler_file: the file ``dask scheduler --scheduler-file`` wrote.

    Raises:
        TypeError: an option of another context kind (``start_method=``,
            ``blas_threads=``, ``persistent=``), or more than one way to the cluster.
        FileNotFoundError: the scheduler file does not exist.
        ConnectionFailedError: the scheduler does not answer within 10 s.
        MissingPluginError: a worker cannot import ``pashmap_dask`` (the message says
            what to install where).
    """

    def __init__(
        self,
        num_workers: int | None = None,
        *,
        client: Any = None,
        cluster: Any = None,
        address: str | None = None,
        scheduler_file: str | None = None,
        **options: Any,
    ) -> None:
        if options:
            raise TypeError(_other_options_message(options))
        if num_workers is not None:
            if isinstance(num_workers, bool) or not isinstance(num_workers, int):
                raise TypeError(
                    f"DaskContext(num_workers=...) needs a positive integer or None (4 per "
                    f"thread of the cluster), got {num_workers!r}"
                )
            if num_workers < 1:
                raise ValueError(
                    f"DaskContext(num_workers=...) must be at least 1, got {num_workers}"
                )
        self._arrays: dict[int, tuple[weakref.ref[NDArray[Any]], bool]] = {}
        self._importable: dict[str, bool] = {}
        self._lock = threading.Lock()
        self.last_map_bytes: dict[str, int] = {"sent": 0, "received": 0}
        self._connection: Connection | None = connect(
            client=client, cluster=cluster, address=address, scheduler_file=scheduler_file
        )
        threads = describe_cluster(self._connection.client)["threads"]
        if not threads:  # no worker yet (a cluster still scaling up)
            from pashmap.contexts import available_cpus

            threads = available_cpus()
        if num_workers is None:
            num_workers = SHARES_PER_THREAD * threads
        elif num_workers > max(_FEW_SHARES, _OVERSUBSCRIPTION * threads):
            warnings.warn(
                f"DaskContext(num_workers={num_workers}) cuts each map into far more shares "
                f"than the {threads} usable threads of the cluster's workers can use: each "
                f"share is a Dask task with its own overhead; num_workers=None gives "
                f"{SHARES_PER_THREAD * threads}",
                OversubscriptionWarning,
                stacklevel=2,
            )
        self._num_workers = num_workers

    # ---------------------------------------------------------------- the contract
    @property
    def num_workers(self) -> int:
        """The worker ids (and shares) of a map."""
        return self._num_workers

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` maps run through.

        Raises:
            RuntimeError: the context was closed, or this is a copy inside a kernel.
        """
        if self._connection is None or self._connection.closed:
            raise RuntimeError("this DaskContext is closed (or is a copy inside a kernel)")
        return self._connection.client

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype[Any], order: Order) -> NDArray[Any]:
        """A new array of zeros in the caller (memory appears as it is written)."""
        array: NDArray[Any] = np.zeros(shape, dtype, order=order)
        self._register(array, per_worker=False)
        return array

    def array(
        self,
        shape: Any = None,
        dtype: DTypeLike | None = None,
        *,
        order: Order | None = None,
        fill: ArrayLike | None = None,
        like: ArrayLike | None = None,
        per_worker: bool = False,
    ) -> NDArray[Any]:
        """Allocate an array the kernels can write to; see :func:`pashmap.array`."""
        if (
            fill is not None
            and like is None
            and not isinstance(fill, np.ndarray)
            and np.ndim(fill) == 0
            and not np.asarray(fill).tobytes().strip(b"\0")
        ):
            # allocate() gives zeros already: writing them again would only make the
            # memory appear now rather than as the shares' rows arrive.
            if dtype is None:
                dtype = np.float64
            fill = None
        array = super().array(
            shape, dtype, order=order, fill=fill, like=like, per_worker=per_worker
        )
        if per_worker:
            self._register(array, per_worker=True)
        return array

    def _register(self, array: NDArray[Any], *, per_worker: bool) -> None:
        key = id(array)
        arrays = self._arrays

        def forget(_: object, key: int = key) -> None:
            arrays.pop(key, None)

        arrays[key] = (weakref.ref(array, forget), per_worker)

    def _owner(self, array: NDArray[Any]) -> tuple[NDArray[Any], bool] | None:
        """The context array that ``array`` is, or is a view of, and whether per_worker."""
        candidate: Any = array
        for _ in range(4):
            if candidate is None:
                return None
            entry = self._arrays.get(id(candidate))
            if entry is not None:
                root = entry[0]()
                if root is not None and root is candidate:
                    return root, entry[1]
            candidate = getattr(candidate, "base", None)
        return None

    def run(self, kernel: Callable[..., R], target: Any, /, **options: Any) -> list[R]:
        """Run the kernel over every element of ``target`` on the cluster.

        Args:
            kernel: the function to call as ``kernel(worker_id, *entry)``.
            target: a MapTarget.
            **options: ``progress=True`` (a tqdm bar fed as shares finish),
                ``timeout=<seconds>`` (``MapTimeoutError``; running shares stop at their
                next element) and ``shares=n`` (cut the target into ``n`` shares rather
                than ``num_workers``; more than ``num_workers`` are run in contiguous
                groups, one Dask task and worker id per group).

        Returns:
            The kernel's return values, in index order.

        Raises:
            TypeError: an unknown option.
            ConflictingWritesError: two shares wrote the same element of an array.
            WorkerDiedError: a share kept killing the workers that ran it.
            MapTimeoutError: the map ran longer than ``timeout``.
            ConnectionFailedError: the scheduler went away during the map.
            Exception: what the kernel raised, with the worker's traceback as cause.
        """
        progress = bool(options.pop("progress", False))
        timeout = options.pop("timeout", None)
        count = options.pop("shares", None)
        if options:
            raise TypeError(
                f"the 'dask' context takes the options progress=, timeout= and shares=, "
                f"not {', '.join(sorted(options))}"
            )
        if self._connection is None or in_worker():
            return _run_serially(kernel, target, timeout)
        client = self.client
        split = {"shares": self.num_workers if count is None else count}
        shares = split_target(target, self.num_workers, split, "DaskContext")
        if not shares:
            return []
        groups = _groups(shares, self.num_workers)
        return _Map(self, client, kernel, target, groups, progress, timeout).run()

    # ---------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Close the client and the cluster if this context created them. Safe twice."""
        if self._connection is not None:
            self._connection.close()

    def cluster_info(self) -> dict[str, Any]:
        """The cluster this context runs on: ``scheduler`` (its address), ``workers``,
        ``threads`` and ``memory`` (the workers' memory limits, bytes), now."""
        return describe_cluster(self.client)

    def describe(self) -> str:
        """Where maps run, in one line (``pashmap info`` prints it)."""
        if self._connection is None:
            return "a detached copy (maps run serially)"
        info = self.cluster_info()
        return (
            f"{self._connection.source}: scheduler {info['scheduler']}, {info['workers']} "
            f"workers, {info['threads']} threads, {format_bytes(info['memory'])} memory"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # A kernel referring to its context gets a detached copy, which maps serially.
        return (_detached, (self._num_workers,))

    def __repr__(self) -> str:
        source = self._connection.source if self._connection is not None else "detached"
        return f"DaskContext(num_workers={self._num_workers}, {source})"

    # ---------------------------------------------------------------- helpers
    def _modules_by_value(self, *objects: object) -> list[types.ModuleType]:
        """The modules of the kernel and target that the workers cannot import."""
        import sys

        found = []
        for obj in objects:
            function: Any = obj
            while isinstance(function, partial):
                function = function.func
            names = {getattr(function, "__module__", None), type(obj).__module__}
            for name in names:
                if not name or name in ("__main__", "builtins") or name not in sys.modules:
                    continue
                importable = self._importable.get(name)
                if importable is None:
                    # A worker that fails to answer (dying, say) counts as one that
                    # cannot import: by value is always safe.
                    answers = self.client.run(_make_import_probe(name), on_error="return")
                    importable = all(answer is True for answer in answers.values())
                    self._importable[name] = importable
                if not importable:
                    found.append(sys.modules[name])
        return found


def _detached(num_workers: int) -> DaskContext:
    context = DaskContext.__new__(DaskContext)
    context._arrays = {}
    context._importable = {}
    context._lock = threading.Lock()
    context.last_map_bytes = {"sent": 0, "received": 0}
    context._connection = None
    context._num_workers = num_workers
    return context


def _make_import_probe(name: str) -> Callable[[], bool]:
    def probe() -> bool:
        import importlib.util

        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            return False

    return probe


def _other_options_message(options: dict[str, Any]) -> str:
    names = sorted(options)
    hints = [
        f"{name}= belongs to the {_OTHER_KINDS[name]} context"
        for name in names
        if name in _OTHER_KINDS
    ]
    hint = f" ({'; '.join(hints)})" if hints else ""
    return (
        f"the 'dask' context does not take {', '.join(n + '=' for n in names)}{hint}; it takes "
        "num_workers=, client=, cluster=, address= and scheduler_file="
    )


def _run_serially(kernel: Callable[..., R], target: Any, timeout: float | None) -> list[R]:
    """A map inside a kernel (or on a detached copy): serially, in the calling worker."""
    deadline = None if timeout is None else time.monotonic() + timeout
    values: list[R] = []
    with worker_scope(0):
        for share in target.split(1):
            values.extend(run_share(kernel, 0, target, share, deadline=deadline))
    return values


# How many times a map runs again a share the cluster cancelled on its own.
_RESUBMITS = 8


class _Map:
    """One map on the cluster, from pickling to the last write copied back."""

    def __init__(
        self,
        context: DaskContext,
        client: Any,
        kernel: Callable[..., Any],
        target: Any,
        shares: list[Any],
        progress: bool,
        timeout: float | None,
    ) -> None:
        self.context = context
        self.client = client
        self.kernel = kernel
        self.target = target
        self.shares = shares
        self.progress = progress
        self.timeout = timeout
        self.token = uuid.uuid4().hex[:12]
        self.event = f"pashmap-cancel-{self.token}"
        self.futures: list[Any] = []
        self.scattered: Any = None
        self.arguments: tuple[Any, list[dict[int, NDArray[Any]]]] | None = None
        self.resubmitted: dict[int, int] = {}  # share -> times run again

    def run(self) -> list[Any]:
        context = self.context
        start = time.monotonic()
        deadline = None if self.timeout is None else time.time() + self.timeout
        table = ArrayTable(context._owner)
        with pickled_by_value(context._modules_by_value(self.kernel, self.target)):
            kernel, kernel_buffers = pickled(self.kernel, table)
            target, target_buffers = pickled(self.target, table)
        warn_about_writes_in_vain(self.kernel, context._owner)
        names = array_names(self.kernel)
        contents: dict[int, NDArray[Any]] = {}
        slices: list[dict[int, NDArray[Any]]] = [{} for _ in self.shares]
        write_backs: dict[int, WriteBack] = {}
        for spec, root in zip(table.specs, table.roots, strict=True):
            name = names.get(id(root), f"a context array of shape {root.shape} ({root.dtype})")
            write_backs[spec.key] = WriteBack(
                root, repr(name) if id(root) in names else name, per_worker=spec.per_worker
            )
            if spec.fill is not None:
                continue
            if not spec.per_worker:
                contents[spec.key] = root
                continue
            for worker_id, own in enumerate(slices):
                own[spec.key] = root[worker_id] if spec.order == "C" else root[..., worker_id]
        payload = MapPayload(
            kernel,
            kernel_buffers,
            target,
            target_buffers,
            table.specs,
            contents,
            self.event,
            deadline,
        )
        sent = payload.nbytes
        try:
            argument: Any = payload
            if sent > _INLINE_BYTES:
                self.scattered = argument = self.client.scatter(payload, broadcast=True, hash=False)
                workers = len(self.client.scheduler_info(n_workers=-1)["workers"]) if sent else 1
                sent *= max(workers, 1)
            else:
                sent *= len(self.shares)
            sent += sum(a.nbytes for own in slices for a in own.values())
            keys = [
                f"pashmap-{_label(self.kernel)}-{self.token}-{k}" for k in range(len(self.shares))
            ]
            self.arguments = (argument, slices)
            self.futures = self.client.map(
                run_task,
                [argument] * len(self.shares),
                range(len(self.shares)),
                self.shares,
                slices,
                key=keys,
            )
            received = self._collect(write_backs, start)
        except BaseException:
            self._cancel()
            raise
        finally:
            self._release()
        context.last_map_bytes = {"sent": sent, "received": received}
        values: list[Any] = []
        for result in self.results:
            values.extend([None] * result.count if result.values is None else result.values)
        return values

    def _collect(self, write_backs: dict[int, WriteBack], start: float) -> int:
        from distributed import as_completed

        index = {future.key: k for k, future in enumerate(self.futures)}
        self.results: list[ShareResult] = [ShareResult() for _ in self.shares]
        received = 0
        waiting = as_completed(
            self.futures, with_results=True, raise_errors=False, loop=self.client.loop
        )
        with progress_counts(self.context, self.target, self.progress) as counts:
            done = 0
            while done < len(self.shares):
                future, result = self._next(waiting, start)
                k = index[future.key]
                if future.status == "cancelled" and self._resubmit(k, waiting, index):
                    continue
                if future.status != "finished":
                    self._raise_failure(k, future, result)
                done += 1
                if result.error is not None:
                    # What the share wrote before it raised is kept, as under LocalContext
                    # (a clash there is not news next to the kernel's own exception).
                    with contextlib.suppress(ConflictingWritesError):
                        for key, runs in result.runs.items():
                            write_backs[key].apply(runs)
                    raise decode_exception(result.error, loads=cloudpickle.loads)
                for key, runs in result.runs.items():
                    write_backs[key].apply(runs)
                received += result.nbytes + 64 * len(result.values or ())
                result.runs = {}  # copied in: let the memory go now, not at the map's end
                self.results[k] = result
                if counts is not None:
                    counts[k % len(counts)] += result.count
        return received

    def _next(self, waiting: Any, start: float) -> tuple[Any, Any]:
        """The next finished share; watches the timeout and the scheduler meanwhile."""
        import queue

        lost_since: float | None = None
        while True:
            wait = 0.5
            if self.timeout is not None:
                left = start + self.timeout - time.monotonic()
                if left <= 0:
                    raise MapTimeoutError(
                        f"the map did not finish within its timeout of {self.timeout:g} s; "
                        "its shares were cancelled on the cluster"
                    )
                wait = min(wait, left)
            try:
                item: tuple[Any, Any] = waiting.queue.get(timeout=wait)
                return item
            except queue.Empty:
                pass
            if self.client.status == "running":
                lost_since = None
                continue
            now = time.monotonic()
            lost_since = lost_since or now
            if self.client.status in ("closed", "closing") or now - lost_since > CONNECT_TIMEOUT:
                raise ConnectionFailedError(
                    f"lost the Dask scheduler during the map (client {self.client.status}); "
                    "the map's results are incomplete"
                )

    def _resubmit(self, k: int, waiting: Any, index: dict[Any, int]) -> bool:
        """Run share ``k`` again after the cluster cancelled it on its own.

        We cancel a map's shares only after it has failed, so a cancelled share here
        is the cluster's doing: when workers die together, a share whose result was lost
        with its worker can come back cancelled instead of recomputed. A share that
        failed meanwhile is the better report, and a client that lost its scheduler
        is reported as such; otherwise the share runs again, a few times at most.
        """
        if self.arguments is None or self.client.status != "running":
            return False
        if any(f.status == "error" for f in self.futures):
            return False
        again = self.resubmitted.get(k, 0) + 1
        if again > _RESUBMITS:
            return False
        self.resubmitted[k] = again
        argument, slices = self.arguments
        key = f"pashmap-{_label(self.kernel)}-{self.token}-{k}-again{again}"
        future = self.client.submit(
            run_task, argument, k, self.shares[k], slices[k], key=key, pure=False
        )
        self.futures[k] = future
        index[future.key] = k
        waiting.add(future)
        return True

    def _raise_failure(self, k: int, future: Any, result: Any) -> None:
        from distributed import KilledWorker

        failed = next((f for f in self.futures if f.status == "error"), None)
        waited = time.monotonic() + 5.0
        while future.status == "cancelled" and failed is None and time.monotonic() < waited:
            # The verdict on the share that killed the workers may come just after.
            time.sleep(0.05)
            failed = next((f for f in self.futures if f.status == "error"), None)
        if future.status == "cancelled" and failed is not None:
            # Another share's failure is why this one went: report that one.
            try:
                exception = failed.exception(timeout=5)
            except Exception:  # its result is gone too: still the better report
                exception = None
            if exception is not None:
                k, future = self.futures.index(failed), failed
                result = (type(exception), exception, None)
        if future.status == "error":
            _, exc, _ = result
            if isinstance(exc, KilledWorker):
                raise WorkerDiedError(
                    f"share {k} of the map ({_indices(self.shares, k)}) kept killing the Dask "
                    f"workers that ran it, so Dask gave up on it (after "
                    f"distributed.scheduler.allowed-failures deaths): the kernel may crash "
                    f"its process (memory, a segfault) on one of these elements",
                    worker_id=k,
                ) from exc
            raise PashmapError(f"share {k} of the map failed on the cluster: {exc!r}") from exc
        if self.client.status != "running":
            raise ConnectionFailedError(
                f"lost the Dask scheduler during the map (client {self.client.status})"
            )
        raise PashmapError(
            f"share {k} of the map was cancelled on the cluster (by another client, or a "
            "restart of the cluster)"
        )

    def _cancel(self) -> None:
        """Cancel what is left of the map; tell running shares to stop."""
        pending = [f for f in self.futures if not f.done()]
        if not pending:
            return
        try:
            self.client.cancel(pending)
            # Shares already running stop at their next element. From a thread: a
            # worker that died meanwhile must not hold the caller up.
            threading.Thread(
                target=_stop_running_shares,
                args=(self.client, self.event),
                name="pashmap-dask-stop",
                daemon=True,
            ).start()
        except Exception:  # the scheduler may be gone: nothing left to cancel then
            return

    def _release(self) -> None:
        self.futures = []
        if self.scattered is not None:
            self.scattered.release()
            self.scattered = None


def _stop_running_shares(client: Any, token: str) -> None:
    """Run :func:`stop_map` on every worker; quietly give up when the cluster is gone (or
    the context was closed meanwhile): there is nothing left to stop then."""
    with contextlib.suppress(Exception):
        client.run(stop_map, token, on_error="ignore")


def _label(kernel: Any) -> str:
    name = getattr(kernel, "__name__", None) or type(kernel).__name__
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)[:40] or "kernel"


def _groups(shares: Sequence[Any], num_workers: int) -> list[list[Any]]:
    """Contiguous groups of shares, at most ``num_workers``: one task (worker id) each."""
    if len(shares) <= num_workers:
        return [[share] for share in shares]
    bounds = [len(shares) * w // num_workers for w in range(num_workers + 1)]
    return [list(shares[bounds[w] : bounds[w + 1]]) for w in range(num_workers)]


def _indices(groups: Sequence[list[Any]], k: int) -> str:
    """The indices of task ``k``'s shares, as far as the shares tell."""
    try:
        start = sum(len(share) for group in groups[:k] for share in group)
        length = sum(len(share) for share in groups[k])
    except TypeError:
        return f"share {k} of {len(groups)}"
    if length == 1:
        return f"index {start}"
    return f"indices {start} to {start + length - 1}"
