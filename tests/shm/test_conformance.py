"""The conformance suite (pashmap.testing) on every pashmap-shm context and mode.

Threads; processes forked at each map; forkserver and spawn workers started at each
map; warm (persistent) workers; and the warm workers of a ``with ProcessContext()``
block. Two workers each, as on CI's 2-CPU machines.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from pashmap.testing import ContextConformance, ContextFactory
from pashmap_shm import ProcessContext, ThreadContext

pytestmark = [
    pytest.mark.timeout(60),
    # forkserver/spawn workers and the resource tracker, stopped at the end of the module
    pytest.mark.usefixtures("pool_helper_processes"),
]


class TestThreads(ContextConformance):
    @pytest.fixture
    def make_context(self) -> ContextFactory:
        return lambda num_workers: ThreadContext(num_workers)


class TestProcesses(ContextConformance):
    """Workers forked at each map: the default ProcessContext."""

    @pytest.fixture
    def make_context(self) -> ContextFactory:
        return lambda num_workers: ProcessContext(num_workers)


class TestProcessesWarmBlock(ContextConformance):
    """Each test inside ``with ProcessContext() as ctx:``, whose maps go to warm workers."""

    use_with_block: ClassVar[bool] = True

    @pytest.fixture
    def make_context(self) -> ContextFactory:
        return lambda num_workers: ProcessContext(num_workers)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"start_method": "forkserver"}, id="forkserver"),
        pytest.param({"start_method": "spawn"}, id="spawn"),
        pytest.param({"persistent": True}, id="fork-persistent"),
    ],
)
class TestPooledProcesses(ContextConformance):
    """Workers not forked at the map: the kernel and target travel pickled."""

    @pytest.fixture
    def make_context(self, options: dict[str, Any]) -> ContextFactory:
        return lambda num_workers: ProcessContext(num_workers, **options)
