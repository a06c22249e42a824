"""The ensemble risk family end to end: selection, the bundle, predictions and the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from permed.bundle import load_bundle
from permed.models.risk import RankEnsemble
from permed.study import Study
from permed.testing import assert_valid_absolute_risk, assert_valid_survival
from permed.workflow import TrainConfig, train_run

STUDY = Study(task="risk", time="time", event="cens")
HORIZONS = [365, 1095, 1825]


def _train(tmp_path_factory, models: list[str]):
    from permed.ingest import export_dataset

    tmp = tmp_path_factory.mktemp("ensemble")
    data = export_dataset("gbsg2", tmp / "gbsg2.csv")
    run = train_run(data, STUDY, TrainConfig(horizons=HORIZONS, models=models, n_boot=100, cv=3),
                    tmp / "run")
    return data, run, json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    return _train(tmp_path_factory, ["coxph", "gradient_boosting", "ensemble"])


@pytest.fixture(scope="module")
def ensemble_only(tmp_path_factory):
    return _train(tmp_path_factory, ["ensemble"])


def test_selection_says_why_the_ensemble_was_kept_or_replaced(ensemble_run):
    _, _, metrics = ensemble_run
    selection, cv = metrics["selection"], metrics["cv"]
    assert "the 'ensemble' family is kept unless" in selection["rule"]
    best_single = max(("coxph", "gradient_boosting"), key=lambda n: cv[n]["c_index"]["mean"])
    contest = selection["against_ensemble"]
    assert contest["family"] == best_single
    assert contest["families"] == 2
    assert contest["cv_gain"] == pytest.approx(
        cv[best_single]["c_index"]["mean"] - cv["ensemble"]["c_index"]["mean"], abs=1e-5)
    kept = contest["cv_gain"] - contest["selection_optimism"] <= contest["threshold"]
    assert selection["ensemble_kept"] is kept
    assert metrics["selected_model"] == ("ensemble" if kept else best_single)


def test_the_ensemble_predicts_from_its_bundle(ensemble_only):
    data, run, metrics = ensemble_only
    assert metrics["selected_model"] == "ensemble"
    assert "against_ensemble" not in metrics["selection"]  # the only candidate
    model, _ = load_bundle(run)
    new = pd.read_csv(data).drop(columns=["time", "cens"]).head(40)
    assert isinstance(model.pipeline[-1], RankEnsemble)
    frame = model.predict_frame(new)
    risks = frame[[f"risk_at_{h}" for h in HORIZONS]].to_numpy()
    assert_valid_absolute_risk(risks)
    curves = model.survival_curves(new, times=[100, 500, 1000, 2000])
    assert_valid_survival(curves.to_numpy(), 40, 4)
    # the ensemble's absolute risk is the mean of its members' (a mixture of their curves)
    members = model.pipeline[-1].members_
    features = model._features(new)
    expected = 1 - np.mean([m.predict_survival_function(features, HORIZONS) for _, m in members],
                           axis=0)
    np.testing.assert_allclose(risks, expected, atol=1e-9)
    high = frame["risk_score"] >= frame["risk_score"].median()
    assert frame.loc[high, "risk_at_1825"].mean() > frame.loc[~high, "risk_at_1825"].mean()


def test_report_explains_the_selection(ensemble_run):
    _, run, metrics = ensemble_run
    text = (run / "report.html").read_text()
    assert "the &#39;ensemble&#39; family is kept unless" in text
    assert metrics["selection"]["against_ensemble"]["family"] in text
