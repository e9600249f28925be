"""The README's example, on the mock AGIPD run (raw data: one more axis, data_gain)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import pashmap as pm
from tests.xfel.reference import context

pytest.importorskip("extra_data")
from extra_data.components import AGIPD1M


@pytest.mark.parametrize(("name", "num_workers"), [("processes", 2)])
def test_intensity_weighted_average_image(agipd_run: Any, name: str, num_workers: int) -> None:
    sel = agipd_run.select_trains(np.s_[:18])
    with context(name, num_workers):
        xgm = sel["SPB_XTD9_XGM/DOOCS/MAIN:output", "data.intensityTD"]
        energy = pm.array(len(xgm.train_ids), fill=np.nan)

        def pulse_energy(worker_id: int, index: int, train_id: int, intensity: Any) -> None:
            energy[index] = intensity[:64].sum()

        pm.map(pulse_energy, xgm)

        agipd = AGIPD1M(sel.select("*/DET/*", "image.data"), raw=True)
        modules = len(agipd.modno_to_source)
        train_means = pm.array(len(agipd.train_ids), fill=np.nan)
        weighted = pm.zeros((modules, 512, 128), per_worker=True)
        weights = pm.zeros(1, per_worker=True)
        position = {tid: i for i, tid in enumerate(xgm.train_ids)}

        def accumulate(worker_id: int, index: int, train_id: int, data: Any) -> None:
            image = data["image.data"].isel(train=0, data_gain=0).mean("pulse")
            train_means[index] = float(image.mean())
            e = energy[position[train_id]]
            if np.isfinite(e):
                weighted[worker_id] += e * image.values
                weights[worker_id] += e

        pm.map(accumulate, agipd)
        average = weighted.sum(axis=0) / weights.sum()

    # The same, serially, with EXtra-data alone.
    expected_energy = np.array([d[:64].sum() for _, d in xgm.trains()])
    np.testing.assert_allclose(energy, expected_energy, rtol=1e-6)
    total = np.zeros((modules, 512, 128))
    weight = 0.0
    means = np.full(len(agipd.train_ids), np.nan)
    for tid, data in agipd.trains():
        image = data["image.data"].isel(train=0, data_gain=0).mean("pulse")
        means[list(agipd.train_ids).index(tid)] = float(image.mean())
        e = expected_energy[position[tid]]
        total += e * image.values
        weight += e
    np.testing.assert_allclose(train_means, means)
    np.testing.assert_allclose(average, total / weight, rtol=1e-6)
    assert np.isnan(train_means).sum() == 1  # the train module 3 missed
