"""What a pooled worker process does: wait for a map, run its shares, report, wait again.

Pooled workers (``start_method='forkserver'`` or ``'spawn'``, or ``persistent=True``)
are started once and serve map after map. Each map arrives on the worker's Unix socket
as a header, the file descriptors of the share queue and of the shared arrays it refers
to (``SCM_RIGHTS``), and a pickle of ``(kernel, target, shares, counts, blas_threads)``
in which shared arrays are handles (:mod:`pashmap_shm.shared_handles`). The worker
answers on the same socket with the messages of :mod:`pashmap_shm.protocol`. End of file
on the socket (the caller closed the pool, or died) ends the worker.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
import time
from array import array
from typing import Any, NoReturn

# Kernels arrive pickled by cloudpickle, whose functions unpickle through it: imported
# here so that a fork server that preloads this module has it ready for every worker.
import cloudpickle  # noqa: F401

from pashmap.contexts import mark_process_as_worker, share_runner, worker_scope
from pashmap_shm import protocol
from pashmap_shm.blas_threads import blas_controller, limit_blas_threads
from pashmap_shm.shared_handles import forget_received, loads_with_handles
from pashmap_shm.worker import _PR_SET_PDEATHSIG, _prctl

__all__ = ["MAP_HEADER", "receive_map", "send_map", "serve_maps"]

# payload length, number of file descriptors
MAP_HEADER = struct.Struct("=QI")
_MAX_FDS = 253  # SCM_MAX_FD


def send_map(sock: socket.socket, payload: bytes, fds: list[int]) -> None:
    """Send one map to a worker: the header with the descriptors, then the payload.

    Raises:
        OSError: the worker is gone.
        ValueError: more descriptors than one message can carry.
    """
    if len(fds) > _MAX_FDS:
        raise ValueError(
            f"a map refers to {len(fds) - 1} shared arrays, more than one message can hand "
            f"to a worker ({_MAX_FDS - 1}); gather them into fewer, larger arrays"
        )
    socket.send_fds(sock, [MAP_HEADER.pack(len(payload), len(fds))], fds)
    sock.sendall(payload)


def receive_map(sock: socket.socket) -> tuple[bytes, list[int]] | None:
    """Receive what :func:`send_map` sent; ``None`` at end of file."""
    data, fds, _, _ = socket.recv_fds(sock, MAP_HEADER.size, _MAX_FDS)
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    header = bytearray(data)
    while len(header) < MAP_HEADER.size:
        more = sock.recv(MAP_HEADER.size - len(header))
        if not more:
            return None
        header += more
    length, _ = MAP_HEADER.unpack(header)
    payload = bytearray()
    while len(payload) < length:
        chunk = sock.recv(min(length - len(payload), 1 << 22))
        if not chunk:
            return None
        payload += chunk
    return bytes(payload), fds


def serve_maps(worker_id: int, sock: socket.socket, caller_pid: int) -> NoReturn:
    """Serve maps until the caller closes the socket, then exit; never returns.

    Args:
        worker_id: this worker's id, passed to the kernel.
        sock: this worker's end of its socket pair with the caller.
        caller_pid: the process id of the caller; the worker exits when it ends.
    """
    # Ctrl-C is the caller's business: it kills its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with(caller_pid)
    mark_process_as_worker()
    code = 0
    try:
        while (received := receive_map(sock)) is not None:
            _serve_one(worker_id, sock.fileno(), *received)
    except BaseException:
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


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


def _serve_one(worker_id: int, result_fd: int, message: bytes, fds: list[int]) -> None:
    """Run one map's shares; report its end (or the failure) to the caller."""
    queue_fd, block_fds = fds[0], fds[1:]
    share = -1
    try:
        serials, payload = pickle.loads(message)
        kernel, target, shares, counts, blas_threads = loads_with_handles(
            payload, serials, block_fds
        )
        if blas_threads is not None:
            limit_blas_threads(blas_controller(), blas_threads)
        none_counts = array("q")
        byteorder = sys.byteorder
        run = share_runner(kernel, worker_id, target, counts=counts)
        with worker_scope(worker_id):
            while record := os.read(queue_fd, 4):
                share = int.from_bytes(record, byteorder)
                values: list[Any] = run(shares[share])
                payload = protocol.pickle_values(values)
                if payload is None:
                    none_counts.append(share)
                    none_counts.append(len(values))
                else:
                    protocol.send(result_fd, protocol.RESULTS, share, payload)
            share = -1
        protocol.send(result_fd, protocol.DONE, -1, protocol.encode_none_counts(none_counts))
    except BaseException as exc:  # the caller stops the pool
        protocol.send(result_fd, protocol.ERROR, share, protocol.encode_exception(exc))
    finally:
        os.close(queue_fd)
        for fd in block_fds:
            os.close(fd)
        forget_received()
