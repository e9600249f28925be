"""A worker that reported DONE is never reported dead (issue 13, item 9).

When ``poll()`` times out, the caller looks for workers that died with their pipe still
open (:meth:`_check_alive`). A worker may send DONE and exit just then: the caller reaps
it and reads its last messages there. Its pipe must then stop being watched, or the next
poll sees the end of file of a worker already reaped and reports a death that never
happened. The race is widened here with a pause before each check, and with a short
poll interval, so that it happens in most maps rather than in one of tens of thousands.
"""

from __future__ import annotations

import time

import pytest

from pashmap_shm import ProcessContext, collector

from .conftest import resources

LOOPS = 100


@pytest.fixture
def paused_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll every millisecond, and pause 50 ms before looking for dead workers."""
    check = collector._Collector._check_alive

    def late_check(self: collector._Collector) -> None:
        time.sleep(0.05)
        check(self)

    monkeypatch.setattr(collector, "_POLL_MS", 1)
    monkeypatch.setattr(collector._Collector, "_check_alive", late_check)


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("paused_check")
def test_a_worker_that_sent_done_is_never_reported_dead() -> None:
    before = resources()
    ctx = ProcessContext(1)
    for attempt in range(LOOPS):
        # The kernel outlasts a poll interval, then the worker finishes during the pause.
        assert ctx.map(lambda wid, i, v: time.sleep(0.01) or v, range(2)) == [0, 1], attempt
    assert resources() == before


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("paused_check")
def test_two_workers_finishing_during_the_pause() -> None:
    before = resources()
    ctx = ProcessContext(2)
    for attempt in range(LOOPS // 2):
        values = ctx.map(lambda wid, i, v: time.sleep(0.01) or v, range(4), shares=4)
        assert values == [0, 1, 2, 3], attempt
    assert resources() == before
