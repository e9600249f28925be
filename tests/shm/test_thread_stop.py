"""After a threads map raises, none of its threads writes again (issue: re-run a cell)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import pashmap as pm
from pashmap_shm import ThreadContext


def _interrupt_when(event: threading.Event) -> threading.Thread:
    main = threading.main_thread().ident
    assert main is not None

    def fire() -> None:
        event.wait(10)
        signal.pthread_kill(main, signal.SIGINT)  # a real signal: it wakes a blocked wait

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def interrupted() -> Iterator[threading.Event]:
    """Set once the caller's SIGINT handler has run (and raised KeyboardInterrupt)."""
    received = threading.Event()

    def handler(number: int, frame: object) -> None:
        received.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    yield received
    signal.signal(signal.SIGINT, previous)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("trial", range(50))
def test_ctrl_c_leaves_no_thread_writing(trial: int, interrupted: threading.Event) -> None:
    with pm.use_context(ThreadContext(2)):
        n = 400
        out = pm.zeros(n)
        started = threading.Event()

        def slow(worker_id: int, index: int, value: float) -> None:
            started.set()
            interrupted.wait(10)  # the map cannot end before the caller got Ctrl-C
            time.sleep(0.001)
            out[index] = 1.0

        firing = _interrupt_when(started)
        with pytest.raises(KeyboardInterrupt):
            pm.map(slow, np.zeros(n))
        firing.join()
        snapshot = out.copy()
        time.sleep(0.02)  # a thread still writing would change it by now
        np.testing.assert_array_equal(out, snapshot)
        assert snapshot.sum() <= 2  # at most the element each thread was running


def test_a_kernel_exception_stops_the_other_threads_between_elements() -> None:
    with pm.use_context(ThreadContext(2)):
        calls = pm.zeros(2, dtype=np.int64)
        failed = threading.Event()

        def kernel(worker_id: int, index: int, value: int) -> None:
            if index == 0:
                failed.wait(5)
                raise ValueError("first element")
            calls[worker_id] += 1
            if calls[worker_id] == 1:
                failed.set()
            time.sleep(0.001)

        # One guided share per worker at first: the second thread's first share is long.
        with pytest.raises(ValueError, match="first element"):
            pm.map(kernel, list(range(2000)))
        # The other thread stopped at its next element, not at the end of its share.
        assert calls.sum() < 200


def test_stop_signal_stops_a_runner_between_elements() -> None:
    from pashmap.contexts import StopSignal, share_runner
    from pashmap.targets import NdarrayTarget, SequenceTarget

    for target in (NdarrayTarget(np.arange(10)), SequenceTarget(range(10))):
        stop = StopSignal()
        seen: list[int] = []

        def kernel(
            worker_id: int,
            index: int,
            value: object,
            seen: list[int] = seen,
            stop: StopSignal = stop,
        ) -> int:
            seen.append(index)
            if index == 3:
                stop.stop(KeyboardInterrupt())
            return index

        run = share_runner(kernel, 0, target, stop=stop)
        with pytest.raises(KeyboardInterrupt):
            run(range(10))
        assert seen == [0, 1, 2, 3]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("trial", range(3))
def test_ctrl_c_delivered_to_a_worker_thread_still_stops_the_map(
    trial: int, interrupted: threading.Event
) -> None:
    # A Ctrl-C that lands on another thread than the caller's (or just before the
    # caller's wait blocks) only sets CPython's "signal pending" flag: nothing wakes a
    # wait that has no end. The caller must still see it, and soon.
    with pm.use_context(ThreadContext(2)):
        n = 400
        out = pm.zeros(n)
        sent = threading.Event()

        def slow(worker_id: int, index: int, value: float) -> None:
            if not sent.is_set():
                sent.set()
                time.sleep(0.2)  # the caller is waiting by now
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            interrupted.wait(10)
            time.sleep(0.001)
            out[index] = 1.0

        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            pm.map(slow, np.zeros(n))
        assert interrupted.is_set()
        assert time.monotonic() - start < 8  # seen while the kernels still waited for it
