"""progress= and timeout= under threads and processes: bars that count, maps that stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import psutil
import pytest

import pashmap as pm
from pashmap import MapTimeoutError
from pashmap.contexts import BaseContext
from pashmap.progress import ProgressBar
from pashmap_shm import ProcessContext, ThreadContext

from .conftest import KINDS

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=sorted(KINDS))
def ctx(request: pytest.FixtureRequest) -> BaseContext:
    """A context of each kind with 2 workers."""
    return KINDS[request.param](2)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that frees kernels stuck waiting on it (threads cannot be killed)."""
    event = threading.Event()
    yield event
    event.set()


def workers_left() -> list[psutil.Process]:
    """Child processes other than multiprocessing's own helpers (fork server, tracker)."""
    return [
        child
        for child in psutil.Process().children()
        if not any("multiprocessing" in part for part in child.cmdline())
    ]


class RecordingBar(ProgressBar):
    """The real tqdm bar, remembering the counters' total when it closes."""

    finals: list[int] = []  # noqa: RUF012 - one record for the whole test

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)  # type: ignore[arg-type]
        RecordingBar.finals.append(int(self._bar.n))


@pytest.fixture
def recording_bar(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Final positions of every progress bar drawn by a map."""
    import pashmap.progress

    RecordingBar.finals = []
    monkeypatch.setattr(pashmap.progress, "ProgressBar", RecordingBar)
    return RecordingBar.finals


def test_progress_counters_reach_the_total(ctx: BaseContext, recording_bar: list[int]) -> None:
    out = ctx.zeros(500)

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index] = value

    ctx.map(kernel, range(500), progress=True)
    assert recording_bar == [500]
    np.testing.assert_array_equal(out, np.arange(500))


def test_progress_counters_live_in_memory_the_workers_share(ctx: BaseContext) -> None:
    """The bar's counters are allocated by the context (shared memory for processes)."""
    bar = ProgressBar(ctx, 100)
    with bar:
        ctx.map(lambda w, i, v: bar.counts.__setitem__(w, bar.counts[w] + 1), range(100))
    assert bar.done == 100


def test_progress_with_the_program_wide_default(ctx: BaseContext, recording_bar: list[int]) -> None:
    previous = pm.set_default_options(progress=True)
    try:
        assert ctx.map(lambda w, i, v: v, range(64)) == list(range(64))
    finally:
        pm.set_default_options(**previous)
    assert recording_bar == [64]


@pytest.mark.usefixtures("no_leaks")
def test_timeout_of_a_hung_kernel_in_processes() -> None:
    with ProcessContext(2) as ctx:
        start = time.monotonic()
        with pytest.raises(MapTimeoutError, match="timeout") as info:
            ctx.map(lambda w, i, v: time.sleep(1000), range(4), timeout=0.5)
        elapsed = time.monotonic() - start
    assert isinstance(info.value, TimeoutError)
    assert 0.4 < elapsed < 3
    assert workers_left() == []


@pytest.mark.usefixtures("no_leaks")
def test_timeout_of_a_hung_kernel_in_threads(release: threading.Event) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="timeout"):
        ThreadContext(2).map(lambda w, i, v: release.wait(1000), range(4), timeout=0.5)
    # At once: the caller does not wait for the stuck calls.
    assert 0.4 < time.monotonic() - start < 3


def test_threads_start_no_element_after_a_timeout(release: threading.Event) -> None:
    started = np.zeros(40, dtype=np.int64)
    timed_out = threading.Event()
    free: list[threading.Thread] = []

    def kernel(worker_id: int, index: int, value: int) -> None:
        started[index] = 1
        if index == 0:  # one thread is stuck in share 0 until the test ends
            release.wait(1000)
        elif index == 21:  # the other one is in share 1 when the map times out
            free.append(threading.current_thread())
            timed_out.wait(60)

    with pytest.raises(MapTimeoutError):
        ThreadContext(2).map(kernel, range(40), shares=2, timeout=0.3)
    timed_out.set()
    free[0].join(60)
    assert not free[0].is_alive()  # it left the map after the element it was in ...
    assert np.flatnonzero(started).tolist() == [0, 20, 21]  # ... and started no other


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_timeout_during_a_reduction(kind: str, release: threading.Event) -> None:
    with KINDS[kind](2) as ctx:
        acc = pm.Accumulator(8, context=ctx)

        def kernel(worker_id: int, index: int, value: int) -> None:
            acc.local += value
            if index == 50:
                release.wait(1000) if kind == "threads" else time.sleep(1000)

        with pytest.raises(TimeoutError):
            ctx.map(kernel, range(200), timeout=0.5)
        # Cancelled part way: the partial results hold what was accumulated, and the
        # accumulator can be reset and used again.
        assert 0 < acc.result()[0] < sum(range(200))
        release.set()
        acc.reset()
        ctx.map(lambda w, i, v: acc.local.__iadd__(v), range(200))
        assert acc.result().tolist() == [sum(range(200))] * 8


def test_a_map_within_its_timeout_is_unaffected(ctx: BaseContext) -> None:
    assert ctx.map(lambda w, i, v: v * 2, range(100), timeout=30) == [v * 2 for v in range(100)]


def test_timeout_reaches_a_map_that_waits_between_shares(ctx: BaseContext) -> None:
    """Many short elements: the workers notice the deadline between elements."""
    start = time.monotonic()
    with pytest.raises(MapTimeoutError):
        ctx.map(lambda w, i, v: time.sleep(0.01), range(1000), timeout=0.3)
    assert time.monotonic() - start < 3
    if isinstance(ctx, ProcessContext):
        assert workers_left() == []
