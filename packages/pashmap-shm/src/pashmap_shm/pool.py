"""WorkerPool: worker processes started once (fork, forkserver or spawn) that serve many maps.

Used by :class:`~pashmap_shm.ProcessContext` for ``start_method='forkserver'`` and
``'spawn'``, and for ``persistent=True`` (warm workers). The workers are started with
:mod:`multiprocessing` and each gets one end of a Unix socket pair; every map is sent to
every worker over its socket (:mod:`pashmap_shm.pool_worker`), with the share queue and
the shared arrays as file descriptors, and the replies are read exactly like those of
forked workers. A worker that dies closes its socket: the caller sees the end of file at
once and raises :class:`pashmap.WorkerDiedError`. After any failure (kernel error,
timeout, dead worker, Ctrl-C) the whole pool is killed and a new one started by the next
map, so a map never inherits a worker left in an unknown state.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import socket
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pashmap import MapTarget, WorkerDiedError
from pashmap_shm.forked_map import FORK_WARNING, ForkedMap, WorkerProcess, died_error
from pashmap_shm.pool_worker import send_map, serve_maps
from pashmap_shm.shared_handles import dumps_with_handles

__all__ = ["PoolMap", "WorkerPool"]

_JOIN_TIMEOUT = 2.0
_WORKER_MODULE = "pashmap_shm.pool_worker"


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


class PoolMap(ForkedMap):
    """One map over the workers of a :class:`WorkerPool`."""

    def __init__(
        self,
        pool: WorkerPool,
        kernel: Callable[..., Any],
        target: MapTarget[Any],
        shares: Sequence[Any],
        counts: NDArray[np.int64] | None,
        deadline: float | None,
        blas_threads: int | None,
    ) -> None:
        super().__init__(kernel, target, shares, pool.num_workers, counts, deadline, None)
        self.pool = pool
        self.blas_threads = blas_threads

    def _start(self, count: int) -> list[WorkerProcess]:
        """Send the map to every warm worker (they are all running: ``count`` is moot)."""
        try:
            payload, serials, fds = dumps_with_handles(
                (self.kernel, self.target, self.shares, self.counts, self.blas_threads)
            )
        except Exception as exc:
            raise TypeError(
                f"under start_method={self.pool.start_method!r} (or persistent=True) the "
                f"kernel and the target are pickled to reach the workers, and this one "
                f"cannot be ({type(exc).__name__}: {exc}). Arrays allocated by the context "
                "travel as shared memory; other objects must be picklable (cloudpickle). "
                "Use start_method='fork' for anything else"
            ) from exc
        message = pickle.dumps((serials, payload), protocol=pickle.HIGHEST_PROTOCOL)
        for worker_id, (process, sock) in enumerate(
            zip(self.pool.processes, self.pool.sockets, strict=True)
        ):
            self.workers.append(WorkerProcess(worker_id, int(process.pid), sock.fileno()))
            try:
                send_map(sock, message, [self.queue_fd, *fds])
            except OSError:
                raise self._died(self.workers[-1]) from None
        return self.workers

    def _check_alive(self) -> None:
        for worker in self.workers:
            if not worker.done and not self.pool.processes[worker.worker_id].is_alive():
                raise self._died(worker)

    def _died(self, worker: WorkerProcess) -> WorkerDiedError:
        code = self.pool.exitcode(worker.worker_id)
        worker.reaped = True
        if code is None:
            status = 0
        elif code < 0:
            status = -code  # as os.waitpid reports a death by signal
        else:
            status = (code & 0xFF) << 8
        return died_error(worker, status)

    def _stop_all(self) -> None:
        if not all(worker.done for worker in self.workers):
            self.pool.kill()
        self.workers.clear()


def _preload_in_forkserver(context: Any) -> None:
    """Have the fork server import the worker code (and numpy) once, not every worker.

    Takes effect when the fork server starts; adds to the modules the program asked
    the fork server to preload, if any.
    """
    import multiprocessing.forkserver as forkserver

    preload = list(getattr(forkserver._forkserver, "_preload_modules", []))
    if _WORKER_MODULE not in preload:
        context.set_forkserver_preload([*preload, _WORKER_MODULE])
