"""The European XFEL part of ``pashmap demo``: a mock run, mapped under every context.

Registered in the ``pashmap.demos`` entry-point group. It writes a small run in EuXFEL's
HDF5 format into a temporary directory -- one AGIPD module whose pixels hold real
(random) values, and an XGM -- using the mock-data writers that ship with EXtra-data,
then maps two analysis kernels over it under every installed context and checks each
result against a plain loop over ``trains()``.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

__all__ = ["run_demo", "write_compressed_copy", "write_demo_run"]

AGIPD = "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"
XGM_SOURCE = "SA1_XTD2_XGM/DOOCS/MAIN"


def write_demo_run(path: str, trains: int = 48, frames: int = 8, seed: int = 0) -> None:
    """Write a mock EuXFEL run with real pixel values into the directory ``path``.

    Args:
        path: an existing, empty directory.
        trains: the number of trains.
        frames: AGIPD frames (memory cells) per train.
        seed: the seed of the random pixel and intensity values.
    """
    import h5py
    from extra_data.tests.mockdata import write_file
    from extra_data.tests.mockdata.detectors import AGIPDModule
    from extra_data.tests.mockdata.xgm import XGM

    rng = np.random.default_rng(seed)
    detector_file = os.path.join(path, "RAW-R0001-AGIPD00-S00000.h5")
    write_file(
        detector_file,
        [AGIPDModule(AGIPD.split(":")[0], frames_per_train=frames)],
        ntrains=trains,
        chunksize=frames,
        format_version="1.0",
    )
    with h5py.File(detector_file, "r+") as f:
        data = f[f"INSTRUMENT/{AGIPD}/image/data"]
        for start in range(0, data.shape[0], 64):
            stop = min(start + 64, data.shape[0])
            data[start:stop] = rng.integers(0, 4096, size=(stop - start, *data.shape[1:]))
    xgm_file = os.path.join(path, "RAW-R0001-DA01-S00000.h5")
    write_file(xgm_file, [XGM(XGM_SOURCE)], ntrains=trains, chunksize=16, format_version="1.0")
    with h5py.File(xgm_file, "r+") as f:
        intensity = f[f"INSTRUMENT/{XGM_SOURCE}:output/data/intensityTD"]
        intensity[:] = rng.random(intensity.shape, dtype=np.float32)


def write_compressed_copy(
    source: str, destination: str, compression: str = "gzip", level: int | None = None
) -> list[str]:
    """Copy a run's HDF5 files, with their data datasets compressed as corrected data often are.

    Each ``*.h5`` file of ``source`` is copied to a file of the same name in
    ``destination``, object by object, keeping every group, attribute, link, dataset
    shape, dtype, chunk shape, maximum shape and fill value. Chunked numeric datasets
    under ``INSTRUMENT`` and ``CONTROL`` (the data; not ``INDEX`` or ``METADATA``) are
    written through HDF5's ``compression`` filter; everything else is copied as it is.
    EXtra-data opens the copy as it opens the original, and reads the same values.

    Args:
        source: a run directory.
        destination: an existing directory (not ``source``).
        compression: an HDF5 filter that h5py always has: ``"gzip"`` or ``"lzf"``.
        level: the gzip level (0 to 9; h5py's default, 4, when ``None``); only for gzip.

    Returns:
        The names of the datasets that were compressed, as ``file.h5:/path``.

    Raises:
        ValueError: an unknown ``compression``, or a ``level`` given for lzf.
    """
    import h5py

    if compression not in ("gzip", "lzf"):
        raise ValueError(f"compression must be 'gzip' or 'lzf', not {compression!r}")
    if level is not None and compression != "gzip":
        raise ValueError(f"a compression level applies to gzip only, not to {compression!r}")
    compressed: list[str] = []

    def copy_group(src: Any, dst: Any, name: str) -> None:
        dst.attrs.update(src.attrs)
        for key in src:
            link = src.get(key, getlink=True)
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                dst[key] = link
                continue
            item = src[key]
            if isinstance(item, h5py.Group):
                copy_group(item, dst.create_group(key), name)
            elif _compressible(item):
                copy_dataset(item, dst, key)
                compressed.append(f"{name}:{item.name}")
            else:
                src.copy(item, dst, name=key)

    def copy_dataset(src: Any, dst: Any, key: str) -> None:
        fill = src.fillvalue
        out = dst.create_dataset(
            key,
            shape=src.shape,
            dtype=src.dtype,
            chunks=src.chunks,
            maxshape=src.maxshape,
            fillvalue=fill,
            compression=compression,
            compression_opts=level,
        )
        out.attrs.update(src.attrs)
        # Whole chunks at a time, about 64 MB or one chunk: a module's data can be many GB.
        chunk_bytes = int(np.prod(src.chunks)) * src.dtype.itemsize
        entries = src.chunks[0] * max(1, (1 << 26) // chunk_bytes)
        for start in range(0, src.shape[0], entries):
            out[start : start + entries] = src[start : start + entries]

    for filename in sorted(os.listdir(source)):
        if not filename.endswith(".h5"):
            continue
        with (
            h5py.File(os.path.join(source, filename), "r") as src,
            h5py.File(os.path.join(destination, filename), "w", libver=src.libver) as dst,
        ):
            copy_group(src, dst, filename)
    return compressed


def _compressible(dataset: Any) -> bool:
    return bool(
        dataset.chunks is not None
        and not dataset.is_virtual
        and dataset.dtype.kind in "iufb"
        and dataset.name.split("/")[1] in ("INSTRUMENT", "CONTROL")
    )


def _analyse(
    run: Any, images: Any
) -> tuple[np.ndarray[Any, Any], float, np.ndarray[Any, Any], float]:
    """Mean image per train and the XGM's pulse-energy sum per train, timed."""
    import pashmap as pm

    n = len(images.train_ids)
    mean = pm.array((n, *images.shape[1:]), np.float64)
    xgm = pm.array(n, fill=np.nan)

    def mean_image(worker_id: int, index: int, train_id: int, data: Any) -> None:
        mean[index] = data.mean(axis=0)

    def pulse_energy(worker_id: int, index: int, train_id: int, data: Any) -> None:
        xgm[index] = data[XGM_SOURCE + ":output"]["data.intensityTD"][:40].sum()

    start = time.perf_counter()
    pm.map(mean_image, images)
    mean_seconds = time.perf_counter() - start
    start = time.perf_counter()
    pm.map(pulse_energy, run.select(XGM_SOURCE + "*"))
    return mean, mean_seconds, xgm, time.perf_counter() - start


def run_demo(workers: int | None = None) -> int:
    """Map two analysis kernels over a mock run under every installed context.

    Args:
        workers: workers for the parallel contexts; all usable CPUs when ``None``.

    Returns:
        0 when every result equals the serial loop's, else 1.
    """
    import extra_data

    import pashmap as pm
    from pashmap.contexts import context_names

    with tempfile.TemporaryDirectory(prefix="pashmap-xfel-demo-") as path:
        write_demo_run(path)
        run = extra_data.RunDirectory(path)
        images = run[AGIPD, "image.data"]
        n = len(images.train_ids)
        reference_mean = np.stack([d.mean(axis=0) for _, d in images.trains()])
        reference_xgm = np.array(
            [d[XGM_SOURCE + ":output"]["data.intensityTD"][:40].sum() for _, d in run.trains()]
        )
        size_mb = images.nbytes / 2**20
        print(
            f"mock run: {n} trains, AGIPD module 0 with {images.shape[0] // n} frames/train "
            f"({size_mb:.0f} MB of pixels), an XGM"
        )
        print(f"{'context':<12} {'workers':>7} {'mean image':>11} {'XGM sum':>9} {'result':>7}")
        failures = 0
        for name in context_names():
            kwargs: dict[str, Any] = (
                {} if workers is None or name == "local" else {"num_workers": workers}
            )
            with pm.use_context(name, **kwargs) as context:
                mean, mean_seconds, xgm, xgm_seconds = _analyse(run, images)
            ok = np.allclose(mean, reference_mean) and np.allclose(xgm, reference_xgm)
            failures += not ok
            print(
                f"{name:<12} {context.num_workers:>7} {mean_seconds:>9.3f} s "
                f"{xgm_seconds:>7.3f} s {'ok' if ok else 'WRONG':>7}"
            )
    print("results verified against plain loops over trains()")
    return 1 if failures else 0
