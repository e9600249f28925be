"""How a worker runs the kernel over one share of a target, and when a map must stop.

Shared by every context, so that the cheapest way to call the kernel is used everywhere:
through the target's columns when it has them (no tuple per element), with the progress
counter bumped per share, and with the deadline checked per element only when there is
one. A target that breaks its contract (``iterate`` yielding something other than argument
tuples) is named in the ``TypeError``, found on the error path only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import compress, repeat, starmap
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from pashmap.errors import MapTimeoutError
from pashmap.remote_exceptions import qualified_name
from pashmap.target import MapTarget

__all__ = ["StopSignal", "deadline_after", "run_serially", "run_share", "share_runner"]

R = TypeVar("R")


class StopSignal:
    """Tells the share runners of a map to stop between two elements.

    A context that must end a map early (Ctrl-C, a kernel exception in another worker, a
    timeout) while its workers are in the middle of a share calls :meth:`stop`; every
    runner made with ``stop=`` this signal starts no further element, and raises
    ``reason`` at the end of the share it was running. The check costs no Python call
    per element (the runner's iteration simply ends), so runners can always take one.
    Setting it is thread-safe; it is not shared between processes.
    """

    __slots__ = ("_go", "reason")

    def __init__(self) -> None:
        self._go = [True]
        self.reason: BaseException | None = None

    def stop(self, reason: BaseException) -> None:
        """Stop every runner of the map at its next element.

        Args:
            reason: the exception the runners raise (the first reason given is kept).
        """
        if self.reason is None:
            self.reason = reason
        self._go[0] = False

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return not self._go[0]

    def _running(self) -> Iterator[bool]:
        # True at every element until stop(): a C-level iterator (no Python call).
        return iter(partial(self._go.__getitem__, 0), False)

    def _check(self) -> None:
        if not self._go[0]:
            raise self.reason or RuntimeError("the map was stopped")


def run_share(
    kernel: Callable[..., R],
    worker_id: int,
    target: MapTarget[Any],
    share: Any,
    *,
    counts: NDArray[np.int64] | None = None,
    deadline: float | None = None,
    stop: StopSignal | None = None,
) -> list[R]:
    """Call ``kernel(worker_id, *entry)`` for every entry of one share, in order.

    Uses ``target.iterate_columns(share)`` when the target has it (no tuple per
    element), else ``target.iterate(share)``.

    Args:
        kernel: the function to call.
        worker_id: passed as the kernel's first argument.
        target: the MapTarget the share came from.
        share: one of ``target.split(n)``.
        counts: if given, ``counts[worker_id]`` is increased by the number of elements done
            (the progress counter): after the share, or after every element when a
            deadline is given too.
        deadline: if given, a ``time.monotonic()`` value after which no further element
            is started: :class:`~pashmap.MapTimeoutError` is raised instead.
        stop: if given, no further element is started once it is stopped, and its
            reason is raised (see :class:`StopSignal`).

    Returns:
        The kernel's return values, in order.

    Raises:
        MapTimeoutError: the deadline passed.
        BaseException: the reason given to ``stop``.
        TypeError: the target's ``iterate`` (``iterate_columns``) broke its contract:
            the message names the target's class and what it gave.
    """
    runner = share_runner(kernel, worker_id, target, counts=counts, deadline=deadline, stop=stop)
    return runner(share)


def run_serially(
    kernel: Callable[..., R],
    target: MapTarget[Any],
    shares: Sequence[Any],
    *,
    deadline: float | None = None,
) -> list[R]:
    """Run every share in the calling thread, as worker 0, in index order.

    What a parallel context does with a map started inside one of its workers
    (:func:`pashmap.contexts.in_worker`): the nested map runs serially in the worker
    that asked, in that worker's scope, rather than starting workers of its own.

    Args:
        kernel: the function to call.
        target: the MapTarget the shares came from.
        shares: the shares, in index order.
        deadline: as for :func:`run_share`.

    Returns:
        The kernel's return values, in index order.

    Raises:
        MapTimeoutError: the deadline passed.
    """
    run = share_runner(kernel, 0, target, deadline=deadline)
    return [value for share in shares for value in run(share)]


def share_runner(
    kernel: Callable[..., R],
    worker_id: int,
    target: MapTarget[Any],
    *,
    counts: NDArray[np.int64] | None = None,
    deadline: float | None = None,
    stop: StopSignal | None = None,
) -> Callable[[Any], list[R]]:
    """A function that runs one share, as :func:`run_share` does, prepared once per worker.

    A worker that runs many shares looks the target's methods up once, here, rather than
    at every share.

    Args:
        kernel: the function to call.
        worker_id: passed as the kernel's first argument.
        target: the MapTarget the shares come from.
        counts: the progress counters, as for :func:`run_share`.
        deadline: the deadline, as for :func:`run_share`.
        stop: the stop signal, as for :func:`run_share`.

    Returns:
        ``run(share)``, returning the kernel's values for that share in order.
    """
    if deadline is not None:
        return partial(
            _run_share_watched,
            kernel,
            worker_id,
            target,
            counts=counts,
            deadline=deadline,
            stop=stop,
        )
    run: Callable[[Any], list[R]]
    iterate_columns = getattr(target, "iterate_columns", None)
    if iterate_columns is not None:
        workers = repeat(worker_id)
        if stop is None:

            def run(share: Any) -> list[R]:
                try:
                    return list(map(kernel, workers, *iterate_columns(share)))
                except TypeError as exc:  # (free until raised: the fast path pays nothing)
                    _raise_if_broken(exc, target, share)
                    raise

        else:
            signal = stop

            def run(share: Any) -> list[R]:
                try:
                    first, *rest = iterate_columns(share)
                    values = list(map(kernel, workers, compress(first, signal._running()), *rest))
                except TypeError as exc:
                    _raise_if_broken(exc, target, share)
                    raise
                signal._check()
                return values

    else:
        call = partial(kernel, worker_id)
        iterate = target.iterate
        if stop is None:

            def run(share: Any) -> list[R]:
                try:
                    return list(starmap(call, iterate(share)))
                except TypeError as exc:
                    _raise_if_broken(exc, target, share)
                    raise

        else:
            signal = stop

            def run(share: Any) -> list[R]:
                try:
                    values = list(starmap(call, compress(iterate(share), signal._running())))
                except TypeError as exc:
                    _raise_if_broken(exc, target, share)
                    raise
                signal._check()
                return values

    if counts is None:
        return run
    uncounted = run

    def counted(share: Any) -> list[R]:  # count per share: the fast path stays as fast
        results = uncounted(share)
        counts[worker_id] += len(results)
        return results

    return counted


def _run_share_watched(
    kernel: Callable[..., R],
    worker_id: int,
    target: MapTarget[Any],
    share: Any,
    *,
    counts: NDArray[np.int64] | None,
    deadline: float,
    stop: StopSignal | None,
) -> list[R]:
    call = partial(kernel, worker_id)
    results = []
    monotonic = time.monotonic
    try:
        for entry in target.iterate(share):
            if stop is not None:
                stop._check()
            if monotonic() > deadline:
                raise MapTimeoutError("the map did not finish before its timeout")
            results.append(call(*entry))
            if counts is not None:
                counts[worker_id] += 1
    except TypeError as exc:
        _raise_if_broken(exc, target, share, columns=False)
        raise
    return results


def _raise_if_broken(
    exc: TypeError, target: MapTarget[Any], share: Any, *, columns: bool | None = None
) -> None:
    """Raise the error naming ``target`` if ``exc`` comes from its entries."""
    broken = _broken_contract(exc, target, share, columns=columns)
    if broken is not None:
        raise broken from exc


def _broken_contract(
    exc: TypeError, target: MapTarget[Any], share: Any, *, columns: bool | None = None
) -> TypeError | None:
    """The error naming ``target`` if ``exc`` comes from its entries, else ``None``.

    ``exc`` was caught in the frame that unpacks the entries. Raised there (no deeper
    frame), it came from unpacking an entry or from calling the kernel with the wrong
    number of arguments; the share's first entry, taken afresh, tells which. A TypeError
    from inside the kernel has a deeper frame and is left alone.
    """
    traceback = exc.__traceback__
    if traceback is None or traceback.tb_next is not None:
        return None
    name = qualified_name(type(target))
    if columns is None:
        columns = getattr(target, "iterate_columns", None) is not None
    try:
        if columns:
            given = target.iterate_columns(share)  # type: ignore[attr-defined]
            if isinstance(given, (tuple, list)) and all(
                hasattr(column, "__iter__") for column in given
            ):
                return None
            return TypeError(
                f"{name}.iterate_columns(share) must return a tuple of iterables, one per "
                f"kernel argument after worker_id (e.g. (indices, values)); it returned "
                f"{_shown(given)} ({exc})"
            )
        entry: object = next(iter(target.iterate(share)))
    except Exception:
        return None  # the target fails another way: the original error stands
    if isinstance(entry, (tuple, list)):
        return None
    return TypeError(
        f"{name}.iterate(share) must yield one tuple of kernel arguments per element, "
        f"e.g. (index, value), called as kernel(worker_id, *entry); it yielded "
        f"{_shown(entry)} ({exc})"
    )


def _shown(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def deadline_after(timeout: float | None) -> float | None:
    """The ``time.monotonic()`` value ``timeout`` seconds from now (``None`` for no limit)."""
    return None if timeout is None else time.monotonic() + timeout
