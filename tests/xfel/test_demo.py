"""The European XFEL section of ``pashmap demo`` and its mock runs (also the benchmark's)."""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any

import numpy as np
import pytest

import pashmap as pm
from pashmap_xfel.demo import run_demo, write_compressed_copy
from tests.xfel.conftest import AGIPD_SOURCE, AGIPD_TRAINS
from tests.xfel.reference import LOCAL, context, fingerprint_kernel

extra_data = pytest.importorskip("extra_data")


def test_demo_is_registered_for_pashmap_demo() -> None:
    demos = {ep.name: ep.value for ep in entry_points(group="pashmap.demos")}
    assert demos.get("xfel") == "pashmap_xfel.demo:run_demo"


def test_demo_verifies_every_context(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo(workers=2) == 0
    out = capsys.readouterr().out
    assert "local" in out
    assert "WRONG" not in out
    assert "results verified" in out


# ------------------------------------------------ write_compressed_copy (the benchmark's)
@pytest.fixture(scope="module", params=[("gzip", 1), ("lzf", None)], ids=["gzip", "lzf"])
def compressed_copy(
    request: pytest.FixtureRequest, agipd_run: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, list[str], str]:
    compression, level = request.param
    source = os.path.dirname(agipd_run.files[0].filename)
    destination = tmp_path_factory.mktemp(f"compressed-{compression}")
    names = write_compressed_copy(source, str(destination), compression, level)
    return extra_data.RunDirectory(str(destination), parallelize=False), names, compression


def test_the_copy_compresses_the_data_and_keeps_the_layout(
    agipd_run: Any, compressed_copy: tuple[Any, list[str], str]
) -> None:
    run, names, compression = compressed_copy
    path = f"INSTRUMENT/{AGIPD_SOURCE.format(0)}/image/data"
    assert f"RAW-R0100-AGIPD00-S00000.h5:/{path}" in names
    assert not any(":/INDEX/" in name or ":/METADATA/" in name for name in names)
    original = agipd_run[AGIPD_SOURCE.format(0), "image.data"].files[0].file[path]
    copied = run[AGIPD_SOURCE.format(0), "image.data"].files[0].file[path]
    assert copied.compression == compression
    assert original.compression is None
    assert (copied.shape, copied.dtype, copied.chunks, copied.maxshape) == (
        original.shape,
        original.dtype,
        original.chunks,
        original.maxshape,
    )


def test_extra_data_opens_the_copy_as_the_original(
    agipd_run: Any, compressed_copy: tuple[Any, list[str], str]
) -> None:
    run = compressed_copy[0]
    assert run.all_sources == agipd_run.all_sources
    assert run.train_ids == agipd_run.train_ids
    for source in sorted(agipd_run.all_sources):
        assert run[source].keys() == agipd_run[source].keys()


@pytest.mark.parametrize(("name", "num_workers"), [LOCAL, ("processes", 2)])
def test_pashmap_maps_the_copy_to_the_original_result(
    agipd_run: Any, compressed_copy: tuple[Any, list[str], str], name: str, num_workers: int
) -> None:
    """Every key of every train, and the benchmark's mean image, equal the original's."""
    run = compressed_copy[0]
    with context(name, num_workers):
        assert pm.map(fingerprint_kernel, run) == pm.map(fingerprint_kernel, agipd_run)
        means = []
        for images in (run, agipd_run):
            key = images[AGIPD_SOURCE.format(3), "image.data"]
            out = pm.array((len(key.train_ids), 2, 512, 128), np.float32, fill=np.nan)

            def mean_image(
                worker_id: int, index: int, train_id: int, data: Any, out: Any = out
            ) -> None:
                if len(data):
                    out[index] = data.mean(axis=0)

            pm.map(mean_image, key)
            means.append(out)
    np.testing.assert_array_equal(means[0], means[1])
    # module 3 missed one train: no mean image for it
    assert np.isfinite(means[0]).all(axis=(1, 2, 3)).sum() == AGIPD_TRAINS - 1


def test_the_copy_rejects_unknown_filters(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="'gzip' or 'lzf'"):
        write_compressed_copy(str(tmp_path), str(tmp_path), "zstd")
    with pytest.raises(ValueError, match="gzip only"):
        write_compressed_copy(str(tmp_path), str(tmp_path), "lzf", level=3)
