"""Fixtures for the pashmap-shm tests: contexts to run under, and leak checks."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

import pashmap_shm
from pashmap.contexts import BaseContext
from pashmap_shm import ProcessContext, ThreadContext

KINDS = {"threads": ThreadContext, "processes": ProcessContext}


@pytest.fixture(params=["threads", "processes"])
def kind(request: pytest.FixtureRequest) -> str:
    """The name of a pashmap-shm context."""
    return str(request.param)


@pytest.fixture(params=[1, 2, 4], ids=lambda n: f"{n}w")
def num_workers(request: pytest.FixtureRequest) -> int:
    """A worker count."""
    return int(request.param)


@pytest.fixture
def context(kind: str, num_workers: int) -> Iterator[BaseContext]:
    """A context of each kind with 1, 2 and 4 workers."""
    with KINDS[kind](num_workers) as ctx:
        yield ctx


def wait_until(condition: Callable[[], bool], seconds: float = 60.0) -> bool:
    """Poll ``condition`` until it holds; False after ``seconds`` (only a hang gets there)."""
    give_up = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.001)
    return True


def shared_mappings() -> int:
    """The number of shared anonymous mappings of this process (our arrays)."""
    maps = Path("/proc/self/maps").read_text().splitlines()
    return sum(1 for line in maps if line.endswith("/dev/zero (deleted)"))


def dev_shm_in_use() -> list[str]:
    """The /dev/shm files this process maps or holds open.

    Other programs on the machine create and delete /dev/shm files at any time, so the
    directory listing itself says nothing about this process.
    """
    maps = Path("/proc/self/maps").read_text().splitlines()
    used = {line.split(maxsplit=5)[-1] for line in maps if "/dev/shm/" in line}
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("/dev/shm/"):
            used.add(link)
    return sorted(used)


def resources() -> dict[str, object]:
    """What a map must not leak: children, file descriptors, shared memory."""
    gc.collect()
    pashmap_shm.clear_cache()
    return {
        "children": sorted(p.pid for p in psutil.Process().children(recursive=True)),
        "fds": _own_fds(),
        "dev_shm": dev_shm_in_use(),
        "shared_mappings": shared_mappings(),
    }


def _own_fds() -> int:
    """This process's file descriptors, less TCP sockets and event-loop descriptors.

    A session-long Dask client opens and closes TCP connections and keeps an event loop
    in threads of its own; the contexts tested here use pipes, Unix sockets and memfds.
    """
    tcp = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        tcp.update(row.split()[9] for row in rows if len(row.split()) > 9)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("anon_inode:"):
            continue
        if link.startswith("socket:[") and link[8:-1] in tcp:
            continue
        count += 1
    return count


@pytest.fixture(
    params=[
        pytest.param({}, id="fork"),  # workers forked per map (the default)
        pytest.param({"persistent": True}, id="persistent"),
        pytest.param({"start_method": "forkserver", "persistent": True}, id="forkserver"),
    ]
)
def forked_or_warm(request: pytest.FixtureRequest) -> Iterator[ProcessContext]:
    """A 2-worker ProcessContext of each way its workers run: forked per map, warm
    (forked once), warm from the fork server (use with ``pool_helper_processes``)."""
    context = ProcessContext(2, **request.param)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves a child, a file descriptor or shared memory behind."""
    before = resources()
    yield
    after = resources()
    assert after == before


@pytest.fixture(scope="module")
def pool_helper_processes() -> Iterator[None]:
    """Run multiprocessing's long-lived helpers (fork server, resource tracker) for one
    module only, stopped at its end: other modules count child processes and must not
    see them. Use with ``pytestmark = pytest.mark.usefixtures("pool_helper_processes")``."""
    import multiprocessing
    import multiprocessing.forkserver
    from multiprocessing import resource_tracker

    multiprocessing.get_context("forkserver").set_forkserver_preload(["pashmap_shm.worker"])
    multiprocessing.forkserver.ensure_running()
    resource_tracker.ensure_running()
    yield
    multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]
    resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]
