"""One map seen from the caller: hand out the shares, collect what the workers report.

A map runs on a :class:`WorkerSet` of one of two kinds: workers forked for this map
(:class:`pashmap_shm.forked.ForkedWorkers`) or warm workers kept between maps
(:class:`pashmap_shm.pool.PooledWorkers`). Either way the caller writes the share
numbers into a pipe that all workers read from (dynamic load balancing), starts the
workers, and :meth:`WorkerSet.map` watches every worker's own pipe or socket at once: a
worker's end of file without a final message means that worker died, which is
reported at once as :class:`pashmap.WorkerDiedError`; nothing waits on a worker that
cannot answer. Whatever happens, the set stops its workers before the map returns.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import time
from array import array
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from pashmap import MapTimeoutError, WorkerDiedError
from pashmap.contexts import available_cpus
from pashmap_shm.share_queue import ShareQueue, queued_bytes
from pashmap_shm.wire import DONE, RESULTS, Inbox
from pashmap_shm.worker_exits import STATUS_UNKNOWN, died_error

__all__ = ["FORK_WARNING", "STATUS_UNKNOWN", "Awake", "WorkerProcess", "WorkerSet"]

# What Python 3.12+ warns when a process with threads forks, as both kinds of worker set
# may; see "Fork and threads" in pashmap_shm.forked on why it is silenced.
FORK_WARNING = r"This process \(pid=\d+\) is multi-threaded, use of fork\(\) may lead to deadlocks"

_POLL_MS = 200  # how often to check for workers that died but whose pipe stays open
# Workers start one after another: the next one is started only if shares are still
# queued after the previous one had this long to take them. A map too small to need
# every worker (a few cheap elements) then costs one fork instead of num_workers, and a
# large map starts its last worker a few milliseconds late at most.
_RAMP_UP = 0.002
# A map of this many elements keeps one worker busy for longer than a fork costs even
# with the cheapest kernel, so all its workers start at once.
_START_ALL_AT = 50_000
# How long, in all, one map's caller may wait for its workers without sleeping, while it
# has a CPU to itself (see Awake): about what a small map's workers take to start, run
# and exit.
_SPIN = 0.003
_T = TypeVar("_T")


class WorkerProcess:
    """The caller's view of one worker process during a map."""

    __slots__ = ("done", "fd", "inbox", "pid", "reaped", "worker_id")

    def __init__(self, worker_id: int, pid: int, fd: int) -> None:
        self.worker_id = worker_id
        self.pid = pid
        self.fd = fd  # what it reports on
        self.inbox = Inbox()
        self.done = False
        self.reaped = False


class Awake:
    """How long one map's caller may still wait for its workers without sleeping.

    Waking a sleeping caller when a worker writes costs a noticeable part of a small map.
    While fewer workers run than this process has CPUs, the caller therefore waits awake
    (yielding its CPU at every turn, should a worker be queued on it), for at most
    ``_SPIN`` seconds per map in all; then, or when every CPU has a worker, it sleeps.
    """

    __slots__ = ("left", "spare_cpus")

    def __init__(self) -> None:
        self.left = _SPIN
        self.spare_cpus = available_cpus() - 1  # the CPUs, minus one for the caller

    def allows(self, running: int) -> bool:
        """Whether the caller may wait awake while ``running`` workers run."""
        return self.left > 0 and running <= self.spare_cpus

    def wait(self, ready: Callable[[], _T], seconds: float) -> _T:
        """Call ``ready()`` until it answers something true, without sleeping.

        Stops after ``seconds`` or when the map's budget is used up, whichever is first.

        Returns:
            ``ready()``'s last answer.
        """
        start = time.monotonic()
        end = start + min(seconds, self.left)
        while not (answer := ready()) and time.monotonic() < end:
            os.sched_yield()
        self.left -= time.monotonic() - start
        return answer


class WorkerSet:
    """The workers of one map, of one kind; :meth:`map` runs the map on them.

    A kind says how its workers start, how their end is learnt, and how they are
    stopped; the collecting is the same for both.

    Attributes:
        limit: the most workers this map may use.
        workers: the workers started so far.
        deadline: when the map must end (``time.monotonic()``), or ``None``.
        interrupted: the map is ending with Ctrl-C: :meth:`stop` waits for nothing.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.workers: list[WorkerProcess] = []
        self.deadline: float | None = None
        self.interrupted = False

    def start(self, count: int, queue_fd: int) -> list[WorkerProcess]:
        """Start up to ``count`` more workers reading shares from ``queue_fd``."""
        raise NotImplementedError

    def exit_status(self, worker: WorkerProcess, *, wait: bool) -> int | None:
        """A worker's status as ``os.waitpid`` gives it, once it has ended (it is then
        reaped); ``None`` while it runs (only when not ``wait``);
        :data:`STATUS_UNKNOWN` when it ended but its status could not be read."""
        raise NotImplementedError

    def died(self, worker: WorkerProcess) -> WorkerDiedError:
        """The error for ``worker``, which ended before finishing (it is reaped here)."""
        status = self.exit_status(worker, wait=True)
        return died_error(worker, STATUS_UNKNOWN if status is None else status)

    def stop(self, awake: Awake | None) -> None:
        """Stop what still runs, reap what must be, release the pipes.

        May be interrupted (a second Ctrl-C) and called again: it then goes on with
        what is left.
        """
        raise NotImplementedError

    def map(self, shares: Sequence[Any], deadline: float | None) -> list[Any]:
        """Run every share on these workers; return the values in index order.

        Whatever ends the map, its workers are stopped before it returns or raises. A
        Ctrl-C that arrives while they are stopped does not cut that short: when the map
        is raising already (a first Ctrl-C, a kernel error) it is absorbed, so the caller
        sees one exception; after a map that succeeded it raises ``KeyboardInterrupt``.

        Raises:
            MapTimeoutError: ``deadline`` passed (the workers are stopped).
            WorkerDiedError: a worker ended without finishing.
            KeyboardInterrupt: Ctrl-C during the map.
            BaseException: what the kernel raised, with its remote traceback.
        """
        self.deadline = deadline
        collector = _Collector(self, shares, deadline)
        queue = ShareQueue()
        error: BaseException | None = None
        try:
            queue.fill(len(shares))
            collector.collect(queue.read)
        except BaseException as exc:  # (no call between the raise and this line)
            error = exc
        # Not in a 'finally' or 'except' clause: an interrupt raised while stopping is
        # caught here, and would otherwise be chained to the error being raised. (Every
        # call is inside the 'try': an interrupt is raised only just after a call.)
        while True:
            try:
                if isinstance(error, KeyboardInterrupt):
                    self.interrupted = True
                queue.close()
                self.stop(collector.awake)
                break
            except KeyboardInterrupt:
                self.interrupted = True
        if isinstance(error, KeyboardInterrupt):
            _settle_after_ctrl_c()
        if error is not None:
            try:
                raise error
            finally:
                error = None  # (no reference cycle through this frame)
        if self.interrupted:
            raise KeyboardInterrupt
        return collector.in_index_order()


def _settle_after_ctrl_c() -> None:
    """Absorb the Ctrl-Cs that follow the first one closely, before it is raised.

    A hurried user presses Ctrl-C twice. When stopping the workers takes less time than
    the gap between the two presses, the second would land in the frames the first is
    unwinding through (pashmap's, or the user's ``except`` clause) and be chained to
    it; presses within :data:`_CTRL_C_SETTLE` of the stop belong to the same request.
    """
    settled = time.monotonic() + _CTRL_C_SETTLE
    while True:
        try:  # (every call inside: an interrupt is raised just after a call)
            left = settled - time.monotonic()
            if left <= 0:
                return
            time.sleep(left)
        except KeyboardInterrupt:
            continue


# How long after stopping an interrupted map further Ctrl-Cs are taken as the same one.
_CTRL_C_SETTLE = 0.05


class _Collector:
    """What the caller learns from the workers of one map."""

    def __init__(self, workers: WorkerSet, shares: Sequence[Any], deadline: float | None):
        self.worker_set = workers
        self.shares = shares
        self.deadline = deadline
        # What only the caller needs is made after the first start (see collect).
        self.awake: Awake | None = None
        self.values: list[list[Any] | None]  # the values of each share that sent any
        self.none_counts: array[int]  # (share, count) pairs, flat, of shares of Nones
        self.watched: dict[int, WorkerProcess]  # the workers still running, by fd
        self.poller: select.poll

    def collect(self, queue_fd: int) -> None:
        """Start the workers, read their messages until all are done, ramping up."""
        workers = self.worker_set
        # A map too long for one worker to finish while the next one starts starts them
        # all at once; any other map starts one and adds more only while shares wait.
        started = workers.start(
            workers.limit if _element_count(self.shares) >= _START_ALL_AT else 1, queue_fd
        )
        # The caller's own bookkeeping is made now, while the first worker starts up,
        # not before the fork where it would delay it.
        poller = self.poller = select.poll()
        watched: dict[int, WorkerProcess] = {}
        self.watched = watched
        self.values = [None] * len(self.shares)
        self.none_counts = array("q")
        awake = self.awake = Awake()

        def watch(new: list[WorkerProcess]) -> None:
            for worker in new:
                poller.register(worker.fd, select.POLLIN)
                watched[worker.fd] = worker

        watch(started)
        poll = poller.poll
        poll_now = partial(poll, 0)
        ramp_at = time.monotonic() + _RAMP_UP if len(workers.workers) < workers.limit else None
        deadline = self.deadline
        while watched:
            wait_ms = _POLL_MS
            if deadline is not None or ramp_at is not None:
                now = time.monotonic()
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        # map() stops the workers.
                        raise MapTimeoutError(
                            "the map did not finish before its timeout; its workers were stopped"
                        )
                    wait_ms = min(wait_ms, math.ceil(left * 1000))
                if ramp_at is not None:
                    if now >= ramp_at:
                        if queued_bytes(queue_fd):
                            watch(workers.start(1, queue_fd))
                        now = time.monotonic()
                        ramp_at = (
                            now + _RAMP_UP
                            if len(workers.workers) < workers.limit and queued_bytes(queue_fd)
                            else None
                        )
                    if ramp_at is not None:
                        wait_ms = min(wait_ms, math.ceil((ramp_at - now) * 1000))
            events: list[tuple[int, int]] = []
            if awake.allows(len(watched)):
                start = time.monotonic()
                events = awake.wait(poll_now, wait_ms / 1000)
                wait_ms = max(0, wait_ms - math.ceil((time.monotonic() - start) * 1000))
            if not events:
                events = poll(wait_ms)
            if not events:
                self._check_alive()
            for fd, _ in events:
                worker = watched[fd]
                try:
                    more = worker.inbox.read(fd)
                except ConnectionResetError:  # a pooled worker's socket: it died
                    more = False
                if not more:
                    raise workers.died(worker)
                self._take(worker)
                if worker.done:
                    self._unwatch(worker)

    def _unwatch(self, worker: WorkerProcess) -> None:
        """Stop watching a worker that is done: its end of file says nothing more."""
        self.poller.unregister(worker.fd)
        del self.watched[worker.fd]

    def _take(self, worker: WorkerProcess) -> None:
        for kind, share, body in worker.inbox.take():
            if kind == RESULTS:
                self.values[share] = body
            elif kind == DONE:
                self.none_counts.extend(body)
                worker.done = True
            else:
                raise body

    def _check_alive(self) -> None:
        """Catch a dead worker whose pipe is still held open (e.g. by a grandchild)."""
        for worker in self.worker_set.workers:
            if worker.done or worker.reaped:
                continue
            status = self.worker_set.exit_status(worker, wait=False)
            if status is None:
                continue
            if not self._read_last_messages(worker):
                raise died_error(worker, status)
            # Done just before it exited: its messages were read here, and its end of
            # file must not be taken for a death at the next poll.
            self._unwatch(worker)

    def _read_last_messages(self, worker: WorkerProcess) -> bool:
        """Read what a worker that exited wrote just before; say whether it was done."""
        os.set_blocking(worker.fd, False)
        with contextlib.suppress(BlockingIOError):
            while worker.inbox.read(worker.fd):
                self._take(worker)
        return worker.done

    def in_index_order(self) -> list[Any]:
        """The values of every share, concatenated in share order."""
        sizes = [0] * len(self.shares)
        flat = self.none_counts
        for position in range(0, len(flat), 2):
            sizes[flat[position]] = flat[position + 1]
        returned = False
        for share, values in enumerate(self.values):
            if values is not None:
                sizes[share] = len(values)
                returned = True
        out: list[Any] = [None] * sum(sizes)
        if returned:
            start = 0
            for values, size in zip(self.values, sizes, strict=True):
                if values is not None:
                    out[start : start + size] = values
                start += size
        return out


def _element_count(shares: Sequence[Any]) -> int:
    """The number of elements in ``shares`` when they are ranges (else 0: unknown).

    Shares are contiguous and in order, so the first and the last tell.
    """
    first, last = shares[0], shares[-1]
    if type(first) is range and type(last) is range and first.step == 1 == last.step:
        return max(0, last.stop - first.start)
    return 0
