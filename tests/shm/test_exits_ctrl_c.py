"""Two Ctrl-Cs in quick succession give one clean traceback (issue 13, item 20).

The first SIGINT raises ``KeyboardInterrupt`` in the map, which then stops its workers;
a second one arriving meanwhile was raised again from inside that cleanup (when SIGINT
was unblocked, or through another thread), chained to the first ("During handling of
the above exception, another exception occurred"), in most runs. The map now finishes
stopping its workers and raises the first interrupt alone.

A real script is interrupted from outside, with the gaps between the two signals that
a hurried user makes; it reports what is left once the map has raised (it ignores
SIGINT from then on: later signals are not the map's), then lets the interrupt through.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

RUNS = 12
GAPS = (0.0, 0.0005, 0.001, 0.002)

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    import psutil
    from pashmap_shm import ProcessContext

    def own_dev_shm():
        used = {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
                if "/dev/shm/" in line}
        for fd in os.listdir("/proc/self/fd"):
            try:
                link = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if link.startswith("/dev/shm/"):
                used.add(link)
        return sorted(used)

    ctx = ProcessContext(2, persistent=sys.argv[1] == "persistent")
    out = ctx.zeros(8)

    def kernel(worker_id, index, value):
        out[index] = 1
        time.sleep(30)

    print("mapping", flush=True)
    try:
        ctx.map(kernel, range(8))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        children = psutil.Process().children(recursive=True)
        blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, ())
        print("interrupted", len(children), blocked, own_dev_shm(), flush=True)
        raise
    """
)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["fork", "persistent"])
def test_two_quick_ctrl_c_give_one_traceback(tmp_path: Path, kind: str) -> None:
    script = tmp_path / "two_interrupts.py"
    script.write_text(SCRIPT)
    for run in range(RUNS):
        gap = GAPS[run % len(GAPS)]
        child = subprocess.Popen(
            [sys.executable, str(script), kind],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "mapping"
            workers: list[psutil.Process] = []
            for _ in range(1000):
                workers = psutil.Process(child.pid).children()
                if len(workers) >= 2:
                    break
                time.sleep(0.01)
            assert len(workers) >= 2
            time.sleep(0.1)  # let them reach the kernel
            child.send_signal(signal.SIGINT)
            if gap:
                time.sleep(gap)
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        where = f"run {run} ({kind}, {gap * 1000:g} ms apart):\n{err}"
        assert err.count("Traceback (most recent call last)") == 1, where
        assert err.count("KeyboardInterrupt") == 1, where
        assert "During handling of the above exception" not in err, where
        assert err.rstrip().endswith("KeyboardInterrupt"), where
        # No worker left, SIGINT not left blocked, no /dev/shm file held.
        assert out.strip() == "interrupted 0 False []", where
        assert child.returncode == -signal.SIGINT, where
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, where
