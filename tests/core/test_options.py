"""The common map options: progress and timeout, and their program-wide defaults."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import pashmap as pm


@pytest.fixture(autouse=True)
def _restore_defaults() -> Iterator[None]:
    previous = pm.get_default_options()
    yield
    pm.set_default_options(**previous)


def test_timeout_cancels_a_local_map() -> None:
    seen: list[int] = []
    first_call: list[float] = []

    def slow(worker_id: int, index: int, value: int) -> None:
        seen.append(index)
        first_call.append(time.monotonic())
        if index == 2:  # the map's deadline (at most 1 s after the first call) passes here
            time.sleep(max(0.0, first_call[0] + 1.0 - time.monotonic()) + 0.01)

    start = time.monotonic()
    with pytest.raises(pm.MapTimeoutError, match="timeout") as info:
        pm.map(slow, range(100), timeout=1.0)
    assert isinstance(info.value, TimeoutError)
    assert seen == [0, 1, 2]  # stopped at the first element after the deadline
    assert time.monotonic() - start < 30


def test_timeout_that_is_not_reached_changes_nothing() -> None:
    assert pm.map(lambda w, i, v: v, [1, 2], timeout=60) == [1, 2]


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_bad_timeouts(bad: float) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        pm.map(lambda w, i, v: v, [1], timeout=bad)


def test_timeout_must_be_a_number() -> None:
    with pytest.raises(TypeError, match="number of seconds"):
        pm.map(lambda w, i, v: v, [1], timeout="1")


def test_progress_bar_counts_every_element(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    from pashmap.local import LocalContext
    from pashmap.progress import ProgressBar

    context = LocalContext()
    with ProgressBar(context, 5) as bar:
        for _ in range(5):
            bar.counts[0] += 1
    assert bar.done == 5
    assert pm.map(lambda w, i, v: v * 2, [1, 2, 3], progress=True) == [2, 4, 6]


def test_default_options_apply_to_every_map() -> None:
    previous = pm.set_default_options(timeout=0.1)
    assert previous == {"progress": False, "timeout": None}
    assert pm.get_default_options()["timeout"] == 0.1
    with pytest.raises(TimeoutError):
        pm.map(lambda w, i, v: time.sleep(0.05), range(50))
    assert pm.map(lambda w, i, v: v, [1], timeout=None) == [1]  # explicit wins


def test_unknown_default_options() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        pm.set_default_options(chunksize=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="number of seconds"):
        pm.set_default_options(timeout="soon")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["no", "", 1, 0, None, "False"])
def test_progress_accepts_only_true_or_false(bad: object) -> None:
    # 'no' is a true string: it used to draw a bar.
    with pytest.raises(TypeError, match=r"progress must be True or False, got"):
        pm.map(lambda w, i, v: v, [1], progress=bad)
    with pytest.raises(TypeError, match=r"progress must be True or False"):
        pm.set_default_options(progress=bad)  # type: ignore[arg-type]
    assert pm.get_default_options()["progress"] is False


def test_progress_accepts_numpy_booleans() -> None:
    np = pytest.importorskip("numpy")
    assert pm.map(lambda w, i, v: v, [1], progress=np.False_) == [1]
