"""Faults on a real cluster: kernel exceptions, timeouts, Ctrl-C, killed workers and a
scheduler that goes away. Each ends in a clear error or the right result, never a hang,
and the cluster stays usable."""

from __future__ import annotations

import _thread
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import dask
import distributed
import numpy as np
import pytest

import pashmap as pm
from pashmap_dask import DaskContext
from pashmap_dask.cluster import ConnectionFailedError


class NegativeValueError(ValueError):
    """A kernel's own exception type, defined in the test module."""


def nothing_running(client: Any, within: float) -> bool:
    """Whether the cluster runs no task within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(client.processing().values()):
            return True
        time.sleep(0.05)
    return False


def after(seconds: float, action: Callable[[], object]) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()
    return timer


@pytest.fixture(scope="module")
def doomed_client() -> Iterator[Any]:
    """A cluster of its own for the tests that kill workers: 4 single-threaded processes,
    so that a killed worker restarts while the next rounds run on the others.

    Dask's LocalCluster closes a worker's nanny when no worker of that name came back
    within distributed.deploy.lost-worker-timeout of an *earlier* loss of that name; when
    the same worker is killed again meanwhile, the nanny restarting it is closed. Killing
    workers every second, the test keeps that timer out of the way.
    """
    with (
        dask.config.set({"distributed.deploy.lost-worker-timeout": "1h"}),
        distributed.LocalCluster(
            n_workers=4,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: 8787 may be taken
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


def slow(worker_id: int, index: int, value: int) -> int:
    time.sleep(0.05)
    return value


def test_kernel_exception_has_its_type_and_the_remote_traceback(ctx: DaskContext) -> None:
    def kernel(worker_id: int, index: int, value: int) -> None:
        if index == 33:
            raise NegativeValueError(f"bad value at {index}")

    with pytest.raises(NegativeValueError, match="bad value at 33") as caught:
        ctx.map(kernel, range(64))
    cause = caught.value.__cause__
    assert isinstance(cause, pm.contexts.RemoteTraceback if hasattr(pm, "contexts") else Exception)
    assert "in kernel" in str(cause)
    assert "NegativeValueError" in str(cause)


def test_an_exception_cancels_the_rest_of_the_map(ctx: DaskContext, client: Any) -> None:
    def kernel(worker_id: int, index: int, value: int) -> None:
        if index == 0:
            raise KeyError("first")
        time.sleep(0.05)  # the other shares would run for seconds

    started = time.monotonic()
    with pytest.raises(KeyError):
        ctx.map(kernel, range(400))
    assert time.monotonic() - started < 5
    assert nothing_running(client, within=2.0)
    assert ctx.map(lambda w, i, v: v, range(3)) == [0, 1, 2]


def test_timeout_raises_and_running_shares_stop(ctx: DaskContext, client: Any) -> None:
    started = time.monotonic()
    with pytest.raises(pm.MapTimeoutError, match="timeout"):
        ctx.map(slow, range(400), timeout=0.5)
    assert time.monotonic() - started < 3
    assert nothing_running(client, within=1.5)
    assert ctx.map(slow, range(4), timeout=30) == [0, 1, 2, 3]


def test_ctrl_c_cancels_the_maps_tasks(ctx: DaskContext, client: Any) -> None:
    # Python's own Ctrl-C handler (importing dask_jobqueue installs one that exits).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        after(0.5, _thread.interrupt_main)
        with pytest.raises(KeyboardInterrupt):
            ctx.map(slow, range(400))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert nothing_running(client, within=1.5)


@pytest.mark.timeout(300)
def test_a_worker_killed_mid_map_twenty_times(doomed_client: Any) -> None:
    client = doomed_client
    ctx = DaskContext(client=client)
    out = ctx.zeros((64, 3))

    def kernel(worker_id: int, index: int, value: int) -> int:
        time.sleep(0.01)
        out[index] = value
        return value * 2

    for round_ in range(20):
        out[...] = 0
        client.wait_for_workers(2, timeout=60)  # at least two alive (of 4)
        # The nannies know their workers' pids: asking a dying worker would wait.
        pids = sorted(nanny.pid for nanny in client.cluster.workers.values() if nanny.pid)
        victim = pids[round_ % len(pids)]
        after(0.15, lambda pid=victim: os.kill(pid, signal.SIGKILL))
        assert ctx.map(kernel, range(64)) == [2 * i for i in range(64)]
        np.testing.assert_array_equal(out, np.repeat(np.arange(64.0), 3).reshape(64, 3))
    client.wait_for_workers(4, timeout=120)


@pytest.mark.timeout(300)
def test_a_share_that_keeps_killing_its_workers_is_named(doomed_client: Any) -> None:
    client = doomed_client
    client.wait_for_workers(4, timeout=120)
    ctx = DaskContext(16, client=client)

    def kernel(worker_id: int, index: int, value: int) -> None:
        if index == 13:
            os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(pm.WorkerDiedError, match="indices 12 to 15") as caught:
        ctx.map(kernel, range(64))
    assert caught.value.worker_id == 3
    client.wait_for_workers(4, timeout=120)
    assert ctx.map(lambda w, i, v: v, range(16)) == list(range(16))


@pytest.mark.timeout(120)
def test_a_scheduler_that_goes_away_is_a_clear_error(dask_processes: Any) -> None:
    dask_processes.start_scheduler()
    dask_processes.start_worker()
    dask_processes.wait_for_workers(1)
    with DaskContext(scheduler_file=str(dask_processes.scheduler_file)) as context:
        assert context.map(lambda w, i, v: v, range(4)) == [0, 1, 2, 3]
        after(0.5, dask_processes.scheduler.kill)
        started = time.monotonic()
        with pytest.raises((ConnectionFailedError, pm.PashmapError)):
            context.map(slow, range(2000))
        assert time.monotonic() - started < 60
