"""One share of a map, run as a Dask task on a worker.

A task is one worker id of the map: it unpickles the kernel with its own tracked copies
of the context arrays, runs its share inside ``worker_scope(worker_id)`` (so
``PerWorker`` values are made and torn down here, and a ``pm.map`` inside the kernel runs
serially), and returns a :class:`ShareResult`: the return values (nothing when they are
all ``None``), the runs of memory it wrote, or the kernel's exception, encoded.

A share stops at its next element when its map passes its deadline, or when the caller
cancels the map (an exception elsewhere, a timeout, Ctrl-C) and runs :func:`stop_map` on
every worker: cancelling a Dask task does not stop it once it runs.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
from numpy.typing import NDArray

from pashmap.contexts import StopSignal, encode_exception, run_share, worker_scope
from pashmap_dask.wire import MapPayload
from pashmap_dask.writes import Run, Writes, written_runs

__all__ = ["MapCancelled", "ShareResult", "run_task"]


class MapCancelled(Exception):  # noqa: N818 - a signal, not an error for the user
    """The map this share belongs to was cancelled by the caller."""


@dataclass
class ShareResult:
    """What a share sends back to the caller.

    Attributes:
        count: the number of elements the share visited.
        values: the kernel's return values, or None when all were None.
        runs: what the share wrote, by array key.
        error: the kernel's exception, encoded, or None.
    """

    count: int = 0
    values: list[Any] | None = None
    runs: dict[int, list[Run]] = field(default_factory=dict)
    error: bytes | None = None

    @property
    def nbytes(self) -> int:
        """The bytes of the written values this result carries."""
        return sum(
            run.values.nbytes + (0 if run.mask is None else run.mask.nbytes)
            for runs in self.runs.values()
            for run in runs
        )


def _register_sizeof() -> None:
    """Tell Dask's memory accounting what a result holds (it would see a small object)."""
    from dask.sizeof import sizeof

    def size(result: ShareResult) -> int:
        return result.nbytes + 64 * len(result.values or ()) + 100

    sizeof.register(ShareResult)(size)


_register_sizeof()


# The stop signals of the maps whose shares run in this worker process, by map token,
# with the number of shares using each; and the tokens of maps stopped here (for shares
# that start after the stop).
_signals: dict[str, tuple[StopSignal, int]] = {}
_stopped: collections.deque[str] = collections.deque(maxlen=1024)
_lock = threading.Lock()


def stop_map(token: str) -> None:
    """Stop the shares of map ``token`` running in this process, at their next element.

    Run on every worker by the caller (``client.run``) when a map is cancelled: a
    cancelled Dask task does not stop by itself once it runs.
    """
    with _lock:
        _stopped.append(token)
        entry = _signals.get(token)
    if entry is not None:
        entry[0].stop(MapCancelled(token))


@contextlib.contextmanager
def _stop_signal(token: str) -> Iterator[StopSignal]:
    """The stop signal of map ``token`` in this process, while a share of it runs."""
    with _lock:
        signal, users = _signals.get(token, (None, 0))
        if signal is None:
            signal = StopSignal()
            if token in _stopped:
                signal.stop(MapCancelled(token))
        _signals[token] = (signal, users + 1)
    try:
        yield signal
    finally:
        with _lock:
            signal, users = _signals[token]
            if users > 1:
                _signals[token] = (signal, users - 1)
            else:
                del _signals[token]


def run_task(
    payload: MapPayload,
    worker_id: int,
    shares: list[Any],
    own_slices: dict[int, NDArray[Any]],
) -> ShareResult:
    """Run one share of a map on this worker (the Dask task of worker ``worker_id``).

    Args:
        payload: the map's kernel, target and inputs (the same object for every share
            this worker process runs).
        worker_id: the share's worker id.
        shares: the shares of ``target.split(n)`` this worker id runs, in order
            (usually one).
        own_slices: this share's slice of the filled ``per_worker`` arrays, by key.

    Returns:
        The share's result; a kernel exception is returned encoded, not raised, so that
        Dask does not count it as a failure of the worker, with what the share wrote
        before it.
    """
    result = ShareResult()
    records: dict[int, Writes] = {}
    try:
        target = payload.load_target()
        kernel, records = payload.load_kernel(worker_id, own_slices)
        deadline = payload.deadline
        if deadline is not None:  # the caller's clock: time.time(), not monotonic
            deadline = time.monotonic() + deadline - time.time()
        values: list[Any] = []
        with _stop_signal(payload.event) as signal, worker_scope(worker_id):
            for share in shares:
                values.extend(
                    run_share(kernel, worker_id, target, share, deadline=deadline, stop=signal)
                )
        result.count = len(values)
        if any(value is not None for value in values):
            result.values = values
    except MapCancelled:
        return ShareResult()  # the caller has stopped waiting for this share
    except Exception as exc:
        result.error = encode_exception(exc, dumps=cloudpickle.dumps)
    # Also after an exception: what the share wrote before it (and its teardowns) reaches
    # the caller, as under every other context.
    for key, writes in records.items():
        runs = written_runs(writes, worker_id)
        if runs:
            result.runs[key] = runs
    return result
