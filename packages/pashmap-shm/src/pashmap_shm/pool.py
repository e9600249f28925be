"""Warm workers: processes started once (fork, forkserver or spawn) that serve many maps.

:class:`WorkerPool` is what :class:`~pashmap_shm.ProcessContext` keeps for
``start_method='forkserver'`` and ``'spawn'``, for ``persistent=True`` and inside a
``with`` block. The workers are started with :mod:`multiprocessing` and each gets one end
of a Unix socket pair, on which it serves maps (:func:`pashmap_shm.worker.serve_maps`).
:class:`PooledWorkers` is the worker set of one map on them: the map, pickled once, is
sent to every worker with the share queue and the shared arrays as file descriptors
(:mod:`pashmap_shm.wire`), and the replies are collected exactly like those of forked
workers. A worker that dies closes its socket: the caller sees the end of file at
once and raises :class:`pashmap.WorkerDiedError`. After any failure (kernel error,
timeout, dead worker, Ctrl-C) the whole pool is killed and a new one started by the next
map, so a map never inherits a worker left in an unknown state.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pashmap import MapTarget
from pashmap_shm.collector import FORK_WARNING, Awake, WorkerProcess, WorkerSet, died_error
from pashmap_shm.wire import encode_map, send_map
from pashmap_shm.worker import serve_maps

__all__ = ["PooledWorkers", "WorkerPool"]

_JOIN_TIMEOUT = 2.0
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

    def start(self) -> None:
        """Start the workers.

        Raises:
            OSError: a process or socket could not be created (the pool is then empty).
        """
        context: Any = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            _preload_in_forkserver(context)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", FORK_WARNING, DeprecationWarning)
                for worker_id in range(self.num_workers):
                    mine, theirs = socket.socketpair()
                    self.sockets.append(mine)
                    try:
                        process = context.Process(
                            target=serve_maps,
                            args=(worker_id, theirs, os.getpid()),
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

    @property
    def running(self) -> bool:
        """Whether the pool has workers (started and not killed)."""
        return bool(self.processes)

    def pids(self) -> list[int]:
        """The process ids of the workers."""
        return [int(process.pid) for process in self.processes]

    def kill(self) -> None:
        """Kill every worker, reap it and close its socket; never interrupted by Ctrl-C."""
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for process in self.processes:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    process.kill()
            self._reap()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

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

    def exitcode(self, worker_id: int) -> int | None:
        """The exit code of a worker that ended (negative: killed by that signal)."""
        process = self.processes[worker_id]
        process.join(_JOIN_TIMEOUT)
        code: int | None = process.exitcode
        return code


class PooledWorkers(WorkerSet):
    """The worker set of one map on warm workers: the map, pickled once, goes to all.

    Pickling happens here, with cloudpickle (:func:`pashmap_shm.wire.encode_map`);
    arrays in memfd blocks travel as handles to the same memory.

    Args:
        kernel: the kernel.
        target: the map target.
        shares: its shares.
        counts: the progress counters in shared memory, or ``None``.
        blas_threads: the BLAS thread limit for the workers, or ``None``.
        num_workers: the pool's number of workers.

    Attributes:
        copies: how many writable arrays that only forked workers share the map holds
            (they would arrive as copies).

    Raises:
        Exception: what pickling the kernel or the target raised.
    """

    def __init__(
        self,
        kernel: Callable[..., Any],
        target: MapTarget[Any],
        shares: Sequence[Any],
        counts: NDArray[np.int64] | None,
        blas_threads: int | None,
        num_workers: int,
    ) -> None:
        super().__init__(num_workers)
        self.encoded = encode_map(kernel, target, shares, counts, blas_threads)
        self.copies = self.encoded.copies
        self.pool: WorkerPool | None = None

    def run_on(self, pool: WorkerPool, shares: Sequence[Any], deadline: float | None) -> list[Any]:
        """Run the map on ``pool``'s workers (:meth:`WorkerSet.map`)."""
        self.pool = pool
        return self.map(shares, deadline)

    def start(self, count: int, queue_fd: int) -> list[WorkerProcess]:
        """Send the map to every warm worker (they are all running: ``count`` is moot)."""
        assert self.pool is not None
        for worker_id, (process, sock) in enumerate(
            zip(self.pool.processes, self.pool.sockets, strict=True)
        ):
            worker = WorkerProcess(worker_id, int(process.pid), sock.fileno())
            self.workers.append(worker)
            try:
                send_map(sock, self.encoded.message, [queue_fd, *self.encoded.fds])
            except OSError:
                raise died_error(worker, self.exit_status(worker, wait=True) or 0) from None
        return self.workers

    def exit_status(self, worker: WorkerProcess, *, wait: bool) -> int | None:
        """See :meth:`WorkerSet.exit_status`."""
        assert self.pool is not None
        process = self.pool.processes[worker.worker_id]
        if not wait and process.is_alive():
            return None
        code = self.pool.exitcode(worker.worker_id)
        worker.reaped = True
        if code is None:
            return 0
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
