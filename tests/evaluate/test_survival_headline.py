"""The headline time-dependent AUC of survival_report over the horizons it is told to average
(those enough evaluated patients are followed to), the others keeping their own figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from permed.evaluate.survival import SurvivalGrid, survival_report


@pytest.fixture(scope="module")
def whas(whas_cox):
    """A ridge Cox model fitted on 300 WHAS500 patients, evaluated on the other 200."""
    return whas_cox


def _report(whas, horizons, **options):
    model, X, test, reference = whas
    grid = SurvivalGrid.for_data(test["time"], horizons)
    return survival_report(reference, test["time"], test["event"], model.predict(X),
                           model.predict_survival_function(X, grid.times), grid, tau=730.0,
                           n_boot=200, seed=0, **options)


def test_the_headline_td_auc_averages_only_the_given_horizons(whas):
    full = _report(whas, [365.0, 730.0, 1095.0], averaged=[365.0, 730.0])
    # the same as a report at those two horizons alone: value and bootstrap CI
    alone = _report(whas, [365.0, 730.0])
    assert full["test"]["td_auc"] == pytest.approx(alone["test"]["td_auc"], abs=1e-12)
    by_horizon = full["td_auc_by_horizon"]
    assert full["test"]["td_auc"]["value"] == pytest.approx(
        (by_horizon["365"]["value"] + by_horizon["730"]["value"]) / 2, abs=1e-12)
    assert set(by_horizon) == {"365", "730", "1095"}  # the third keeps its own figure
    every = _report(whas, [365.0, 730.0, 1095.0])
    assert every["test"]["td_auc"]["value"] == pytest.approx(np.mean(
        [e["value"] for e in by_horizon.values()]), abs=1e-12)


def test_no_horizon_to_average_gives_no_headline_td_auc(whas):
    report = _report(whas, [365.0, 730.0], averaged=[])
    assert all(math.isnan(v) for v in report["test"]["td_auc"].values())
    assert np.isfinite(report["td_auc_by_horizon"]["365"]["value"])
