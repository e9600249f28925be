"""The ``xfel`` workload of ``pashmap bench``: per-train mean images over a mock EuXFEL run.

Benchmark code, apart from the runtime: no other module of pashmap-xfel imports this one.
Registered in the ``pashmap.workloads`` entry-point group, so ``pashmap bench`` runs it
whenever pashmap-xfel is installed. It writes a run with real pixel values (see
:func:`pashmap_xfel.demo.write_demo_run`) into a temporary directory, reads every file
once so that each context reads from the page cache, then times ``pm.map`` of a kernel
that writes each train's mean image into a shared output array.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

from pashmap.bench.workloads import Sizes, Workload
from pashmap_xfel.demo import AGIPD, write_demo_run

__all__ = ["XFEL_WORKLOAD", "mean_images", "serial_mean_images"]

_FRAME_BYTES = 2 * 512 * 128 * 2  # one raw AGIPD frame: (2, 512, 128) uint16


def mean_images(images: Any) -> tuple[np.ndarray[Any, Any], float]:
    """Map the workload's kernel over ``images`` on the default context.

    Args:
        images: an ``extra_data.KeyData`` of detector images, one or more per train.

    Returns:
        Each train's mean image (float32, one per train ID), and the seconds of the map.
    """
    import pashmap as pm

    out = pm.array((len(images.train_ids), *images.shape[1:]), np.float32)

    def mean_image(worker_id: int, index: int, train_id: int, data: Any) -> None:
        out[index] = data.mean(axis=0)

    start = time.perf_counter()
    pm.map(mean_image, images)
    return out, time.perf_counter() - start


def serial_mean_images(images: Any) -> np.ndarray[Any, Any]:
    """What :func:`mean_images` must compute, by a plain loop over ``images.trains()``."""
    return np.stack([data.mean(axis=0) for _, data in images.trains()]).astype(np.float32)


def _mean_images(s: Sizes) -> dict[str, Any]:
    import extra_data

    frames = 16 if s.output_bytes >= 2**29 else 8
    trains = max(4, s.output_bytes // 4 // (frames * _FRAME_BYTES))
    with tempfile.TemporaryDirectory(prefix="pashmap-bench-xfel-") as path:
        write_demo_run(path, trains=trains, frames=frames)
        for name in os.listdir(path):  # into the page cache: measure CPU and HDF5, not disk
            with open(os.path.join(path, name), "rb") as stream:
                while stream.read(1 << 24):
                    pass
        images = extra_data.RunDirectory(path)[AGIPD, "image.data"]
        out, seconds = mean_images(images)
        if not np.array_equal(out, serial_mean_images(images)):
            raise RuntimeError("workload 'xfel' computed a wrong result")
        return {
            "seconds": seconds,
            "elements": trains,
            "mb_per_s": images.nbytes / 1e6 / seconds,
        }


XFEL_WORKLOAD = Workload(
    "xfel", "per-train mean image of a mock AGIPD module (KeyData, real pixels)", _mean_images
)
