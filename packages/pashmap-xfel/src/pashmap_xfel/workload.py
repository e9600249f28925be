"""The ``xfel`` workload of ``pashmap bench``: per-train mean images over a mock EuXFEL run.

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

from pashmap.workloads import Sizes, Workload
from pashmap_xfel.demo import AGIPD, write_demo_run

__all__ = ["XFEL_WORKLOAD"]

_FRAME_BYTES = 2 * 512 * 128 * 2  # one raw AGIPD frame: (2, 512, 128) uint16


def _mean_images(s: Sizes) -> dict[str, Any]:
    import extra_data

    import pashmap as pm

    frames = 16 if s.output_bytes >= 2**29 else 8
    trains = max(4, s.output_bytes // 4 // (frames * _FRAME_BYTES))
    with tempfile.TemporaryDirectory(prefix="pashmap-bench-xfel-") as path:
        write_demo_run(path, trains=trains, frames=frames)
        for name in os.listdir(path):  # into the page cache: measure CPU and HDF5, not disk
            with open(os.path.join(path, name), "rb") as stream:
                while stream.read(1 << 24):
                    pass
        images = extra_data.RunDirectory(path)[AGIPD, "image.data"]
        out = pm.array((len(images.train_ids), *images.shape[1:]), np.float32)

        def mean_image(worker_id: int, index: int, train_id: int, data: Any) -> None:
            out[index] = data.mean(axis=0)

        start = time.perf_counter()
        pm.map(mean_image, images)
        seconds = time.perf_counter() - start
        first = next(iter(images.trains()))[1]
        if not np.allclose(out[0], first.mean(axis=0), rtol=1e-4):
            raise RuntimeError("workload 'xfel' computed a wrong result")
        return {
            "seconds": seconds,
            "elements": trains,
            "mb_per_s": images.nbytes / 1e6 / seconds,
        }


XFEL_WORKLOAD = Workload(
    "xfel", "per-train mean image of a mock AGIPD module (KeyData, real pixels)", _mean_images
)
