"""The conformance suite of pashmap.testing under 'dask', on the session's LocalCluster."""

from __future__ import annotations

from typing import Any

import pytest

from pashmap_dask import DaskContext

testing = pytest.importorskip("pashmap.testing", reason="the conformance suite is not installed")


class TestDaskContext(testing.ContextConformance):  # type: ignore[misc,name-defined]
    """Every promise of a context, kept by DaskContext (2 worker processes, 2 worker ids)."""

    @pytest.fixture
    def make_context(self, client: Any) -> Any:
        return lambda num_workers: DaskContext(num_workers, client=client)
