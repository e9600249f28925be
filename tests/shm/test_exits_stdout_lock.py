"""A worker that reported DONE cannot keep the map waiting (issue 13, item 8).

A thread of the caller that is writing to ``sys.stdout`` when a worker is forked holds
the lock of stdout's buffer, and in the child that lock is never released: the worker
runs its shares and reports DONE, then blocks forever in its last ``sys.stdout.flush()``.
The caller waited for it with a blocking ``waitpid``, with SIGINT blocked and no deadline,
so the map never returned, ignoring ``timeout=`` and Ctrl-C alike. It now gives such a
worker a bounded time to leave and then kills it.

The script below makes that happen at every map: stdout is a pipe that nobody reads
(full), and just before each fork a thread starts writing to it, which holds the lock
while it waits for room in the pipe. After the map the pipe is drained, so the thread
finishes and the next map can set it up again. A Ctrl-C while the caller waits for the
worker to leave ends the map at once, with ``KeyboardInterrupt``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

LOOPS = 8

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    from pathlib import Path
    import psutil
    from pashmap_shm import ProcessContext

    def report(*words):
        os.write(2, (" ".join(map(str, words)) + "\\n").encode())

    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.set_blocking(read_end, False)

    def fill_stdout_pipe():
        os.set_blocking(1, False)
        try:
            while True:
                os.write(1, b"x" * 4096)
        except BlockingIOError:
            pass
        os.set_blocking(1, True)

    armed = []
    writers = []

    def blocked_writer():
        armed.append(threading.get_native_id())
        sys.stdout.write("y" * 100_000)  # holds the buffer's lock until the pipe is read
        sys.stdout.flush()

    def before_fork():
        if armed:
            return
        writer = threading.Thread(target=blocked_writer)
        writers.append(writer)
        writer.start()
        while not armed:
            time.sleep(0.001)
        # Wait until it waits for room in the pipe, holding the lock (where the kernel
        # does not tell what a thread waits for, give it a moment).
        wchan = Path(f"/proc/self/task/{armed[0]}/wchan")
        give_up = time.monotonic() + 2
        while "pipe" not in wchan.read_text() and time.monotonic() < give_up:
            time.sleep(0.001)

    timers = []

    def after_fork():
        # Ctrl-C once the worker runs: while the caller waits for it to leave.
        if sys.argv[2] == "ctrl-c":
            timers.append(threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)))
            timers[-1].start()

    os.register_at_fork(before=before_fork, after_in_parent=after_fork)
    ctx = ProcessContext(1)
    for attempt in range(int(sys.argv[1])):
        fill_stdout_pipe()
        armed.clear()
        timeout = None if attempt % 2 else 60
        if sys.argv[2] == "ctrl-c":
            try:
                values = ctx.map(lambda wid, i, v: v * 2, range(4), timeout=timeout)
                timers[-1].join()  # (should the map have ended first)
            except KeyboardInterrupt:
                values = "KeyboardInterrupt"
            timers[-1].join()
        else:
            values = ctx.map(lambda wid, i, v: v * 2, range(4), timeout=timeout)
        children = psutil.Process().children(recursive=True)
        report("map", attempt, values, len(children))
        while writers[-1].is_alive():  # drain stdout: the writer finishes
            try:
                os.read(read_end, 1 << 16)
            except BlockingIOError:
                time.sleep(0.001)
        writers[-1].join()
    report("end")
    os._exit(0)
    """
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["returns", "ctrl-c"])
def test_map_ends_while_a_thread_holds_the_stdout_lock(tmp_path: Path, how: str) -> None:
    """The map returns, or raises KeyboardInterrupt for a Ctrl-C while it waits."""
    script = tmp_path / "stdout_lock.py"
    script.write_text(SCRIPT)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    try:
        done = subprocess.run(
            [sys.executable, str(script), str(LOOPS), how],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=90,  # before the fix: the first map never returned
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the map never returned: {exc.stderr!r}")
    lines = done.stderr.splitlines()
    assert done.returncode == 0, done.stderr
    values = "[0, 2, 4, 6]" if how == "returns" else "KeyboardInterrupt"
    assert lines == [f"map {n} {values} 0" for n in range(LOOPS)] + ["end"], done.stderr
