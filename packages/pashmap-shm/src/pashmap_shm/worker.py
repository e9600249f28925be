"""What a worker process does: take shares from the queue, run the kernel, report.

:func:`serve` is the one worker loop, run by both kinds of worker process:

* a worker forked for one map (:mod:`pashmap_shm.forked`) is a copy of the caller at the
  moment of the map, so the kernel, its closure and the target need no pickling. It runs
  :func:`serve` once and leaves with ``os._exit``, never by returning or raising into the
  caller's code that it inherited, and never runs the caller's ``atexit`` handlers or
  finalizers (which could remove files or flush buffers that belong to the caller).
  Every page it writes is first copied from the caller, so the loop touches as little as
  it can;
* a pooled worker (:mod:`pashmap_shm.pool`) runs :func:`serve_maps`: it receives map
  after map on its socket (:mod:`pashmap_shm.map_messages`) and runs :func:`serve` for each.

Either way the worker is one worker for the whole of its part of a map, in every thread
it has (:func:`enter_process_worker`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import select
import signal
import socket
import sys
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

from pashmap import MapTarget
from pashmap.contexts import (
    WorkerScope,
    mark_process_as_worker,
    reset_worker_state,
    set_process_scope,
    share_runner,
    tear_down,
)
from pashmap_shm.blas_threads import blas_controller, limit_blas_threads
from pashmap_shm.map_messages import decode_map, forget_received, receive_map
from pashmap_shm.populate import row_mapper
from pashmap_shm.return_values import pickle_values, send_values
from pashmap_shm.wire import DONE, send, send_error

__all__ = ["enter_process_worker", "leave_process_worker", "serve", "serve_maps"]

_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)  # a plain int: ctypes converts it without calling into enum
try:
    # PyDLL: the call keeps the GIL (prctl returns at once), which is cheaper.
    _prctl: Any = ctypes.PyDLL(None).prctl
    _prctl.restype = None  # (no result object to make)
except (OSError, AttributeError):  # not Linux
    _prctl = None


# In a worker process: its worker id while it runs its shares, and its scope once
# something asked for it (see enter_process_worker).
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
    """Make this process worker ``worker_id`` until :func:`leave_process_worker`.

    The worker scope of a process that is a single worker while it runs its part of a
    map, seen from every thread of the process (a scope inherited from the caller's
    thread through ``fork()`` is ignored). Entering records only the worker id; the
    :class:`~pashmap.contexts.WorkerScope` is made when something first asks for it (a
    :class:`~pashmap.PerWorker` value, an accumulator), so a forked worker that needs
    none touches almost nothing of the memory it shares, copy-on-write, with the caller.
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
    counts: NDArray[np.int64] | None,
    returns_none: bool,
    parent_pid: int = 0,
    channel: socket.socket | None = None,
) -> int:
    """Run shares until the queue is empty; report each share's values, then ``DONE``.

    The whole run is one process worker scope (:func:`enter_process_worker`), so
    per-worker values are torn down here, before the caller hears that this worker is
    done. A failure is reported as ``ERROR`` with the share it happened in.

    A timeout needs nothing here: the caller kills the workers when it passes, which
    also stops a kernel call that hangs, and saves a clock reading per element.

    Args:
        worker_id: this worker's id, passed to the kernel.
        kernel: the kernel, called as ``kernel(worker_id, *entry)``.
        target: the map target.
        shares: the shares of the target, in index order.
        queue_fd: the read end of the pipe holding the share indices still to run, as
            4-byte native integers; end of file when all have been taken.
        result_fd: where this worker reports (:mod:`pashmap_shm.wire`).
        counts: the progress counters in shared memory, or ``None``.
        returns_none: the kernel is known to return only ``None``
            (:func:`pashmap_shm.kernel_code.returns_only_none`): its values are not
            collected.
        parent_pid: for a worker forked for this map, the caller's process id: the worker
            dies with the caller, and leaves the process with ``os._exit`` at the end.
        channel: the map's value channel (:mod:`pashmap_shm.value_files`), where large
            return values go as memory files; ``None``: through ``result_fd``.

    Returns:
        For a pooled worker (no ``parent_pid``): 0 when the map ran, 1 when it failed and
        was reported, 2 when even the report failed. A forked worker never returns.
    """
    code = 0
    share = -1
    try:
        if parent_pid:
            # SIGINT stays blocked, as the caller had it while forking: the caller decides
            # what Ctrl-C does (it kills the workers), and a worker must not also raise
            # KeyboardInterrupt from the middle of the kernel (cheaper than installing
            # SIG_IGN in a fresh child). The kernel kills this worker if the caller dies,
            # so no worker is orphaned:
            if _prctl is not None:
                _prctl(_PR_SET_PDEATHSIG, _SIGKILL)
            if os.getppid() != parent_pid:  # the caller died before prctl took effect
                os._exit(3)
        run: Callable[[Any], list[Any]] | None = None  # made when first needed
        # A kernel known to return only None over a columnar target (the usual case):
        # its values are not collected at all, and the path touches little.
        columns: Callable[[Any], tuple[Any, ...]] | None = (
            getattr(target, "iterate_columns", None) if returns_none and counts is None else None
        )
        workers = repeat(worker_id)
        consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend
        none_counts = array("q")
        read = os.read
        from_bytes = int.from_bytes
        byteorder = sys.byteorder
        # (Rows of outputs already in memory are mapped before the kernel writes them.)
        map_rows = row_mapper(kernel, target, forked=bool(parent_pid))
        enter_process_worker(worker_id)
        try:
            while record := read(queue_fd, 4):
                share = from_bytes(record, byteorder)
                if map_rows is not None:
                    map_rows(shares[share])
                calls = None
                if columns is not None:
                    entries = columns(shares[share])
                    # A target breaking the columns contract (no tuple, a column that
                    # is not iterable) takes the checked way below, which names it.
                    with contextlib.suppress(TypeError):
                        if type(entries) is tuple and entries:
                            calls = map(kernel, workers, *entries)
                if calls is not None:
                    indices = entries[0]
                    if type(indices) is range:  # so its length is the number of calls
                        consume(calls)
                        none_counts.append(share)
                        none_counts.append(len(indices))
                        continue
                    values = list(calls)
                else:
                    if run is None:
                        run = share_runner(kernel, worker_id, target, counts=counts)
                    values = run(shares[share])
                pickled = pickle_values(values, shares[share])
                if pickled is None:
                    none_counts.append(share)
                    none_counts.append(len(values))
                else:
                    send_values(result_fd, share, pickled, channel)
        except BaseException:
            leave_process_worker(failed=True)
            raise
        share = -1  # a teardown that raises belongs to no share
        leave_process_worker(failed=False)
        send(result_fd, DONE, -1, none_counts.tobytes())
    except BaseException as exc:
        code = 1
        try:
            send_error(result_fd, share, exc, dumps=None if parent_pid else _by_value)
        except BaseException:
            code = 2
    finally:
        if parent_pid:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    return code


def serve_maps(
    worker_id: int, sock: socket.socket, caller_pid: int, channel: socket.socket | None = None
) -> NoReturn:
    """The life of a pooled worker: serve maps until the caller closes the socket.

    Each map arrives as :func:`pashmap_shm.map_messages.send_map` sent it: the share queue and
    the memfd blocks as descriptors, the rest pickled, after a note of the blocks of
    shared memory the caller has unmapped since the last map, whose inherited mappings
    this worker drops (:func:`pashmap_shm.map_messages.receive_map`). Before each map
    the worker also runs the resets packages registered
    (:func:`pashmap.contexts.reset_worker_state`). End of file on the socket (the
    caller closed the pool, or died) ends the worker.

    Args:
        worker_id: this worker's id, passed to the kernel.
        sock: this worker's end of its socket pair with the caller.
        caller_pid: the process id of the caller; the worker exits when it ends.
        channel: the pool's value channel (:mod:`pashmap_shm.value_files`), where large
            return values go as memory files.
    """
    # Ctrl-C is the caller's business: it kills its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with(caller_pid)
    mark_process_as_worker()
    code = 0
    try:
        while (received := receive_map(sock)) is not None:
            message, fds = received
            reset_worker_state()  # (e.g. pashmap-xfel: EXtra-data's open files)
            _serve_one(worker_id, sock.fileno(), message, fds, channel)
    except BaseException:
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _serve_one(
    worker_id: int,
    result_fd: int,
    message: bytes,
    fds: list[int],
    channel: socket.socket | None = None,
) -> None:
    """Decode one map, set its BLAS limit and :func:`serve` it; close what it brought."""
    queue_fd, block_fds = fds[0], fds[1:]
    try:
        try:
            kernel, target, shares, counts, blas_threads = decode_map(message, block_fds)
            if blas_threads is not None:
                limit_blas_threads(blas_controller(), blas_threads)
        except BaseException as exc:  # the caller stops the pool
            send_error(result_fd, -1, exc, dumps=_by_value)
            return
        serve(
            worker_id,
            kernel,
            target,
            shares,
            queue_fd,
            result_fd,
            counts,
            returns_none=False,
            channel=channel,
        )
    finally:
        os.close(queue_fd)
        for fd in block_fds:
            os.close(fd)
        forget_received()


def _by_value(exc: BaseException) -> bytes:
    """How a pooled worker pickles an exception: by name, or its class by value.

    A class of the caller's ``__main__`` (or one defined in a function) reached the
    worker by value, with the kernel that uses it (cloudpickle), so the worker may be
    unable to name it for the caller: whether its own ``__main__`` has a class of that
    name depends on when the worker started. Such a class is sent back by value, and the
    caller gets the very class it sent (cloudpickle tracks it), whatever the worker's
    history. An exception that fails to pickle for another reason (an attribute that
    cannot be pickled) fails as it would by name.
    """
    try:
        return pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        try:
            pickle.dumps(type(exc), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            import cloudpickle

            pickled: bytes = cloudpickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
            return pickled
        raise


def _exit_with(caller_pid: int) -> None:
    """End this worker when the caller ends, even in the middle of a kernel call.

    A spawned worker is the caller's child (``PR_SET_PDEATHSIG`` would do), but a
    fork-server worker is the fork server's, which outlives the caller as long as its
    workers hold the descriptors it hands them; so a daemon thread watches the caller.
    """
    if _prctl is not None and os.getppid() == caller_pid:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        pidfd = os.pidfd_open(caller_pid)
    except (AttributeError, OSError):  # not Linux >= 5.3, or the caller is gone
        pidfd = -1

    def watch() -> None:
        if pidfd >= 0:
            select.select([pidfd], [], [])
        else:
            while True:
                time.sleep(0.5)
                try:
                    os.kill(caller_pid, 0)
                except ProcessLookupError:
                    break
        os._exit(3)

    threading.Thread(target=watch, name="pashmap-watch-caller", daemon=True).start()
