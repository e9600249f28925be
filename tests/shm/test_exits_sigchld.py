"""Workers whose exit status the caller cannot read (issue 13, item 11).

With SIGCHLD ignored the system reaps every child itself and discards its status; a
SIGCHLD handler that calls ``os.waitpid(-1, ...)`` takes it first. A worker killed
during the map was then reported as "exited with status 0": the error now says that the
status could not be read, and why, and sets neither ``exitcode`` nor ``signal``.

(pashmap does not set SIGCHLD back to its default for the map: the disposition is the
whole process's, only the main thread may change it, and children of the program that
end meanwhile would be left as zombies that nobody reaps.)
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from types import FrameType

import psutil
import pytest

from pashmap import WorkerDiedError
from pashmap_shm import ProcessContext

from .conftest import resources

LOOPS = 20


def killed_at(victim: int):  # type: ignore[no-untyped-def]
    """A kernel whose worker SIGKILLs itself at index ``victim``."""

    def kernel(worker_id: int, index: int, value: int) -> int:
        if index == victim:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.001)
        return value

    return kernel


@pytest.fixture
def sigchld_ignored() -> Iterator[None]:
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGCHLD, previous)


def reap_all(signum: int, frame: FrameType | None) -> None:
    """A SIGCHLD handler as programs that start children write it."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return


@pytest.fixture
def sigchld_reaped_by_a_handler() -> Iterator[None]:
    previous = signal.signal(signal.SIGCHLD, reap_all)
    yield
    signal.signal(signal.SIGCHLD, previous)


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("sigchld_ignored")
def test_sigchld_ignored_says_why_the_status_is_unknown() -> None:
    before = resources()
    ctx = ProcessContext(2)
    for attempt in range(LOOPS):
        with pytest.raises(WorkerDiedError) as info:
            ctx.map(killed_at(attempt % 8), range(8), shares=8)
        error = info.value
        message = str(error)
        assert "exited with status 0" not in message
        assert "its exit status could not be read because SIGCHLD is ignored" in message
        assert "signal.SIG_DFL" in message  # what to do to learn more
        assert error.exitcode is None
        assert error.signal is None
        assert error.worker_id in (0, 1)
        assert ctx.map(lambda wid, i, v: v, range(5)) == list(range(5))
    # With SIGCHLD ignored nobody can wait for a worker that is still exiting after its
    # DONE (the system reaps it): it may outlive the map by a moment, not more.
    deadline = time.monotonic() + 10
    while psutil.Process().children() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert psutil.Process().children() == []
    assert resources() == before


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("sigchld_reaped_by_a_handler")
def test_a_sigchld_handler_that_reaps_first() -> None:
    before = resources()
    ctx = ProcessContext(2)
    for attempt in range(LOOPS):
        with pytest.raises(WorkerDiedError) as info:
            ctx.map(killed_at(attempt % 8), range(8), shares=8)
        error = info.value
        # The handler may run before or after the caller reads the status.
        assert "exited with status 0" not in str(error)
        if error.signal is None:
            assert "another part of the program reaped it first" in str(error)
            assert error.exitcode is None
        else:
            assert error.signal == signal.SIGKILL
    assert resources() == before


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("pool_helper_processes", "sigchld_ignored")
@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_sigchld_ignored_warm_workers_say_why_the_status_is_unknown(start_method: str) -> None:
    # (The fork server and resource tracker run for this module: pool_helper_processes.)
    before = resources()
    with ProcessContext(2, start_method=start_method, persistent=True) as ctx:
        for attempt in range(4):
            with pytest.raises(WorkerDiedError) as info:
                ctx.map(killed_at(attempt % 8), range(8), shares=8)
            message = str(info.value)
            assert "exited with status 0" not in message
            if start_method == "fork":  # our children: the system discarded the status
                assert "its exit status could not be read" in message
                assert info.value.exitcode is None
            else:  # children of the fork server, which reads their status for us
                assert info.value.signal == signal.SIGKILL
            assert ctx.map(lambda wid, i, v: v, range(5)) == list(range(5))
    assert resources() == before
