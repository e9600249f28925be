"""The ``xfel`` workload that pashmap-xfel adds to ``pashmap bench``."""

from __future__ import annotations

from pashmap.workloads import Sizes, all_workloads


def test_xfel_workload_is_registered_and_runs() -> None:
    workload = all_workloads()["xfel"]
    result = workload.run(Sizes(output_bytes=2**24))
    assert result["seconds"] > 0
    assert result["elements"] >= 4
    assert result["mb_per_s"] > 0
