"""Workers that die, Ctrl-C, and what is left behind: never a hang, never a leak."""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import pashmap as pm
from pashmap import WorkerDiedError, WorkerError
from pashmap_shm import ProcessContext

from .conftest import resources

pytestmark = pytest.mark.timeout(60)

KILL_LOOP = int(os.environ.get("PASHMAP_KILL_LOOP", "30"))


def kill_myself_at(victim: int, sig: int = signal.SIGKILL, sleep: float = 30.0):  # type: ignore[no-untyped-def]
    """A kernel whose worker is killed by ``sig`` at index ``victim``; others sleep."""

    def kernel(worker_id: int, index: int, value: int) -> None:
        if index == victim:
            faulthandler.disable()  # keep pytest's crash report out of the test output
            os.kill(os.getpid(), sig)
        time.sleep(sleep if index > victim else 0)

    return kernel


@pytest.mark.usefixtures("no_leaks")
def test_sigkill_of_a_worker_raises_worker_died_error() -> None:
    with ProcessContext(2) as ctx:
        start = time.monotonic()
        with pytest.raises(
            WorkerDiedError, match=r"worker \d \(pid \d+\) was killed by SIGKILL"
        ) as info:
            ctx.map(kill_myself_at(3), range(8), shares=8)
        elapsed = time.monotonic() - start
    error = info.value
    assert isinstance(error, WorkerError)
    assert isinstance(error, pm.PashmapError)
    assert error.signal == signal.SIGKILL
    assert error.exitcode is None
    assert error.worker_id in (0, 1)
    assert error.pid is not None
    assert not psutil.pid_exists(error.pid) or psutil.Process(error.pid).ppid() != os.getpid()
    # The other worker sleeps 30 s per element: the error did not wait for it.
    assert elapsed < 10


@pytest.mark.usefixtures("no_leaks")
def test_sigkill_mid_map_in_a_loop() -> None:
    """Repeated SIGKILLs never hang (set PASHMAP_KILL_LOOP=100 for the long run)."""
    with ProcessContext(2) as ctx:
        out = ctx.zeros(64)
        for attempt in range(KILL_LOOP):
            victim = attempt % 64

            def kernel(worker_id: int, index: int, value: int, victim: int = victim) -> None:
                if index == victim:
                    os.kill(os.getpid(), signal.SIGKILL)
                out[index] = value

            with pytest.raises(WorkerDiedError, match="SIGKILL"):
                ctx.map(kernel, range(64))
        assert ctx.map(lambda wid, i, v: v, range(4)) == [0, 1, 2, 3]


@pytest.mark.usefixtures("no_leaks")
def test_sigkill_from_outside() -> None:
    """Another process kills a worker (like the OOM killer) while all are busy."""
    me = psutil.Process()

    def killer() -> None:
        for _ in range(500):
            children = me.children()
            if children:
                time.sleep(0.05)
                children[-1].kill()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        with ProcessContext(2) as ctx, pytest.raises(WorkerDiedError, match="SIGKILL"):
            ctx.map(lambda wid, i, v: time.sleep(20), range(4))
    finally:
        thread.join()


@pytest.mark.usefixtures("no_leaks")
def test_os_exit_in_the_kernel() -> None:
    def kernel(worker_id: int, index: int, value: int) -> None:
        if index == 2:
            os._exit(7)

    with (
        ProcessContext(2) as ctx,
        pytest.raises(WorkerDiedError, match="exited with status 7") as info,
    ):
        ctx.map(kernel, range(6))
    assert info.value.exitcode == 7
    assert info.value.signal is None


@pytest.mark.usefixtures("no_leaks")
def test_os_exit_zero_is_still_a_death() -> None:
    with ProcessContext(1) as ctx, pytest.raises(WorkerDiedError, match="status 0"):
        ctx.map(lambda wid, i, v: os._exit(0), range(3))


@pytest.mark.usefixtures("no_leaks")
def test_segfault_in_the_kernel() -> None:
    def kernel(worker_id: int, index: int, value: int) -> None:
        if index == 1:
            faulthandler.disable()  # keep pytest's crash report out of the test output
            ctypes.string_at(0)  # reads address 0: SIGSEGV

    with ProcessContext(2) as ctx, pytest.raises(WorkerDiedError, match="SIGSEGV") as info:
        ctx.map(kernel, range(4))
    assert info.value.signal == signal.SIGSEGV


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGABRT])
def test_other_fatal_signals(sig: int) -> None:
    with ProcessContext(2) as ctx, pytest.raises(WorkerDiedError, match=signal.Signals(sig).name):
        ctx.map(kill_myself_at(0, sig, sleep=0), range(4))


@pytest.mark.usefixtures("no_leaks")
def test_no_leaks_after_normal_and_failing_maps() -> None:
    with ProcessContext(2) as ctx:
        for _ in range(5):
            out = ctx.zeros(1000)
            ctx.map(lambda wid, i, v, out=out: out.__setitem__(i, v), range(1000))
            with pytest.raises(ZeroDivisionError):
                ctx.map(lambda wid, i, v: 1 / 0, range(10))


def test_memory_is_freed_when_the_array_is_dropped() -> None:
    import pashmap_shm

    before = resources()["shared_mappings"]
    pashmap_shm.set_cache_limit(0)
    try:
        out = ProcessContext(2).zeros(2**20)
        assert resources()["shared_mappings"] == before + 1
        view = out[10:20]
        del out
        assert resources()["shared_mappings"] == before + 1  # the view keeps it
        del view
        assert resources()["shared_mappings"] == before
    finally:
        pashmap_shm.set_cache_limit(2**30)


SIGINT_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import psutil
    import pashmap as pm

    pm.set_default_context("processes", num_workers=2)
    out = pm.zeros(8)

    def kernel(worker_id, index, value):
        out[index] = os.getpid()
        time.sleep(30)

    try:
        print("mapping", flush=True)
        pm.map(kernel, range(8))
    except KeyboardInterrupt:
        children = psutil.Process().children(recursive=True)
        print("KeyboardInterrupt", [int(p) for p in out if p], len(children), flush=True)
    """
)


@pytest.mark.parametrize("group", [False, True], ids=["caller-only", "process-group"])
def test_ctrl_c_interrupts_the_map(tmp_path: Path, group: bool) -> None:
    """SIGINT to the caller (or, as a terminal does, to its whole process group)."""
    script = tmp_path / "interrupt.py"
    script.write_text(SIGINT_SCRIPT)
    child = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "mapping"
        workers: list[psutil.Process] = []
        for _ in range(500):
            workers = psutil.Process(child.pid).children()
            if len(workers) == 2:
                break
            time.sleep(0.01)
        assert len(workers) == 2
        time.sleep(0.2)  # let them reach the kernel
        sent = time.monotonic()
        if group:
            os.killpg(child.pid, signal.SIGINT)
        else:
            child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=20)
        elapsed = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    word, *rest = out.split(maxsplit=1)
    assert word == "KeyboardInterrupt", out + err
    assert rest[0].strip().endswith(" 0")  # no child left when the exception arrived
    for worker in workers:
        assert not worker.is_running()
    assert elapsed < 10  # not the 30 s of the sleeping kernels


def test_workers_die_with_the_caller(tmp_path: Path) -> None:
    """If the caller is killed, its workers do not live on as orphans."""
    script = tmp_path / "orphan.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            import pashmap as pm
            pm.set_default_context("processes", num_workers=2)
            print("mapping", flush=True)
            pm.map(lambda wid, i, v: time.sleep(30), range(4))
            """
        )
    )
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "mapping"
        workers: list[psutil.Process] = []
        for _ in range(500):
            workers = psutil.Process(child.pid).children()
            if len(workers) == 2:
                break
            time.sleep(0.01)
        assert len(workers) == 2
        child.kill()
        child.wait()
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()  # type: ignore[union-attr]


def test_shared_arrays_survive_a_dead_worker() -> None:
    with ProcessContext(2) as ctx:
        out = ctx.zeros(10)
        with pytest.raises(WorkerDiedError):
            ctx.map(kill_myself_at(9, sleep=0), range(10), shares=1)
        out[:] = 1
        ctx.map(lambda wid, i, v: out.__setitem__(i, 2), range(10))
    np.testing.assert_array_equal(out, 2)


def test_dead_worker_noticed_while_a_grandchild_holds_its_pipe() -> None:
    """No end of file arrives (a process the kernel forked keeps the pipe open)."""
    with ProcessContext(2) as ctx:
        grandchildren = ctx.zeros(4, dtype=np.int64)

        def kernel(worker_id: int, index: int, value: int) -> None:
            if index == 0:
                pid = os.fork()
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                grandchildren[index] = pid
                faulthandler.disable()
                os.kill(os.getpid(), signal.SIGKILL)

        try:
            start = time.monotonic()
            with pytest.raises(WorkerDiedError, match="SIGKILL"):
                ctx.map(kernel, range(4), shares=4)
            assert time.monotonic() - start < 10
        finally:
            for pid in grandchildren:
                if pid:
                    os.kill(int(pid), signal.SIGKILL)


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_ctrl_c_in_process(kind: str) -> None:
    """SIGINT delivered to the caller's main thread while it waits for the map."""
    main = threading.get_ident()
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
    pm.set_default_context(kind, num_workers=2)
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            pm.map(lambda wid, i, v: time.sleep(0.5), range(8))
    finally:
        timer.cancel()
        timer.join()
    # Processes: at once. Threads cannot be interrupted: they finish the element at hand.
    assert time.monotonic() - start < 3
    assert psutil.Process().children() == []


@pytest.mark.usefixtures("no_leaks")
def test_sigchld_ignored_by_the_program() -> None:
    """With SIGCHLD ignored, the system reaps workers itself; maps still work."""
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        with ProcessContext(2) as ctx:
            assert ctx.map(lambda wid, i, v: v * 2, range(50)) == [v * 2 for v in range(50)]
            with pytest.raises(WorkerDiedError):
                ctx.map(kill_myself_at(3, sleep=0), range(8))
    finally:
        signal.signal(signal.SIGCHLD, previous)


def test_the_callers_signal_mask_is_kept() -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        ProcessContext(2).map(lambda wid, i, v: None, range(10))
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
