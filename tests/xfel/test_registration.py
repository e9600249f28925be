"""How pm.map finds ExtraDataTarget: the entry point, accepts(), and the error messages."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import pashmap as pm
from pashmap import registry
from pashmap_xfel import ExtraDataTarget
from tests.xfel.conftest import AGIPD_SOURCE

extra_data = pytest.importorskip("extra_data")
from extra_data import by_id  # noqa: E402
from extra_data.components import AGIPD1M  # noqa: E402


def test_the_entry_point_names_the_target() -> None:
    registration = registry.registrations(registry.TARGETS_GROUP)["extra_data"]
    assert registration.value == "pashmap_xfel.target:ExtraDataTarget"
    assert registration.distribution == "pashmap-xfel"
    assert registration.load() is ExtraDataTarget


def test_importing_pashmap_and_resolving_targets_does_not_import_extra_data() -> None:
    code = (
        "import sys, pashmap as pm, pashmap_xfel\n"
        "from pashmap.registry import target_factories\n"
        "assert any(f is pashmap_xfel.ExtraDataTarget for _, f in target_factories())\n"
        "assert pm.map(lambda w, i, v: v * 2, [1, 2]) == [2, 4]\n"
        "assert not pashmap_xfel.ExtraDataTarget.accepts([1, 2])\n"
        "heavy = {'extra_data', 'h5py', 'pandas', 'xarray'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    "make",
    [
        lambda run: run,
        lambda run: run.select("*XGM*"),
        lambda run: run.select_trains(np.s_[:3]),
        lambda run: run["SPB_XTD9_XGM/DOOCS/MAIN"],
        lambda run: run["SPB_XTD9_XGM/DOOCS/MAIN", "pulseEnergy.photonFlux"],
        lambda run: AGIPD1M(run, raw=True),
    ],
    ids=["run", "select", "select_trains", "SourceData", "KeyData", "AGIPD1M"],
)
def test_the_registry_picks_it_for_every_kind(agipd_run: Any, make: Any) -> None:
    obj = make(agipd_run)
    assert ExtraDataTarget.accepts(obj)
    target = registry.resolve_target(obj)
    assert isinstance(target, ExtraDataTarget)
    assert target.obj is obj
    assert isinstance(target, pm.MapTarget)


@pytest.mark.parametrize("obj", [[1, 2], np.arange(3), "text", None, {"a": 1}])
def test_it_accepts_nothing_else(obj: Any) -> None:
    assert not ExtraDataTarget.accepts(obj)


def test_other_extra_data_objects_get_a_message_saying_what_to_map_over(agipd_run: Any) -> None:
    det = AGIPD1M(agipd_run, raw=True)
    with pytest.raises(TypeError, match=r"map over the detector and use data\[key\]"):
        pm.map(lambda *args: None, det["image.data"])
    with pytest.raises(TypeError, match=r"ExtraDataTarget cannot map over .*by_id"):
        pm.map(lambda *args: None, by_id[10000:10002])


@pytest.mark.parametrize(
    "make",
    [
        lambda run: run.trains(),
        lambda run: run.select(AGIPD_SOURCE.format(0), "image.data").trains(),
        lambda run: run[AGIPD_SOURCE.format(0), "image.data"].trains(),
        lambda run: AGIPD1M(run, raw=True).trains(),
    ],
    ids=["run", "selection", "key", "detector"],
)
def test_a_trains_iterator_gets_told_to_map_over_the_run_itself(agipd_run: Any, make: Any) -> None:
    # Before: "map over list(obj)", which would read the whole run into memory.
    with pytest.raises(TypeError) as info:
        pm.map(lambda *args: None, make(agipd_run))
    message = str(info.value)
    assert "map over the run (or the selection) itself" in message
    assert "map over list(obj)" not in message


@pytest.mark.parametrize(
    ("make", "option", "allowed"),
    [
        (
            lambda run: run[AGIPD_SOURCE.format(0), "image.data"],
            "require_all",
            "keep_dims, include_empty",
        ),
        (lambda run: run, "include_empty", "require_all, flat_keys, keep_dims"),
        (lambda run: run[AGIPD_SOURCE.format(0)], "flat_keys", "require_all, keep_dims"),
        (lambda run: run, "pulses", "require_all, flat_keys, keep_dims"),
        (lambda run: AGIPD1M(run, raw=True), "keep_dims", "require_all, pulses"),
    ],
)
def test_options_that_do_not_apply_are_refused(
    agipd_run: Any, make: Any, option: str, allowed: str
) -> None:
    with pytest.raises(
        TypeError, match=rf"{option} do not apply to \w+; the options for \w+ are: {allowed}$"
    ):
        ExtraDataTarget(make(agipd_run), **{option: True})


def test_options_keep_extra_data_defaults(agipd_run: Any) -> None:
    assert ExtraDataTarget(agipd_run).options == {
        "require_all": False,
        "flat_keys": False,
        "keep_dims": False,
    }
    assert ExtraDataTarget(AGIPD1M(agipd_run, raw=True)).options == {
        "require_all": True,
        "pulses": None,
    }
    assert ExtraDataTarget(agipd_run[AGIPD_SOURCE.format(0), "image.data"]).options == {
        "keep_dims": False,
        "include_empty": True,
    }


def test_without_the_plugin_core_says_what_to_install(
    agipd_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a user without pashmap-xfel sees: core's MissingTargetPluginError."""
    builtins = tuple(
        (reg, factory)
        for reg, factory in registry.target_factories()
        if reg.distribution != "pashmap-xfel"
    )
    monkeypatch.setattr(registry, "target_factories", lambda: builtins)
    with pytest.raises(pm.MissingTargetPluginError, match=r"pip install \S*pashmap-xfel"):
        pm.map(lambda *args: None, agipd_run)


def test_auxiliary_sources_are_mapped_over_by_key(reduced_spb_run: Any) -> None:
    name = "PULSE_REDUCTION/SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"
    source = reduced_spb_run.auxiliary[name]
    with pytest.raises(ValueError, match=r"map over one of its keys instead"):
        ExtraDataTarget(source)
    key = source["image.data.wasReduced"]
    expected = [(int(t), np.asarray(v).tolist()) for t, v in key.trains()]
    assert pm.map(lambda w, i, t, d: (t, np.asarray(d).tolist()), key) == expected
