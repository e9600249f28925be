"""Fixtures for the pashmap-shm tests: contexts to run under, and leak checks."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
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
        "fds": len(os.listdir("/proc/self/fd")),
        "dev_shm": dev_shm_in_use(),
        "shared_mappings": shared_mappings(),
    }


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves a child, a file descriptor or shared memory behind."""
    before = resources()
    yield
    after = resources()
    assert after == before
