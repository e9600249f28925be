"""Large return values (issue 15 §3): arrays travel out of band, straight from the
worker's array into the caller's, with one copy of the value on each side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pashmap import WorkerDiedError
from pashmap_shm import ProcessContext

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("pool_helper_processes")]

ROW = 1 << 17  # float64: 1 MiB, well above the out-of-band threshold


@pytest.fixture
def ctx(forked_or_warm: ProcessContext) -> ProcessContext:
    return forked_or_warm


def large(index: int) -> np.ndarray:
    return np.arange(ROW, dtype=np.float64) + index


def mixed(worker_id: int, index: int, value: int) -> Any:
    """Values of every kind, large and small, depending on the index."""
    kind = index % 8
    if kind == 0:
        return large(index)
    if kind == 1:
        return index
    if kind == 2:
        return None
    if kind == 3:  # several large arrays in one value, one of them Fortran-ordered
        return {"a": large(index), "b": np.asfortranarray(large(index).reshape(256, 512))}
    if kind == 4:  # a view with gaps (in band), and a small array
        return large(index)[::2], np.ones(3, np.int8) * index
    if kind == 5:  # read-only, another dtype
        out = (np.arange(ROW, dtype=np.int32) + index).astype(np.complex64)
        out.flags.writeable = False
        return out
    if kind == 6:  # a structured dtype
        out = np.zeros(ROW // 2, dtype=[("x", np.int64), ("y", np.float32)])
        out["x"] = index
        return out
    return f"text {index}", b"bytes" * index


def expected(index: int) -> Any:
    return mixed(0, index, index)


def assert_same(got: Any, want: Any) -> None:
    assert type(got) is type(want)
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        assert got.flags.writeable == want.flags.writeable
        if want.flags.f_contiguous and not want.flags.c_contiguous:
            assert got.flags.f_contiguous
            assert not got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
    elif isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            assert_same(got[key], want[key])
    elif isinstance(want, tuple):
        assert len(got) == len(want)
        for item, want_item in zip(got, want, strict=True):
            assert_same(item, want_item)
    else:
        assert got == want


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("shares", [None, 3], ids=["default-shares", "3-shares"])
def test_values_come_back_equal_and_in_order(ctx: ProcessContext, shares: int | None) -> None:
    """Large and small values mixed, several large ones per share, twice in a row."""
    for _ in range(2):
        values = ctx.map(mixed, range(40), shares=shares)
        assert len(values) == 40
        for index, value in enumerate(values):
            assert_same(value, expected(index))


@pytest.mark.usefixtures("no_leaks")
def test_returned_arrays_own_their_memory(ctx: ProcessContext) -> None:
    """Each returned array is writable and shares memory with no other value."""
    values = ctx.map(lambda w, i, v: large(i), range(6), shares=2)
    for index, value in enumerate(values):
        value += 1
        assert value[0] == index + 1
        assert not any(np.shares_memory(value, other) for other in values[index + 1 :])


def large_then_fail(worker_id: int, index: int, value: int) -> Any:
    if index % 4 == 3:
        time.sleep(0.01 * (index % 3))
        raise ValueError(f"element {index}")
    return np.full(4 * ROW, float(index))  # 4 MiB


@pytest.mark.usefixtures("no_leaks")
def test_a_kernel_error_mid_share_leaks_nothing(ctx: ProcessContext) -> None:
    """Errors while other values are streaming: the error, and nothing left behind."""
    for _ in range(5):
        with pytest.raises(ValueError, match="element"):
            ctx.map(large_then_fail, range(24), shares=4)
        assert ctx.map(lambda w, i, v: large(i), range(4))[3][0] == 3


def die_while_others_stream(worker_id: int, index: int, value: int) -> Any:
    if index == 5:
        time.sleep(0.02)
        os._exit(7)
    return np.full(16 * ROW, float(index))  # 16 MiB


@pytest.mark.usefixtures("no_leaks")
def test_a_worker_dying_mid_stream_leaks_nothing(ctx: ProcessContext) -> None:
    """A worker that dies while the caller reads another's value: a clean WorkerDiedError."""
    for _ in range(3):
        with pytest.raises(WorkerDiedError):
            ctx.map(die_while_others_stream, range(12), shares=6)


PEAKS = """
import json, os, resource, sys
import numpy as np
from pashmap_shm import ProcessContext

NBYTES = 200_000_000


def status(field, pid="self"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024


def kernel(worker_id, index, value):
    start = status("VmRSS")
    return np.full(NBYTES // 8, 2.0), start, os.getpid()


if __name__ == "__main__":
    how = sys.argv[1]
    if how == "fork":
        ctx = ProcessContext(2)
    elif how == "persistent":
        ctx = ProcessContext(2, persistent=True)
    else:
        ctx = ProcessContext(2, start_method="forkserver", persistent=True)
    ctx.map(lambda w, i, v: None, range(2))
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:  # 5: reset the peak RSS
        clear.write("5")
    [(array, worker_start, pid)] = ctx.map(kernel, range(1))
    caller = status("VmHWM") - before
    if how == "fork":
        worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    else:
        worker = status("VmHWM", pid)
    assert array.shape == (NBYTES // 8,) and array[-1] == 2.0
    ctx.close()
    print(json.dumps({"caller": caller / NBYTES, "worker": (worker - worker_start) / NBYTES}))
"""


@pytest.mark.parametrize("how", ["fork", "persistent", "forkserver"])
def test_one_copy_of_a_large_value_on_each_side(tmp_path: Path, how: str) -> None:
    """The peak memory of a 200 MB return: about the value itself, in the worker and in
    the caller (it was three times the value on each side when values were pickled)."""
    script = tmp_path / "peaks.py"
    script.write_text(textwrap.dedent(PEAKS))
    done = subprocess.run(
        [sys.executable, str(script), how], capture_output=True, text=True, timeout=150
    )
    assert done.returncode == 0, done.stderr
    peaks = json.loads(done.stdout.strip().splitlines()[-1])
    assert peaks["caller"] < 1.3, peaks
    assert peaks["worker"] < 1.3, peaks
