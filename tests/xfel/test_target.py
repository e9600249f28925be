"""ExtraDataTarget: every kind of EXtra-data object gives what a serial loop gives.

Each case compares ``pm.map`` over the object (wrapped automatically or with options)
with a plain loop over the object's own ``trains()``, under the local context and, when
pashmap-shm is installed, under 'processes' with 1, 2 and 4 workers and 'threads'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import pashmap as pm
from pashmap_xfel import ExtraDataTarget
from pashmap_xfel.layout import TrainLayout
from tests.xfel.conftest import AGIPD_MISSED_TRAIN, AGIPD_SOURCE, AGIPD_TRAINS, XGM_TRAINS
from tests.xfel.reference import (
    LOCAL,
    PARALLEL,
    context,
    fingerprint,
    fingerprint_kernel,
    serial,
    serial_key,
    serial_source,
)

extra_data = pytest.importorskip("extra_data")
from extra_data import by_id  # noqa: E402
from extra_data.components import AGIPD1M, DSSC1M, JUNGFRAU, LPD1M  # noqa: E402

XGM = "SPB_XTD9_XGM/DOOCS/MAIN"

Expected = list[tuple[int, int, Any]]
# A case builds, from the session's runs, what to map over and how to compute the
# expected result with a serial loop (computed once per case, see expected()).
Case = Callable[[pytest.FixtureRequest], tuple[Any, Callable[[], Expected]]]
_expected: dict[str, Expected] = {}


def expected(case: str, serial_loop: Callable[[], Expected]) -> Expected:
    if case not in _expected:
        _expected[case] = serial_loop()
        assert _expected[case], "a case must visit some trains"
    return _expected[case]


def run_of(request: pytest.FixtureRequest, name: str) -> Any:
    return request.getfixturevalue(name)


def _fxe_da(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    # XGMs, a camera and a camera that recorded nothing, over the boundary of the two
    # DA sequence files (train 10400).
    run = run_of(request, "fxe_run")
    sel = run.select(["*_XGM/*", "FXE_XAD_GEC/*"]).select_trains(np.s_[385:415])
    return sel, lambda: serial(sel)


def _lpd_missed(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    run = run_of(request, "lpd_missed_run")
    return run, lambda: serial(run)


def _lpd_missed_require_all(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    run = run_of(request, "lpd_missed_run")
    return ExtraDataTarget(run, require_all=True), lambda: serial(run, require_all=True)


def _agipd_whole_run(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    run = run_of(request, "agipd_run")
    return run, lambda: serial(run)


def _spb_flat_keep_dims(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    run = run_of(request, "spb_run")
    sel = run.select(["*_XGM/*", "SPB_IRU_CAM/*"]).select_trains(by_id[10020:10050])
    target = ExtraDataTarget(sel, flat_keys=True, keep_dims=True)
    return target, lambda: serial(sel, flat_keys=True, keep_dims=True)


def _source_instrument(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    run = run_of(request, "agipd_run")
    source = run[AGIPD_SOURCE.format(3)]
    return source, lambda: serial_source(source, run)


def _source_instrument_require_all(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    run = run_of(request, "agipd_run")
    source = run[AGIPD_SOURCE.format(3)].select_keys("image.*")
    return ExtraDataTarget(source, require_all=True), lambda: serial_source(
        source, run, "image.*", require_all=True
    )


def _source_control(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    run = run_of(request, "agipd_run")
    source = run[XGM].select_keys("pulseEnergy.*")
    return source, lambda: serial_source(source, run, "pulseEnergy.*")


def _key_with_missed_and_trailing_trains(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    run = run_of(request, "agipd_run")
    key = run[AGIPD_SOURCE.format(3), "image.data"]
    return key, lambda: serial_key(key)


def _key_keep_dims(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    run = run_of(request, "agipd_run")
    key = run[XGM, "pulseEnergy.photonFlux"]
    return ExtraDataTarget(key, keep_dims=True), lambda: serial_key(key, keep_dims=True)


def _key_variable_frames(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    # 0 to 19 frames per train: some trains have an index entry but no data.
    run = run_of(request, "reduced_spb_run")
    key = run["SPB_DET_AGIPD1M-1/DET/0CH0:xtdf", "image.pulseId"]
    return key, lambda: serial_key(key)


def _key_selected_trains(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    run = run_of(request, "agipd_run")
    key = run[AGIPD_SOURCE.format(1), "image.data"].select_trains(
        by_id[[10001, 10004, 10005, 10009, 10015, 10017]]
    )
    return key, lambda: serial_key(key)


def _agipd1m(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    det = AGIPD1M(run_of(request, "agipd_run"), raw=True)
    return det, lambda: serial(det)


def _agipd1m_all_trains_some_pulses(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    # Only the image keys: a detector made from a selection keeps it.
    det = AGIPD1M(run_of(request, "agipd_run").select("*/DET/*", "image.*"), raw=True)
    target = ExtraDataTarget(det, require_all=False, pulses=np.s_[1:3])
    return target, lambda: serial(det, require_all=False, pulses=np.s_[1:3])


def _lpd1m_missed(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    det = LPD1M(run_of(request, "lpd_missed_run"), raw=True)
    return ExtraDataTarget(det, require_all=False), lambda: serial(det, require_all=False)


def _jungfrau(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    det = JUNGFRAU(run_of(request, "jungfrau_run"), raw=True)
    return det, lambda: serial(det)


def _dssc1m(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    det = DSSC1M(run_of(request, "dssc_run"), raw=True)
    return det, lambda: serial(det)


CASES: dict[str, Case] = {
    "run-select-trains-empty-source": _fxe_da,
    "run-missed-train": _lpd_missed,
    "run-missed-train-require_all": _lpd_missed_require_all,
    "run-trailing-trains-without-detector": _agipd_whole_run,
    "run-flat_keys-keep_dims": _spb_flat_keep_dims,
    "source-instrument-missed-train": _source_instrument,
    "source-instrument-require_all": _source_instrument_require_all,
    "source-control": _source_control,
    "key-missed-and-trailing-trains": _key_with_missed_and_trailing_trains,
    "key-control-keep_dims": _key_keep_dims,
    "key-variable-frames": _key_variable_frames,
    "key-selected-trains": _key_selected_trains,
    "agipd1m": _agipd1m,
    "agipd1m-require_all-False-pulses": _agipd1m_all_trains_some_pulses,
    "lpd1m-missed-train": _lpd1m_missed,
    "jungfrau": _jungfrau,
    "dssc1m": _dssc1m,
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_local_map_equals_serial_loop(request: pytest.FixtureRequest, case: str) -> None:
    target, serial_loop = CASES[case](request)
    with context(*LOCAL):
        assert pm.map(fingerprint_kernel, target) == expected(case, serial_loop)


@pytest.mark.parametrize(("name", "num_workers"), PARALLEL, ids=[f"{n}-{w}" for n, w in PARALLEL])
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_parallel_map_equals_serial_loop(
    request: pytest.FixtureRequest, case: str, name: str, num_workers: int
) -> None:
    target, serial_loop = CASES[case](request)
    with context(name, num_workers):
        assert pm.map(fingerprint_kernel, target) == expected(case, serial_loop)


# ------------------------------------------------------------- index and values
def test_index_is_the_position_in_train_ids(agipd_run: Any) -> None:
    key = agipd_run[AGIPD_SOURCE.format(3), "image.data"]
    seen = np.full(len(key.train_ids), -1, dtype=np.int64)
    frames = np.full(len(key.train_ids), -1, dtype=np.int64)

    def kernel(worker_id: int, index: int, train_id: int, data: Any) -> None:
        seen[index] = train_id
        frames[index] = len(data)

    pm.map(kernel, key)
    np.testing.assert_array_equal(seen, key.train_ids)
    tids = np.asarray(key.train_ids)
    expected_frames = np.where((tids < 10000 + AGIPD_TRAINS) & (tids != AGIPD_MISSED_TRAIN), 3, 0)
    np.testing.assert_array_equal(frames, expected_frames)
    assert len(key.train_ids) == XGM_TRAINS


@pytest.mark.parametrize(("name", "num_workers"), [LOCAL, *PARALLEL])
def test_mean_image_values(agipd_run: Any, name: str, num_workers: int) -> None:
    """The written pixel values arrive intact: module m, train i, frame f ~ m*1000+i*10+f."""
    key = agipd_run[AGIPD_SOURCE.format(2), "image.data"]
    with context(name, num_workers):
        out = pm.array((len(key.train_ids), 2, 512, 128), np.float64, fill=np.nan)

        def mean_image(worker_id: int, index: int, train_id: int, data: Any) -> None:
            if len(data):
                out[index] = data.mean(axis=0)

        pm.map(mean_image, key)
    for i in range(len(key.train_ids)):
        if i < AGIPD_TRAINS:
            # frames hold base+0, base+1, base+2 plus noise in [0, 5)
            assert 2000 + i * 10 + 1 <= out[i].mean() < 2000 + i * 10 + 1 + 5
            np.testing.assert_allclose(out[i], key.select_trains(np.s_[i]).ndarray().mean(axis=0))
        else:
            assert np.isnan(out[i]).all()


def test_include_empty_false_skips_trains_without_data(agipd_run: Any) -> None:
    key = agipd_run[AGIPD_SOURCE.format(3), "image.data"]
    visited = pm.map(lambda w, i, t, d: t, ExtraDataTarget(key, include_empty=False))
    assert visited == [int(t) for t, _ in key.trains()]
    assert AGIPD_MISSED_TRAIN not in visited


def test_explicit_target_and_automatic_wrapping_agree(lpd_missed_run: Any) -> None:
    automatic = pm.map(fingerprint_kernel, lpd_missed_run)
    explicit = pm.map(fingerprint_kernel, ExtraDataTarget(lpd_missed_run))
    assert automatic == explicit


# ------------------------------------------------------------------- splitting
@pytest.mark.parametrize("n", [1, 2, 3, 7, 100])
def test_split_gives_contiguous_train_ranges(agipd_run: Any, n: int) -> None:
    target = ExtraDataTarget(agipd_run)
    shares = target.split(n)
    assert len(shares) == min(n, XGM_TRAINS)
    assert [i for share in shares for i in share] == list(range(XGM_TRAINS))
    assert all(share.step == 1 and len(share) > 0 for share in shares)


def test_split_concatenation_is_the_serial_order(agipd_run: Any) -> None:
    target = ExtraDataTarget(agipd_run[AGIPD_SOURCE.format(0)])
    whole = [entry[:2] for share in target.split(1) for entry in target.iterate(share)]
    pieces = [entry[:2] for share in target.split(6) for entry in target.iterate(share)]
    assert whole == pieces


def test_split_sizes_gives_train_ranges_of_those_sizes(agipd_run: Any) -> None:
    target = ExtraDataTarget(agipd_run[AGIPD_SOURCE.format(3), "image.data"])
    assert isinstance(target, pm.GuidedTarget)
    sizes = [XGM_TRAINS - 3, 2, 1]
    shares = target.split_sizes(sizes)
    assert [len(share) for share in shares] == sizes
    assert [i for share in shares for i in share] == list(range(XGM_TRAINS))
    assert target._find_layout() is not None  # found in the caller, as split() does
    whole = [entry[:2] for share in target.split(1) for entry in target.iterate(share)]
    assert [entry[:2] for share in shares for entry in target.iterate(share)] == whole
    with pytest.raises(ValueError, match="add up to"):
        target.split_sizes([1])


def test_iterating_an_empty_range_gives_nothing(agipd_run: Any) -> None:
    assert list(ExtraDataTarget(agipd_run).iterate(range(3, 3))) == []


def test_repr_and_len(agipd_run: Any) -> None:
    target = ExtraDataTarget(agipd_run[XGM, "pulseEnergy.photonFlux"])
    assert len(target) == XGM_TRAINS
    assert repr(target) == (
        f"ExtraDataTarget(<KeyData of {XGM_TRAINS} trains>, keep_dims=False, include_empty=True)"
    )
    assert target.kind == "KeyData"


# ------------------------------------------------------------ KeyData fast path
KEY_CASES = [case for case in CASES if case.startswith("key-")]


def test_key_data_reads_through_the_train_layout(agipd_run: Any) -> None:
    target = ExtraDataTarget(agipd_run[AGIPD_SOURCE.format(3), "image.data"])
    target.split(2)
    layout = target._find_layout()
    assert layout is not None
    assert layout.file_number.tolist().count(-1) == XGM_TRAINS - AGIPD_TRAINS + 1
    assert set(layout.count.tolist()) == {0, 3}


@pytest.mark.parametrize("case", KEY_CASES)
def test_key_data_without_the_layout_equals_serial_loop(
    request: pytest.FixtureRequest, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The general path, used when a KeyData's index cannot be laid out, agrees too."""
    monkeypatch.setattr(TrainLayout, "of", staticmethod(lambda key_data: None))
    target, serial_loop = CASES[case](request)
    assert pm.map(fingerprint_kernel, target) == expected(case, serial_loop)


def test_key_data_without_the_layout_skips_empty_trains_on_request(
    agipd_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TrainLayout, "of", staticmethod(lambda key_data: None))
    key = agipd_run[AGIPD_SOURCE.format(3), "image.data"]
    for keep_dims in (False, True):
        target = ExtraDataTarget(key, include_empty=False, keep_dims=keep_dims)
        visited = pm.map(lambda w, i, t, d: t, target)
        assert visited == [int(t) for t, _ in key.trains()]


def test_a_target_pickles_without_its_open_datasets(agipd_run: Any) -> None:
    """For contexts that send targets to their workers instead of forking them."""
    import pickle

    key = agipd_run[AGIPD_SOURCE.format(2), "image.data"]
    target = ExtraDataTarget(key)
    shares = target.split(3)
    before = [entry[:2] for entry in target.iterate(shares[0])]
    copy = pickle.loads(pickle.dumps(target))
    assert [entry[:2] for entry in copy.iterate(shares[0])] == before
    assert pm.map(fingerprint_kernel, copy) == pm.map(fingerprint_kernel, target)


# ------------------------------------------------------------ suspect trains
@pytest.mark.parametrize("layout", [True, False], ids=["layout", "train_from_id"])
@pytest.mark.parametrize("inc_suspect_trains", [True, False])
def test_a_suspect_train_reads_as_train_from_id_does(
    suspect_train_dir: Any, inc_suspect_trains: bool, layout: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.xfel.conftest import SUSPECT_ROW, SUSPECT_TRAIN

    if not layout:
        monkeypatch.setattr(TrainLayout, "of", staticmethod(lambda key_data: None))
    run = extra_data.RunDirectory(
        str(suspect_train_dir), inc_suspect_trains=inc_suspect_trains, parallelize=False
    )
    key = run[AGIPD_SOURCE.format(0), "image.data"]
    expected = []
    for i, tid in enumerate(key.train_ids):
        found = key.train_from_id(int(tid))
        expected.append((i, int(tid), fingerprint(found[1] if isinstance(found, tuple) else found)))
    assert pm.map(fingerprint_kernel, key) == expected
    first_pixels = pm.map(lambda w, i, t, d: (t, int(d[0, 0, 0, 0])), key)
    if inc_suspect_trains:  # out of sequence in its file, last in train_ids
        assert first_pixels[-1] == (SUSPECT_TRAIN, 10 * SUSPECT_ROW)
    else:
        assert SUSPECT_TRAIN not in [t for t, _ in first_pixels]
    assert 10005 not in [t for t, _ in first_pixels]


@pytest.mark.parametrize("case", ["key-missed-and-trailing-trains", "run-missed-train"])
def test_many_threads_read_the_same_files_correctly(
    request: pytest.FixtureRequest, case: str
) -> None:
    """h5py serialises HDF5 calls: eight threads on shared files read what one does."""
    target, serial_loop = CASES[case](request)
    with context("threads", 8):
        assert pm.map(fingerprint_kernel, target, shares=40) == expected(case, serial_loop)
