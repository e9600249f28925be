"""Fork safety, proven with plain os.fork(), independently of any pashmap context.

A forked child that iterates a share must read through HDF5 files it opened itself, not
through the ones it inherited; the parent's files must stay open and readable. Results
come back through an mmap-backed (MAP_SHARED) numpy array, as a process context's
shared output arrays would.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pashmap_xfel import ExtraDataTarget, close_inherited_files
from pashmap_xfel.handles import handles_pid
from tests.xfel.conftest import AGIPD_SOURCE

pytest.importorskip("extra_data")

# Per child: [inherited handles found open, inherited handles closed after the share,
#             handles reopened by the child, close_inherited_files() on a second call]
STATUS_FIELDS = 4


def shared_array(shape: tuple[int, ...], dtype: Any) -> np.ndarray[Any, Any]:
    """An array in anonymous shared memory: a forked child's writes reach the parent."""
    count = int(np.prod(shape))
    buffer = mmap.mmap(-1, max(count * np.dtype(dtype).itemsize, 1), flags=mmap.MAP_SHARED)
    # The array keeps the mapping alive; it is unmapped when the array is collected.
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


def run_in_children(jobs: list[Callable[[], None]]) -> None:
    """Fork one child per job, wait for all; fail if any child failed."""
    pids = []
    for job in jobs:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                job()
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "a forked child failed"


def open_handles(key: Any) -> dict[str, Any]:
    return {fa.filename: fa._file for fa in key.files if fa._file is not None}


@pytest.mark.parametrize("children", [1, 2])
def test_forked_children_reopen_the_files_they_read(agipd_run: Any, children: int) -> None:
    key = agipd_run[AGIPD_SOURCE.format(0), "image.data"]
    target = ExtraDataTarget(key)
    expected = np.stack(
        [
            d.mean(axis=0) if len(d) else np.full((2, 512, 128), np.nan)
            for _, _, d in target.iterate(range(len(key.train_ids)))
        ]
    )
    inherited = open_handles(key)
    assert inherited, "the parent has read the files, so they are open"
    shares = target.split(children)

    out = shared_array((len(key.train_ids), 2, 512, 128), np.float64)
    status = shared_array((children, STATUS_FIELDS), np.int64)
    out[:] = np.nan

    def job(k: int) -> Callable[[], None]:
        def read_share() -> None:
            status[k, 0] = sum(h.id.valid for h in inherited.values())
            for index, _, data in target.iterate(shares[k]):
                if len(data):
                    out[index] = data.mean(axis=0)
            status[k, 1] = sum(not h.id.valid for h in inherited.values())
            reopened = open_handles(key)
            status[k, 2] = sum(
                reopened[name] is not inherited.get(name) and reopened[name].id.valid
                for name in reopened
            )
            status[k, 3] = close_inherited_files()

        return read_share

    run_in_children([job(k) for k in range(children)])

    np.testing.assert_array_equal(out, expected)
    for k in range(children):
        found, closed, reopened, again = status[k]
        assert found == len(inherited)
        assert closed == len(inherited), "the child closed every inherited handle"
        assert reopened >= 1, "the child read through files it opened itself"
        assert again == 0, "closing is done once per process"

    # The parent's own handles were not touched by the children.
    assert open_handles(key) == inherited
    assert all(h.id.valid for h in inherited.values())
    again = np.stack(
        [
            d.mean(axis=0) if len(d) else np.full((2, 512, 128), np.nan)
            for _, _, d in target.iterate(range(len(key.train_ids)))
        ]
    )
    np.testing.assert_array_equal(again, expected)


def test_nothing_is_closed_in_the_process_that_opened_the_files(agipd_run: Any) -> None:
    key = agipd_run[AGIPD_SOURCE.format(1), "image.data"]
    list(ExtraDataTarget(key).iterate(range(2)))
    before = open_handles(key)
    assert close_inherited_files() == 0
    assert handles_pid() == os.getpid()
    assert open_handles(key) == before


def test_a_grandchild_closes_what_its_parent_reopened(agipd_run: Any) -> None:
    key = agipd_run[AGIPD_SOURCE.format(1), "image.data"]
    target = ExtraDataTarget(key)
    list(target.iterate(range(2)))

    counts = shared_array((2,), np.int64)

    def child() -> None:
        list(target.iterate(range(2)))  # closes inherited, reopens its own
        counts[0] = len(open_handles(key))

        def grandchild() -> None:
            counts[1] = close_inherited_files()

        run_in_children([grandchild])

    run_in_children([child])
    assert counts[0] >= 1
    assert counts[1] >= counts[0]


def test_files_opened_for_writing_are_left_alone(agipd_run: Any, tmp_path: Any) -> None:
    h5py = pytest.importorskip("h5py")
    key = agipd_run[AGIPD_SOURCE.format(1), "image.data"]
    list(ExtraDataTarget(key).iterate(range(1)))
    with h5py.File(tmp_path / "out.h5", "w") as output:
        output["x"] = np.arange(3)
        valid = shared_array((1,), np.int64)

        def child() -> None:
            close_inherited_files()
            valid[0] = output.id.valid

        run_in_children([child])
        assert valid[0] == 1
        output["y"] = np.arange(4)
    with h5py.File(tmp_path / "out.h5", "r") as check:
        assert sorted(check) == ["x", "y"]


def test_workers_of_the_processes_context_read_through_their_own_files(agipd_run: Any) -> None:
    pytest.importorskip("pashmap_shm", reason="the 'processes' context is not installed")
    import pashmap as pm

    key = agipd_run[AGIPD_SOURCE.format(0), "image.data"]
    list(ExtraDataTarget(key).iterate(range(2)))  # the caller has the files open
    inherited = open_handles(key)

    def kernel(worker_id: int, index: int, train_id: int, data: Any) -> tuple[int, int, bool]:
        reopened = open_handles(key)
        own = all(reopened[name] is not inherited.get(name) for name in reopened)
        return os.getpid(), handles_pid(), own and bool(reopened)

    with pm.use_context("processes", num_workers=2):
        seen = pm.map(kernel, key)
    assert all(pid != os.getpid() and owner == pid and own for pid, owner, own in seen)
    assert open_handles(key) == inherited
