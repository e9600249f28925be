"""The ``xfel`` workload that pashmap-xfel adds to ``pashmap bench`` (pashmap_xfel.bench)."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

import pashmap as pm
from pashmap.bench.workloads import Sizes, all_workloads
from pashmap_xfel.bench import XFEL_WORKLOAD, mean_images, serial_mean_images
from pashmap_xfel.demo import AGIPD, write_demo_run

extra_data = pytest.importorskip("extra_data")


def test_xfel_workload_is_registered_for_pashmap_bench() -> None:
    workloads = {ep.name: ep.value for ep in entry_points(group="pashmap.workloads")}
    assert workloads.get("xfel") == "pashmap_xfel.bench:XFEL_WORKLOAD"
    assert all_workloads()["xfel"] is XFEL_WORKLOAD


@pytest.mark.parametrize("context_name", ["local", "processes", "threads"])
def test_xfel_workload_computes_the_serial_loops_mean_images(
    context_name: str, tmp_path: Path
) -> None:
    write_demo_run(str(tmp_path), trains=6, frames=4, seed=1)
    images = extra_data.RunDirectory(str(tmp_path))[AGIPD, "image.data"]
    kwargs = {} if context_name == "local" else {"num_workers": 2}
    with pm.use_context(context_name, **kwargs):
        out, seconds = mean_images(images)
    expected = np.stack([data.mean(axis=0) for _, data in images.trains()]).astype(np.float32)
    assert out.shape == (6, 2, 512, 128)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(serial_mean_images(images), expected)
    assert expected.std() > 0  # real pixel values, not an unwritten dataset's zeros
    assert seconds > 0


def test_xfel_workload_runs_and_checks_its_whole_result() -> None:
    # The workload raises RuntimeError unless every mean image equals the serial loop's.
    result = XFEL_WORKLOAD.run(Sizes(output_bytes=2**26))
    assert result["elements"] == 2**26 // 4 // (8 * 2 * 512 * 128 * 2)  # trains of 8 frames
    assert result["mb_per_s"] > 0
