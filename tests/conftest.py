"""Fixtures shared by the whole suite."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pashmap import default, registry
from tests.cgroups import make_child_cgroup


@pytest.fixture(autouse=True)
def _restore_default_context() -> Iterator[None]:
    """Every test starts and ends with the initial default context."""
    before = default._default
    yield
    default._default = before


@pytest.fixture(params=registry.context_names())
def context_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each installed context kind by name: 'local', 'threads'/'processes' with pashmap-shm,
    'dask' with pashmap-dask (pointed at the session's cluster through Dask's config)."""
    name = str(request.param)
    if name != "dask":
        yield name
        return
    import dask

    cluster = request.getfixturevalue("dask_cluster")
    with dask.config.set({"scheduler-address": cluster.scheduler_address}):
        yield name


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    """A Dask LocalCluster of 2 single-threaded worker processes, for the whole session."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: 8787 may be taken
        silence_logs=logging.ERROR,
    ) as cluster:
        yield cluster


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Forget cached entry-point discoveries before and after the test."""
    registry.registrations.cache_clear()
    registry.target_factories.cache_clear()
    yield
    registry.registrations.cache_clear()
    registry.target_factories.cache_clear()


@pytest.fixture
def child_cgroup(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A new cgroup (v1) of the controller given as the parameter, removed after the test;
    the test is skipped when none can be made here (see tests/cgroups.py)::

        @pytest.mark.parametrize("child_cgroup", ["memory"], indirect=True)
    """
    yield from make_child_cgroup(str(request.param))
