"""Fixtures shared by the whole suite."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
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


class _SessionCluster:
    """The Dask LocalCluster the tests share, made on first use.

    Its nannies and workers are children of the test process, which the leak and fault
    tests of the other packages count and kill: it is closed as soon as a test outside
    the packages that use it starts (and made again if a later test asks for it).
    """

    def __init__(self) -> None:
        self.cluster: Any = None
        self.in_use = False  # a test of a folder using it ran since it was last closed

    def get(self) -> Any:
        if self.cluster is None:
            distributed = pytest.importorskip("distributed")
            self.cluster = distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port: 8787 may be taken
                silence_logs=logging.ERROR,
            )
        return self.cluster

    def close(self) -> None:
        if "tests.dask.conftest" in sys.modules:
            sys.modules["tests.dask.conftest"].close_clients()
        if self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            cluster.close()


_session_cluster = _SessionCluster()
# Test folders whose tests use the shared cluster (directly or through context_name).
_USES_CLUSTER = ("core", "dask")


@pytest.fixture
def dask_cluster() -> Any:
    """A Dask LocalCluster of 2 single-threaded worker processes, shared between tests."""
    return _session_cluster.get()


@pytest.fixture(autouse=True)
def _note_cluster_folders(request: pytest.FixtureRequest) -> None:
    if Path(str(request.node.path)).parent.name in _USES_CLUSTER:
        _session_cluster.in_use = True
    elif signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        # dask_jobqueue installs a SIGINT handler of its own (SystemExit) when imported:
        # the other folders' Ctrl-C tests expect Python's KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Close the shared cluster before the first test of a folder that does not use it."""
    folder = Path(str(item.path)).parent.name
    if folder not in _USES_CLUSTER and _session_cluster.in_use:
        _session_cluster.close()
        _session_cluster.in_use = False
        _end_leftover_processes()


def _end_leftover_processes() -> None:
    """End what the Dask tests leave running: clusters embedded in contexts made by
    name (closed at interpreter exit otherwise), and their worker processes, which the
    leak and fault tests of the other folders would count as their own."""
    import gc

    import psutil

    gc.collect()
    if "distributed" in sys.modules:  # clients, then the clusters (nannies restart workers)
        from distributed.client import _global_clients
        from distributed.deploy.spec import SpecCluster

        for client in list(_global_clients.values()):
            with contextlib.suppress(Exception):
                client.close()
        for cluster in list(SpecCluster._instances):
            with contextlib.suppress(Exception):
                cluster.close()
    # multiprocessing's helpers, stopped the way it expects (it starts them again when
    # needed; killed, they would be reported as dead at their next use)
    import multiprocessing.forkserver
    from multiprocessing import resource_tracker

    with contextlib.suppress(Exception):
        multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]
    # dask_jobqueue installs a SIGINT handler of its own (SystemExit) when imported:
    # the other folders' Ctrl-C tests expect Python's KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    leftovers = psutil.Process().children(recursive=True)
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(leftovers, timeout=10)


def pytest_sessionfinish(session: pytest.Session) -> None:
    _session_cluster.close()


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
