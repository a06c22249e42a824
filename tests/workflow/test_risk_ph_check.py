"""The proportional-hazards check of a risk run, through training."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from permed.study import Study
from permed.workflow import TrainConfig, train_run

STUDY = Study(task="risk", time="time", event="event")


@pytest.fixture(scope="module")
def crossing(tmp_path_factory) -> pd.DataFrame:
    """Two groups whose hazards cross (Weibull shape 0.5 in B, 2 in A, same median), x1 with
    proportional hazards, noise: the reviewer's ph_bad_cat.csv, continuous times."""
    rng = np.random.default_rng(0)
    n = 600
    x1, group, noise = rng.normal(size=n), rng.integers(0, 2, n), rng.normal(size=n)
    shape = np.where(group == 1, 0.5, 2.0)
    latent = (5 * np.log(2) ** (-1 / shape) * (-np.log(rng.uniform(size=n))) ** (1 / shape)
              * np.exp(-0.5 * x1 / shape))
    censor = rng.uniform(0, 20, n)
    return pd.DataFrame({"x1": x1, "grp": np.where(group == 1, "B", "A"), "noise": noise,
                         "time": np.minimum(latent, censor),
                         "event": (latent <= censor).astype(int)})


def _train(frame: pd.DataFrame, tmp_path, models: list[str]):
    path = tmp_path / "cohort.csv"
    frame.to_csv(path, index=False)
    run = train_run(path, STUDY, TrainConfig(models=models, horizons=[2, 5, 8], n_boot=100,
                                             cv=2), tmp_path / "run")
    return run, json.loads((run / "metrics.json").read_text())


def test_a_categorical_predictor_whose_hazards_cross_is_flagged_as_one_term(crossing,
                                                                              tmp_path):
    # every level one-hot encoded under a ridge penalty: grp_A and grp_B had 0.29 each
    # (p = 0.59), the global test flagged, violating_features was empty, global df 4
    run, metrics = _train(crossing, tmp_path, ["coxph"])
    ph = metrics["proportional_hazards"]
    assert set(ph["features"]) == {"x1", "noise", "grp"}
    assert ph["features"]["grp"]["df"] == 1
    assert ph["features"]["grp"]["statistic"] > 100  # lifelines on the full cohort: 160
    assert ph["violating_features"] == ["grp"]
    assert ph["global"]["df"] == 3
    html = (run / "report.html").read_text()
    assert "stratify the variables below" in html
    assert "<li>grp</li>" in html


def test_a_selected_boosted_cox_model_is_checked_for_the_assumption_it_makes(crossing,
                                                                              tmp_path):
    # --models gradient_boosting: the section said "no Cox model among the candidates", but
    # the boosted Cox model's curves, S0(t) ** exp(score), cannot cross either
    run, metrics = _train(crossing, tmp_path, ["gradient_boosting"])
    ph = metrics["proportional_hazards"]
    assert ph["selected_model"] == "gradient_boosting"
    assert ph["selected_assumes_proportional_hazards"] is True
    assert ph["model"] == "coxph"  # the test: a ridge Cox model on the same predictors
    assert ph["violating_features"] == ["grp"]
    html = (run / "report.html").read_text().replace("&#39;", "'")
    assert "no Cox model among the candidates" not in html
    assert ("The selected model (gradient-boosted Cox model (LightGBM trees)) makes the same "
            "assumption as a Cox model" in html)
    assert "two patients' survival curves never cross" in html
    assert "The selected model assumes proportional hazards, and a Cox model" in html


def test_a_selected_forest_without_a_cox_candidate_is_said_not_to_assume_them(crossing,
                                                                               tmp_path):
    run, metrics = _train(crossing, tmp_path, ["random_survival_forest"])
    ph = metrics["proportional_hazards"]
    assert "global" not in ph
    assert ph["selected_assumes_proportional_hazards"] is False
    assert ph["note"] == ("the selected model (random survival forest (scikit-survival)) does "
                          "not assume proportional hazards, and no Cox model was among the "
                          "candidates: nothing to test")
    assert ph["note"] in (run / "report.html").read_text()


@pytest.fixture(scope="module")
def hinge() -> pd.DataFrame:
    """Exactly proportional hazards with a non-linear effect: log hazard 0.12 (lab - 60)_+
    + 0.5 flag, lab uniform on 30-90 (flat below 60, then rising): the reviewer's ph_hinge.csv."""
    rng = np.random.default_rng(0)
    n = 1500
    lab, flag = rng.uniform(30, 90, n), rng.integers(0, 2, n)
    latent = rng.exponential(200 * np.exp(-(0.12 * np.maximum(lab - 60, 0) + 0.5 * flag)))
    censor = rng.uniform(0, 800, n)
    return pd.DataFrame({"lab": lab, "flag": flag, "time": np.minimum(latent, censor),
                         "event": (latent <= censor).astype(int)})


def test_a_bending_effect_under_proportional_hazards_is_not_flagged_for_the_spline_model(
        hinge, tmp_path):
    # tested with a Cox model linear in lab, the unmodelled bend leaves a time trend in its
    # Schoenfeld residuals (the reviewer's file: "violated, p 5e-40, lab"); on the spline
    # model's own fit, lab's basis one term, the reviewer measured p = 0.92
    path = tmp_path / "hinge.csv"
    hinge.to_csv(path, index=False)
    config = TrainConfig(models=["coxph_splines"], n_boot=100, cv=2)
    run = train_run(path, STUDY, config, tmp_path / "splines")
    ph = json.loads((run / "metrics.json").read_text())["proportional_hazards"]
    assert (ph["model"], ph["selected_model"]) == ("coxph_splines", "coxph_splines")
    assert ph["features"]["lab"]["df"] == 3  # x and 2 truncated-power terms of 4 knots
    assert ph["global"]["df"] == 4
    assert ph["violated"] is False
    assert ph["violating_features"] == []
    html = (run / "report.html").read_text().replace("&#39;", "'")
    assert "in the selected model's own fit, each continuous predictor's spline terms" in html
    assert "No violation detected" in html
    linear = train_run(path, STUDY, TrainConfig(models=["coxph"], n_boot=100, cv=2),
                       tmp_path / "linear")
    ph = json.loads((linear / "metrics.json").read_text())["proportional_hazards"]
    assert ph["violating_features"] == ["lab"]  # what the linear Cox model's test made of it
