"""What a forked worker process does: take shares, run the kernel, report, exit.

This code runs only in a child made by ``os.fork()`` in :mod:`pashmap_shm.process`. The
child is a copy of the caller at the moment of the map, so the kernel, its closure and the
target need no pickling. It leaves with ``os._exit``, never by returning or raising into
the caller's code that it inherited, and never runs the caller's ``atexit`` handlers or
finalizers (which could remove files or flush buffers that belong to the caller).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

from pashmap import MapTarget
from pashmap.contexts import WorkerScope, set_process_scope, share_runner, tear_down
from pashmap_shm.protocol import (
    DONE,
    ERROR,
    RESULTS,
    encode_exception,
    encode_none_counts,
    pickle_values,
    send,
)

__all__ = ["enter_process_worker", "leave_process_worker", "serve"]

_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)  # a plain int: ctypes converts it without calling into enum
try:
    # PyDLL: the call keeps the GIL (prctl returns at once), which is cheaper.
    _prctl: Any = ctypes.PyDLL(None).prctl
    _prctl.restype = None  # (no result object to make)
except (OSError, AttributeError):  # not Linux
    _prctl = None


# In a process forked for one map: its worker id while it runs its shares, and its scope
# once something asked for it (see enter_process_worker).
_process_worker: int | None = None
_worker_scope: WorkerScope | None = None


def _process_scope() -> WorkerScope | None:
    global _worker_scope
    if _process_worker is None:
        return None
    if _worker_scope is None:
        _worker_scope = WorkerScope(_process_worker)
    return _worker_scope


set_process_scope(_process_scope)


def enter_process_worker(worker_id: int) -> None:
    """Make this forked process worker ``worker_id`` until :func:`leave_process_worker`.

    The worker scope of a process that is a single worker while it runs its part of a
    map, seen from every thread of the process (a scope inherited from the caller's
    thread through ``fork()`` is ignored). Entering records only the worker id; the
    :class:`~pashmap.contexts.WorkerScope` is made when something first asks for it (a
    :class:`~pashmap.PerWorker` value, an accumulator), so a worker that needs none
    touches almost nothing of the memory it shares, copy-on-write, with the caller.
    (Two functions rather than a context manager: every function a forked worker runs
    costs it page copies.)

    Args:
        worker_id: the worker's id.
    """
    global _process_worker, _worker_scope
    _process_worker = worker_id
    _worker_scope = None


def leave_process_worker(*, failed: bool) -> None:
    """End what :func:`enter_process_worker` began: run the scope's teardowns.

    Args:
        failed: the worker's body raised (its exception wins over a teardown's).
    """
    global _process_worker, _worker_scope
    scope = _worker_scope
    _process_worker = _worker_scope = None
    if scope is not None and scope.teardowns:
        tear_down(scope, failed=failed)


def serve(
    worker_id: int,
    kernel: Callable[..., Any],
    target: MapTarget[Any],
    shares: Sequence[Any],
    queue_fd: int,
    result_fd: int,
    parent_pid: int,
    *,
    counts: NDArray[np.int64] | None = None,
    returns_none: bool = False,
) -> NoReturn:
    """Run shares until the queue is empty, then exit the process; never returns.

    The whole run is one process worker scope (:func:`enter_process_worker`),
    so per-worker values are torn down here, before the caller hears that this worker is
    done.

    A timeout needs nothing here: the caller kills the workers when it passes, which
    also stops a kernel call that hangs, and saves a clock reading per element.

    Args:
        worker_id: this worker's id, passed to the kernel.
        kernel: the kernel, called as ``kernel(worker_id, *entry)``.
        target: the map target.
        shares: the shares of the target, in index order.
        queue_fd: the read end of the pipe holding the share indices still to run, as
            4-byte native integers; end of file when all have been taken.
        result_fd: the write end of this worker's pipe to the caller.
        parent_pid: the caller's process id.
        counts: the progress counters in shared memory, or ``None``.
        returns_none: the kernel is known to return only ``None``
            (:func:`pashmap_shm.kernel_code.returns_only_none`): its values are not collected.
    """
    code = 0
    share = -1
    try:
        # SIGINT stays blocked, as the caller had it while forking: the caller decides
        # what Ctrl-C does (it kills the workers), and a worker must not also raise
        # KeyboardInterrupt from the middle of the kernel. (Cheaper than installing
        # SIG_IGN, which costs a tenth of a millisecond in a fresh child.)
        # The kernel kills this worker if the caller dies, so no worker is orphaned:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, _SIGKILL)
        if os.getppid() != parent_pid:  # the caller died before prctl took effect
            os._exit(3)
        # (No mark_process_as_worker(): in_worker() is true in the worker scope entered
        # below, which covers every kernel call; each call here costs page copies.)
        run: Callable[[Any], list[Any]] | None = None  # made when first needed
        # A kernel known to return only None over a columnar target (the usual case):
        # its values are not collected at all. Every page this process writes is copied
        # from the caller first (about 2 us each), so this path touches little.
        columns: Callable[[Any], tuple[Any, ...]] | None = (
            getattr(target, "iterate_columns", None) if returns_none and counts is None else None
        )
        workers = repeat(worker_id)
        consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend
        none_counts = array("q")
        read = os.read
        from_bytes = int.from_bytes
        byteorder = sys.byteorder
        enter_process_worker(worker_id)
        try:
            while record := read(queue_fd, 4):
                share = from_bytes(record, byteorder)
                if columns is not None:
                    entries = columns(shares[share])
                    indices = entries[0]
                    if type(indices) is range:  # so its length is the number of calls
                        consume(map(kernel, workers, *entries))
                        none_counts.append(share)
                        none_counts.append(len(indices))
                        continue
                    values = list(map(kernel, workers, *entries))
                else:
                    if run is None:
                        run = share_runner(kernel, worker_id, target, counts=counts)
                    values = run(shares[share])
                payload = pickle_values(values)
                if payload is None:
                    none_counts.append(share)
                    none_counts.append(len(values))
                else:
                    send(result_fd, RESULTS, share, payload)
        except BaseException:
            leave_process_worker(failed=True)
            raise
        share = -1  # a teardown that raises belongs to no share
        leave_process_worker(failed=False)
        send(result_fd, DONE, -1, encode_none_counts(none_counts))
    except BaseException as exc:
        code = 1
        try:
            send(result_fd, ERROR, share, encode_exception(exc))
        except BaseException:
            code = 2
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
