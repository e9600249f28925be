"""European XFEL test runs, written once per session in EuXFEL's HDF5 format.

The makers of ``extra_data.tests.make_examples`` write real EuXFEL files whose detector
datasets are mostly left unwritten (they read back as zeros). For value checks, the
``agipd_run`` fixture also writes a small AGIPD run whose pixels are real numbers.
Everything is kept small: the machine has two cores shared with other work.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

extra_data = pytest.importorskip("extra_data")
h5py = pytest.importorskip("h5py")
np = pytest.importorskip("numpy")

from extra_data.tests import make_examples  # noqa: E402
from extra_data.tests.mockdata import write_file  # noqa: E402
from extra_data.tests.mockdata.detectors import AGIPDModule, DSSCModule  # noqa: E402
from extra_data.tests.mockdata.jungfrau import JUNGFRAUModule  # noqa: E402
from extra_data.tests.mockdata.xgm import XGM  # noqa: E402

AGIPD_SOURCE = "SPB_DET_AGIPD1M-1/DET/{}CH0:xtdf"
AGIPD_MODULES = (0, 1, 2, 3)
AGIPD_FRAMES = 3
AGIPD_TRAINS = 16
AGIPD_MISSED_TRAIN = 10005  # module 3 has no data for it
XGM_TRAINS = 20  # the XGM runs on for 4 trains after the detector stopped


def _make_dir(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[str], Any]
) -> Path:
    path = tmp_path_factory.mktemp(name)
    make(str(path))
    return path


def write_agipd_run(path: str) -> None:
    """An AGIPD run of 4 modules with real pixel values, a missed train and an XGM.

    Module ``m`` of train ``t`` (position ``i``) frame ``f`` holds
    ``(m * 1000 + i * 10 + f + rng noise)`` in ``image.data`` (uint16, raw layout
    ``(frames, 2, 512, 128)``), so every value read can be checked. Module 3's file
    lost train 10005 (its data shift up, as when the DAQ misses a train). The XGM
    data file covers 20 trains, 4 more than the detector.
    """
    rng = np.random.default_rng(2024)
    for modno in AGIPD_MODULES:
        filename = os.path.join(path, f"RAW-R0100-AGIPD{modno:02}-S00000.h5")
        ntrains = AGIPD_TRAINS - (1 if modno == 3 else 0)
        write_file(
            filename,
            [AGIPDModule(f"SPB_DET_AGIPD1M-1/DET/{modno}CH0", frames_per_train=AGIPD_FRAMES)],
            ntrains=ntrains,
            chunksize=4,
            format_version="1.0",
        )
        with h5py.File(filename, "r+") as f:
            tids = [
                t
                for t in range(10000, 10000 + AGIPD_TRAINS)
                if modno != 3 or t != AGIPD_MISSED_TRAIN
            ]
            f["INDEX/trainId"][:ntrains] = tids
            data = f[f"INSTRUMENT/{AGIPD_SOURCE.format(modno)}/image/data"]
            for i, tid in enumerate(tids):
                position = tid - 10000
                base = modno * 1000 + position * 10
                for frame in range(AGIPD_FRAMES):
                    noise = rng.integers(0, 5, size=(2, 512, 128), dtype=np.uint16)
                    data[i * AGIPD_FRAMES + frame] = base + frame + noise
            f[f"INSTRUMENT/{AGIPD_SOURCE.format(modno)}/image/trainId"][:, 0] = np.repeat(
                tids, AGIPD_FRAMES
            )
    write_file(
        os.path.join(path, "RAW-R0100-DA01-S00000.h5"),
        [XGM("SPB_XTD9_XGM/DOOCS/MAIN")],
        ntrains=XGM_TRAINS,
        chunksize=4,
        format_version="1.0",
    )
    with h5py.File(os.path.join(path, "RAW-R0100-DA01-S00000.h5"), "r+") as f:
        intensity = f["INSTRUMENT/SPB_XTD9_XGM/DOOCS/MAIN:output/data/intensityTD"]
        intensity[:] = rng.random(intensity.shape, dtype=np.float32)
        f["CONTROL/SPB_XTD9_XGM/DOOCS/MAIN/pulseEnergy/photonFlux/value"][:] = np.arange(
            XGM_TRAINS, dtype=np.float32
        )


SUSPECT_ROW = 5  # INDEX/flag marks it suspect: its train ID is out of sequence
SUSPECT_TRAIN = 10100


def write_suspect_train_run(path: str) -> None:
    """One small AGIPD module over 16 trains whose row 5 has a suspect train ID, 10100.

    Entry ``2 * row + frame`` of ``image.data`` holds ``10 * row + frame`` everywhere, so
    a read shows which row it came from. Train 10005 is then in no row at all.
    """
    filename = os.path.join(path, "RAW-R0200-AGIPD00-S00000.h5")
    write_file(
        filename,
        [AGIPDModule("SPB_DET_AGIPD1M-1/DET/0CH0", frames_per_train=2)],
        ntrains=16,
        chunksize=4,
        format_version="1.0",
    )
    with h5py.File(filename, "r+") as f:
        f["INDEX/trainId"][SUSPECT_ROW] = SUSPECT_TRAIN
        f["INDEX/flag"][SUSPECT_ROW] = 0
        data = f[f"INSTRUMENT/{AGIPD_SOURCE.format(0)}/image/data"]
        for entry in range(32):
            data[entry] = 10 * (entry // 2) + entry % 2


def write_jungfrau_run(path: str) -> None:
    """Two raw JUNGFRAU modules over 3 trains (each train is 24 MB per module)."""
    for modno in (1, 2):
        write_file(
            os.path.join(path, f"RAW-R0012-JNGFR{modno:02}-S00000.h5"),
            [JUNGFRAUModule(f"SPB_IRDA_JF4M/DET/JNGFR{modno:02}", raw=True)],
            ntrains=3,
            chunksize=1,
            format_version="1.0",
        )


def write_dssc_run(path: str) -> None:
    """Two DSSC modules, 2 frames per train, 6 trains."""
    for modno in (0, 1):
        write_file(
            os.path.join(path, f"RAW-R0001-DSSC{modno:02}-S00000.h5"),
            [DSSCModule(f"SCS_DET_DSSC1M-1/DET/{modno}CH0", frames_per_train=2)],
            ntrains=6,
            chunksize=2,
            format_version="1.0",
        )


@pytest.fixture(scope="session")
def agipd_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The AGIPD run with real pixel values (see :func:`write_agipd_run`)."""
    return extra_data.RunDirectory(
        str(_make_dir(tmp_path_factory, "agipd", write_agipd_run)), parallelize=False
    )


@pytest.fixture(scope="session")
def lpd_missed_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two LPD modules over 5 trains; module 1 missed train 10002."""
    path = _make_dir(tmp_path_factory, "lpd_missed", make_examples.make_lpd_run_mini_missed_train)
    return extra_data.RunDirectory(str(path), parallelize=False)


@pytest.fixture(scope="session")
def fxe_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """make_fxe_run: 16 LPD modules, XGMs, a camera and a camera without data."""
    return extra_data.RunDirectory(
        str(_make_dir(tmp_path_factory, "fxe", make_examples.make_fxe_run))
    )


@pytest.fixture(scope="session")
def spb_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """make_spb_run with a small side-microscope camera; DA data in two sequence files."""

    def make(path: str) -> None:
        make_examples.make_spb_run(path, sensor_size=(32, 24))

    return extra_data.RunDirectory(str(_make_dir(tmp_path_factory, "spb", make)), parallelize=False)


@pytest.fixture(scope="session")
def reduced_spb_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """make_reduced_spb_run (corrected): 0 to 19 AGIPD frames per train, some trains none."""

    def make(path: str) -> None:
        make_examples.make_reduced_spb_run(path, raw=False, rng=np.random.RandomState(7))

    return extra_data.RunDirectory(
        str(_make_dir(tmp_path_factory, "reduced_spb", make)), parallelize=False
    )


@pytest.fixture(scope="session")
def suspect_train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with a suspect, repeated train (see write_suspect_train_run)."""
    return _make_dir(tmp_path_factory, "suspect", write_suspect_train_run)


@pytest.fixture(scope="session")
def jungfrau_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two raw JUNGFRAU modules over 3 trains."""
    return extra_data.RunDirectory(
        str(_make_dir(tmp_path_factory, "jungfrau", write_jungfrau_run)), parallelize=False
    )


@pytest.fixture(scope="session")
def dssc_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two DSSC modules over 6 trains."""
    return extra_data.RunDirectory(
        str(_make_dir(tmp_path_factory, "dssc", write_dssc_run)), parallelize=False
    )
