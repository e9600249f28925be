"""The front door under 'dask': pashmap info shows the cluster, pashmap demo runs on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dask
import pytest

from pashmap.cli import main


@pytest.fixture
def dask_by_config(dask_cluster: Any) -> Iterator[None]:
    """'dask' by name reaches the session's cluster (Dask's scheduler-address)."""
    with dask.config.set({"scheduler-address": dask_cluster.scheduler_address}):
        yield


def test_info_shows_the_dask_cluster(
    dask_by_config: None, dask_cluster: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "num_workers=8" in line)
    assert line.split()[0] == "dask"
    assert dask_cluster.scheduler_address in line
    assert "2 workers, 2 threads" in line
    assert "pashmap_dask.context:DaskContext" in out


def test_demo_runs_and_verifies_under_dask(
    dask_by_config: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--size", "20000"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("dask "))
    assert line.split()[-1] == "ok"
    assert "all results verified" in out
