"""Workers not forked at the map: forkserver, spawn and warm (persistent) pools."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

import pashmap as pm
from pashmap import MapTimeoutError, WorkerDiedError
from pashmap.progress import ProgressBar
from pashmap_shm import NotSharedWarning, ProcessContext

from .conftest import resources

pytestmark = pytest.mark.timeout(90)

POOLED = [
    pytest.param({"start_method": "forkserver"}, id="forkserver"),
    pytest.param({"start_method": "spawn"}, id="spawn"),
    pytest.param({"start_method": "fork", "persistent": True}, id="fork-warm"),
    pytest.param({"start_method": "forkserver", "persistent": True}, id="forkserver-warm"),
]


@pytest.fixture(scope="module", autouse=True)
def helper_processes() -> Iterator[None]:
    """Run multiprocessing's own long-lived helpers (fork server, resource tracker) for
    this module only: the leak checks see them before and after each test, and the
    other test modules, which count child processes, never see them."""
    from multiprocessing import resource_tracker

    multiprocessing.get_context("forkserver").set_forkserver_preload(["pashmap_shm.worker"])
    multiprocessing.forkserver.ensure_running()
    resource_tracker.ensure_running()
    yield
    multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]
    resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]


@pytest.fixture(params=POOLED)
def ctx(request: pytest.FixtureRequest) -> Iterator[ProcessContext]:
    """A pooled process context of 2 workers, closed after the test."""
    with ProcessContext(2, **request.param) as context:
        yield context


@pytest.mark.usefixtures("no_leaks")
def test_arrays_are_shared_both_ways_with_no_copy(ctx: ProcessContext) -> None:
    data = ctx.array(fill=np.arange(1000.0))
    out = ctx.zeros(1000)
    pids = ctx.zeros(1000, dtype=np.int64)

    def kernel(worker_id: int, index: int, value: float) -> None:
        out[index] = data[index] * 3  # reads the caller's array, writes the caller's array
        pids[index] = os.getpid()

    ctx.map(kernel, range(1000))
    np.testing.assert_array_equal(out, np.arange(1000.0) * 3)
    assert os.getpid() not in set(pids.tolist())
    # Views, slices and negative strides travel as handles too.
    reversed_view = out[::-2]
    ctx.map(lambda w, i, v: reversed_view.__setitem__(i, -1), range(len(reversed_view)))
    assert (out[1::2] == -1).all()
    assert (out[::2] == np.arange(0, 1000, 2) * 3).all()


def test_closures_lambdas_and_return_values(ctx: ProcessContext) -> None:
    offset = 10
    assert ctx.map(lambda w, i, v: v + offset, range(50)) == list(range(10, 60))
    values = ctx.map(lambda w, i, v: np.full(2, v), range(5))
    np.testing.assert_array_equal(np.stack(values), np.repeat(np.arange(5), 2).reshape(5, 2))


def test_kernel_error_keeps_its_type(ctx: ProcessContext) -> None:
    with pytest.raises(ZeroDivisionError):
        ctx.map(lambda w, i, v: 1 / 0, range(4))
    assert ctx.map(lambda w, i, v: v, range(4)) == [0, 1, 2, 3]  # the pool recovers


def test_unpicklable_kernel_is_a_clear_error(ctx: ProcessContext) -> None:
    lock = threading.Lock()
    with pytest.raises(TypeError, match="pickled to reach the workers"):
        ctx.map(lambda w, i, v: lock.locked(), range(4))


def test_per_worker_and_accumulator(ctx: ProcessContext) -> None:
    torn_down = ctx.zeros(2, dtype=np.int64)
    handle = pm.PerWorker(lambda w: w, teardown=lambda w: torn_down.__setitem__(w, os.getpid()))
    total = pm.Accumulator(4, context=ctx)

    def kernel(worker_id: int, index: int, value: int) -> None:
        assert handle.get() == worker_id
        total.local += value

    ctx.map(kernel, range(400))
    assert total.result().tolist() == [sum(range(400))] * 4
    assert os.getpid() not in torn_down.tolist()
    assert torn_down.any()


def test_progress_counts_in_shared_memory(ctx: ProcessContext) -> None:
    bar = ProgressBar(ctx, 300)
    counts = bar.counts  # the bar itself (tqdm) does not travel; its counters do
    with bar:
        ctx.map(lambda w, i, v: counts.__setitem__(w, counts[w] + 1), range(300))
    assert bar.done == 300
    assert ctx.map(lambda w, i, v: v, range(300), progress=True) == list(range(300))


def test_blas_limit_inside_pooled_workers(ctx: ProcessContext) -> None:
    from threadpoolctl import threadpool_info

    def threads(worker_id: int, index: int, value: int) -> int:
        np.dot(np.ones((4, 4)), np.ones((4, 4)))
        return max((p["num_threads"] for p in threadpool_info()), default=1)

    assert set(ctx.map(threads, range(4))) <= {ctx.blas_threads}


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_timeout_of_a_hung_kernel(method: str) -> None:
    with ProcessContext(2, start_method=method, persistent=True) as ctx:
        acc = pm.Accumulator(3, context=ctx)

        def kernel(worker_id: int, index: int, value: int) -> None:
            acc.local += 1
            if index == 5:
                time.sleep(1000)

        start = time.monotonic()
        with pytest.raises(MapTimeoutError):
            ctx.map(kernel, range(100), timeout=1.0)
        assert time.monotonic() - start < 5
        assert ctx.worker_pids() == []  # killed, and reaped
        assert ctx.map(lambda w, i, v: v, range(3)) == [0, 1, 2]  # a fresh pool


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("persistent", [False, True], ids=["cold", "warm"])
def test_a_dead_worker_under_forkserver(persistent: bool) -> None:
    with ProcessContext(2, start_method="forkserver", persistent=persistent) as ctx:
        finished = ctx.zeros(8, dtype=np.int64)

        def kernel(worker_id: int, index: int, value: int) -> None:
            if index == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60 if index > 3 else 0)
            finished[index] = 1

        start = time.monotonic()
        with pytest.raises(WorkerDiedError, match="SIGKILL") as info:
            ctx.map(kernel, range(8), shares=8)
        # Reported while the other worker was still in its 60 s element: it never
        # finished one after the death (a caller waiting for it would see it finish).
        assert finished[3:].tolist() == [0] * 5
        assert time.monotonic() - start < 30
        assert info.value.signal == signal.SIGKILL
        assert ctx.map(lambda w, i, v: v * 2, range(4)) == [0, 2, 4, 6]


def test_warm_workers_are_reused_and_see_new_arrays() -> None:
    with ProcessContext(2, persistent=True, start_method="forkserver") as ctx:
        first = ctx.map(lambda w, i, v: os.getpid(), range(64), shares=64)
        pids = ctx.worker_pids()
        assert len(pids) == 2
        assert set(first) <= set(pids)
        for size in (10, 1000, 10**5):
            late = ctx.zeros(size)  # allocated after the workers started
            ctx.map(lambda w, i, v, late=late: late.__setitem__(i, v + 1), range(size))
            np.testing.assert_array_equal(late, np.arange(1, size + 1))
        assert ctx.worker_pids() == pids
        children = {p.pid for p in psutil.Process().children(recursive=True)}
        assert set(pids) <= children
    assert ctx.worker_pids() == []
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_bad_start_method() -> None:
    with pytest.raises(ValueError, match="start_method"):
        ProcessContext(2, start_method="thread")


def test_cold_pools_leave_nothing_behind() -> None:
    before = resources()
    for method in ("forkserver", "spawn"):
        ctx = ProcessContext(2, start_method=method)
        out = ctx.zeros(10)
        ctx.map(lambda w, i, v, out=out: out.__setitem__(i, v), range(10))
        assert out.tolist() == list(range(10))
        assert ctx.worker_pids() == []
        del out
    assert resources() == before


@pytest.mark.usefixtures("no_leaks")
def test_ctrl_c_kills_the_warm_pool() -> None:
    main = threading.get_ident()
    timer = threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT))
    with ProcessContext(2, start_method="forkserver", persistent=True) as ctx:
        ctx.map(lambda w, i, v: None, range(2))
        pids = ctx.worker_pids()
        start = time.monotonic()
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                ctx.map(lambda w, i, v: time.sleep(30), range(8))
        finally:
            timer.cancel()
            timer.join()
        assert time.monotonic() - start < 5
        assert ctx.worker_pids() == []
        for pid in pids:
            assert not psutil.pid_exists(pid)
        assert ctx.map(lambda w, i, v: v, range(3)) == [0, 1, 2]


def test_arrays_of_a_fork_context_are_copied_with_a_warning() -> None:
    out = ProcessContext(2).zeros(4)  # anonymous memory: forked workers only
    with (
        ProcessContext(2, start_method="spawn") as ctx,
        pytest.warns(NotSharedWarning, match="Allocate it with the context that runs the map"),
    ):
        ctx.map(lambda w, i, v: out.__setitem__(i, v), range(4))
    assert out.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_busy_workers_die_with_the_caller(tmp_path: Path, method: str) -> None:
    """Killed caller: its workers (and the fork server) do not live on, even mid-kernel."""
    script = tmp_path / "orphan.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            from pashmap_shm import ProcessContext

            if __name__ == "__main__":
                ctx = ProcessContext(2, start_method={method!r}, persistent=True)
                ctx.map(lambda w, i, v: None, range(2))
                print("mapping", flush=True)
                ctx.map(lambda w, i, v: time.sleep(60), range(4))
            """
        )
    )
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "mapping"
        time.sleep(0.5)
        descendants = psutil.Process(child.pid).children(recursive=True)
        assert len(descendants) >= 2
        child.kill()
        child.wait()
        _, alive = psutil.wait_procs(descendants, timeout=10)
        assert not alive
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()  # type: ignore[union-attr]
