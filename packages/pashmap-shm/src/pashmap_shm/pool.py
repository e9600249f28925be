"""Warm workers: processes started once (fork, forkserver or spawn) that serve many maps.

:class:`WorkerPool` is what :class:`~pashmap_shm.ProcessContext` keeps for
``start_method='forkserver'`` and ``'spawn'``, for ``persistent=True`` and inside a
``with`` block. The workers are started with :mod:`multiprocessing` and each gets one end
of a Unix socket pair, on which it serves maps (:func:`pashmap_shm.worker.serve_maps`).
:class:`PooledWorkers` is the worker set of one map on them: the map, pickled once, is
sent to every worker with the share queue and the shared arrays as file descriptors
(:mod:`pashmap_shm.map_messages`), and the replies are collected exactly like those of forked
workers. A worker that dies closes its socket: the caller sees the end of file at
once and raises :class:`pashmap.WorkerDiedError`. After any failure (kernel error,
timeout, dead worker, Ctrl-C) the whole pool is killed and a new one started by the next
map, so a map never inherits a worker left in an unknown state.

One map at a time runs on a pool (the context holds a lock around it), since all its
workers answer on the same sockets. The workers are started from a thread that lives
as long as any pool does (:class:`_Starter`): a worker's ``PR_SET_PDEATHSIG`` fires
when the *thread* that started it ends, so workers started from a short-lived thread
of the caller (a ``ThreadPoolExecutor``, a web handler) would die with that thread.
Before each map the workers are told which blocks of shared memory the caller has
unmapped since the last one, so that workers forked from the caller drop their
inherited mappings of them too (:func:`pashmap_shm.blocks.drop_inherited`).
Pickling a map (:func:`pashmap_shm.map_messages.encode_map`) also says whether it refers to
memory that would reach the workers as a copy.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import socket
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pashmap_shm.blocks import UnmapRecord, record_unmaps
from pashmap_shm.collector import FORK_WARNING, STATUS_UNKNOWN, Awake, WorkerProcess, WorkerSet
from pashmap_shm.map_messages import EncodedMap, send_map
from pashmap_shm.value_files import ValueChannel, open_channel
from pashmap_shm.worker import serve_maps

__all__ = ["PooledWorkers", "WorkerPool"]

T = TypeVar("T")

_JOIN_TIMEOUT = 2.0
_WAIT_SLICE = 0.1  # seconds; waits go in slices so that a Ctrl-C is seen promptly
# Imported by the fork server once, not by every worker it starts. (Kernels arrive
# pickled by cloudpickle, whose functions unpickle through it.)
_PRELOAD = ("pashmap_shm.worker", "cloudpickle")


class WorkerPool:
    """``num_workers`` processes waiting for maps.

    Args:
        num_workers: how many workers to start.
        start_method: ``'fork'``, ``'forkserver'`` or ``'spawn'``.
    """

    def __init__(self, num_workers: int, start_method: str) -> None:
        self.num_workers = num_workers
        self.start_method = start_method
        self.processes: list[Any] = []
        self.sockets: list[socket.socket] = []
        # Workers forked from the caller inherit its shared memory: they are told what
        # the caller unmaps. (Fork-server and spawned workers inherit nothing.)
        self.unmaps: UnmapRecord | None = None
        self.uses_starter = False  # counted by the starter thread (see _Starter)
        # Where the workers send large return values as memory files (one for the pool).
        self.channel: ValueChannel | None = None

    def start(self) -> None:
        """Start the workers (from the long-lived starter thread, see the module).

        Raises:
            OSError: a process or socket could not be created (the pool is then empty).
        """
        if self.start_method == "fork":
            self.unmaps = record_unmaps()
        self.uses_starter = True
        _in_starter_thread(self._start)

    def _start(self) -> None:
        context: Any = multiprocessing.get_context(self.start_method)
        workers_end: socket.socket | None = None
        if self.start_method == "forkserver":
            _preload_in_forkserver(context)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", FORK_WARNING, DeprecationWarning)
                caller_end, workers_end = open_channel()
                self.channel = ValueChannel(caller_end)
                for worker_id in range(self.num_workers):
                    mine, theirs = socket.socketpair()
                    self.sockets.append(mine)
                    try:
                        process = context.Process(
                            target=serve_maps,
                            args=(worker_id, theirs, os.getpid(), workers_end),
                            name=f"pashmap-worker-{worker_id}",
                            daemon=True,
                        )
                        process.start()
                    finally:
                        theirs.close()
                    self.processes.append(process)
        except BaseException:
            self.kill()
            raise
        finally:
            if workers_end is not None:
                workers_end.close()

    @property
    def running(self) -> bool:
        """Whether the pool has workers (started and not killed)."""
        return bool(self.processes)

    def pids(self) -> list[int]:
        """The process ids of the workers."""
        return [int(process.pid) for process in self.processes]

    def kill(self) -> None:
        """Kill every worker, reap it and close its socket; never interrupted by Ctrl-C."""
        # The mask to go back to is read before SIGINT is blocked: an interrupt raised
        # between the two calls then leaves nothing blocked.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for process in self.processes:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    process.kill()
            self._reap()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self.unmaps = None
        if self.uses_starter:
            self.uses_starter = False
            _starter_released()

    def released(self) -> list[int]:
        """What every worker must do before the next map: the blocks to drop."""
        return self.unmaps.take() if self.unmaps is not None else []

    def tidy(self) -> None:
        """Tell idle workers now which blocks to drop (call with no map running)."""
        released = self.released()
        for sock in self.sockets:
            with contextlib.suppress(OSError):  # a dead worker: the next map says so
                send_map(sock, b"", [], released)

    def close(self) -> None:
        """Let the workers finish (end of file on their sockets), reap them."""
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for process in self.processes:
            process.join(_JOIN_TIMEOUT)
        self.kill()

    def _reap(self) -> None:
        for process in self.processes:
            with contextlib.suppress(OSError, ValueError, AssertionError):
                process.join(_JOIN_TIMEOUT)
                try:
                    process.close()
                except ValueError:
                    # Not reapable here (SIGCHLD ignored: the system reaped it already);
                    # still release the descriptors multiprocessing holds for it.
                    popen = getattr(process, "_popen", None)
                    if popen is not None:
                        popen.close()
        for sock in self.sockets:
            sock.close()
        self.processes.clear()
        self.sockets.clear()
        channel, self.channel = self.channel, None
        if channel is not None:  # (files still in it are closed with it)
            channel.close()

    def exitcode(self, worker_id: int) -> int | None:
        """The exit code of a worker that ended (negative: killed by that signal)."""
        process = self.processes[worker_id]
        process.join(_JOIN_TIMEOUT)
        code: int | None = process.exitcode
        return code


class PooledWorkers(WorkerSet):
    """The worker set of one map on warm workers: the map, pickled once, goes to all.

    Args:
        encoded: the map, pickled by :func:`pashmap_shm.map_messages.encode_map` (complete);
            arrays in memfd blocks travel in it as handles to the same memory.
        num_workers: the pool's number of workers.
    """

    def __init__(self, encoded: EncodedMap, num_workers: int) -> None:
        super().__init__(num_workers)
        self.encoded = encoded
        self.pool: WorkerPool | None = None

    def run_on(self, pool: WorkerPool, shares: Sequence[Any], deadline: float | None) -> list[Any]:
        """Run the map on ``pool``'s workers (:meth:`WorkerSet.map`)."""
        self.pool = pool
        return self.map(shares, deadline)

    def start(self, count: int, queue_fd: int) -> list[WorkerProcess]:
        """Send the map to every warm worker (they are all running: ``count`` is moot)."""
        assert self.pool is not None
        released = self.pool.released()
        for worker_id, (process, sock) in enumerate(
            zip(self.pool.processes, self.pool.sockets, strict=True)
        ):
            worker = WorkerProcess(worker_id, int(process.pid), sock.fileno())
            worker.inbox.channel = self.pool.channel
            self.workers.append(worker)
            try:
                send_map(sock, self.encoded.message, [queue_fd, *self.encoded.fds], released)
            except OSError:
                raise self.died(worker) from None
        return self.workers

    def exit_status(self, worker: WorkerProcess, *, wait: bool) -> int | None:
        """See :meth:`WorkerSet.exit_status`."""
        assert self.pool is not None
        process = self.pool.processes[worker.worker_id]
        if not wait and process.is_alive():
            return None
        code = self.pool.exitcode(worker.worker_id)
        worker.reaped = True
        if code is None:  # (reaped by someone else: SIGCHLD ignored, or a handler's)
            return STATUS_UNKNOWN
        if code < 0:
            return -code  # as os.waitpid reports a death by signal
        return (code & 0xFF) << 8

    def stop(self, awake: Awake | None) -> None:
        """Kill the whole pool unless every worker finished the map."""
        if self.pool is not None and not all(worker.done for worker in self.workers):
            self.pool.kill()
        self.workers.clear()


def _preload_in_forkserver(context: Any) -> None:
    """Have the fork server import the worker code (and numpy) once, not every worker.

    Takes effect when the fork server starts; adds to the modules the program asked
    the fork server to preload, if any.
    """
    import multiprocessing.forkserver as forkserver

    preload = list(getattr(forkserver._forkserver, "_preload_modules", []))
    missing = [module for module in _PRELOAD if module not in preload]
    if missing:
        context.set_forkserver_preload([*preload, *missing])


class _Starter:
    """The thread that starts the workers of every pool, while any pool is running.

    A worker started with ``PR_SET_PDEATHSIG`` is killed when the thread that started
    it ends; started from here, it is killed only when the caller's process ends, or
    when this thread ends, which it does only once every pool it started has been
    killed and reaped (so that no thread of pashmap's outlives the warm workers).
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.pools = 0
        threading.Thread(target=self._serve, name="pashmap-pool-starter", daemon=True).start()

    def _serve(self) -> None:
        while (request := self.requests.get()) is not None:
            start, outcome, done = request
            try:
                outcome[:] = [False, start()]
            except BaseException as exc:
                outcome[:] = [True, exc]
            finally:
                done.set()
            del request, start, outcome, done


# The starter of this process while pools run (a child made by fork() has none, whatever
# it inherited: checked by pid).
_starter: _Starter | None = None
_starter_lock = threading.Lock()


def _in_starter_thread(start: Callable[[], T]) -> T:
    """Run ``start`` in the starter thread (:class:`_Starter`) and wait for it.

    Counts one more pool using the thread, until :func:`_starter_released`. If the wait
    is interrupted (Ctrl-C), it waits on for ``start`` to finish, so that the caller
    can stop what it started, then raises.
    """
    global _starter
    with _starter_lock:
        if _starter is None or _starter.pid != os.getpid():
            _starter = _Starter()
        _starter.pools += 1
        requests = _starter.requests
    done = threading.Event()
    outcome: list[Any] = []
    requests.put((start, outcome, done))
    try:
        while not done.wait(_WAIT_SLICE):  # (in slices: a Ctrl-C just before a wait is seen)
            pass
    except BaseException:
        while not done.wait(_WAIT_SLICE):
            pass
        raise
    if outcome[0]:
        raise outcome[1]
    result: T = outcome[1]
    return result


def _starter_released() -> None:
    """One pool that :func:`_in_starter_thread` started has no workers left."""
    global _starter
    with _starter_lock:
        if _starter is None or _starter.pid != os.getpid():
            return
        _starter.pools -= 1
        if _starter.pools <= 0:
            _starter.requests.put(None)  # the thread ends after what it is doing
            _starter = None
