"""Warm workers outlive the thread that started them, and die with the caller's process.

A worker started with ``PR_SET_PDEATHSIG`` is killed when the *thread* that started it
ends; pools are started from a long-lived thread of pashmap's, so a pool first used in a
short-lived thread (a ``ThreadPoolExecutor``, a web handler) keeps its workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from pashmap_shm import ProcessContext

from .conftest import wait_until

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("pool_helper_processes")]

WARM = {
    "fork-persistent": lambda: ProcessContext(2, persistent=True),
    "spawn-persistent": lambda: ProcessContext(2, start_method="spawn", persistent=True),
    "forkserver-persistent": lambda: ProcessContext(2, start_method="forkserver", persistent=True),
    "with-block": lambda: ProcessContext(2),
}


@pytest.mark.parametrize("kind", WARM)
@pytest.mark.usefixtures("no_leaks")
def test_workers_started_in_a_thread_that_ended_still_serve_maps(kind: str) -> None:
    make: Callable[[], ProcessContext] = WARM[kind]
    with make() as ctx:
        with ThreadPoolExecutor(1) as executor:
            first = executor.submit(ctx.map, lambda w, i, v: v + 1, range(8)).result()
            pids = executor.submit(ctx.worker_pids).result()
        # The executor's thread has ended (shutdown waits for it).
        assert first == list(range(1, 9))
        assert len(pids) == 2
        for _ in range(3):
            assert ctx.map(lambda w, i, v: v * 3, range(8)) == [v * 3 for v in range(8)]
        assert ctx.worker_pids() == pids


CALLER = textwrap.dedent(
    """
    import sys, time
    from concurrent.futures import ThreadPoolExecutor
    from pashmap_shm import ProcessContext

    ctx = ProcessContext(2, start_method={method!r}, persistent=True)
    with ThreadPoolExecutor(1) as executor:
        executor.submit(ctx.map, lambda w, i, v: v, range(8)).result()
    print(*ctx.worker_pids(), flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_started_in_a_thread_die_with_the_caller(method: str) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CALLER.format(method=method)],
        stdout=subprocess.PIPE,
        text=True,
    ) as caller:
        try:
            assert caller.stdout is not None
            pids = [int(pid) for pid in caller.stdout.readline().split()]
            assert len(pids) == 2
            assert all(psutil.pid_exists(pid) for pid in pids)
        finally:
            os.kill(caller.pid, signal.SIGKILL)
            caller.wait()

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    assert wait_until(lambda: all(gone(pid) for pid in pids))


def starter_threads() -> int:
    return sum(thread.name == "pashmap-pool-starter" for thread in threading.enumerate())


@pytest.mark.usefixtures("no_leaks")
def test_the_starter_thread_ends_with_the_last_pool() -> None:
    # (so that a program forking after its warm pools closed is single-threaded again)
    first, second = ProcessContext(2, persistent=True), ProcessContext(2, persistent=True)
    first.map(lambda w, i, v: v, range(4))
    second.map(lambda w, i, v: v, range(4))
    assert starter_threads() == 1
    first.close()
    assert second.map(lambda w, i, v: v, range(4)) == [0, 1, 2, 3]
    second.close()
    assert wait_until(lambda: starter_threads() == 0)
    with ProcessContext(2) as ctx:  # and a new pool starts a new one
        assert ctx.map(lambda w, i, v: v, range(4)) == [0, 1, 2, 3]
        assert starter_threads() == 1
    assert wait_until(lambda: starter_threads() == 0)
