"""Survival metrics against scikit-survival's own functions, and the bootstrap shortcuts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sksurv.compare import compare_survival
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import kaplan_meier_estimator

from permed.evaluate.survival import (
    METRIC_ESTIMATORS,
    SURVIVAL_METRICS,
    SurvivalGrid,
    _Evaluated,
    _replicates,
    calibration_slope,
    calibration_table,
    censoring_reference,
    harrell_c,
    kaplan_meier_at,
    logrank_test,
    proportional_hazards_test,
    replicate_counts,
    survival_metrics,
    survival_report,
)
from permed.exceptions import PermedError
from permed.models.risk import PenalizedCox, survival_y


def test_harrells_c_matches_scikit_survival_on_a_fixed_example():
    # 5 patients; comparable pairs (earlier event first): (1,2) (1,3) (1,4) (1,5) (3,4) (3,5)
    # and (3,4) again is not counted twice; pair (3,4) is discordant, (1,5) a tie in risk.
    time = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    event = np.array([True, False, True, False, True])
    risk = np.array([0.9, 0.5, 0.3, 0.4, 0.9])
    # comparable: patient 1 with 2, 3, 4, 5; patient 3 with 4, 5 -> 6 pairs
    # concordant: (1,2) (1,3) (1,4) + tie (1,5) = 0.5; (3,4) no; (3,5) no -> 3.5 / 6
    assert harrell_c(time, event, risk) == pytest.approx(3.5 / 6, abs=1e-12)
    assert harrell_c(time, event, risk) == concordance_index_censored(event, time, risk)[0]


@pytest.fixture(scope="module")
def whas(whas_cox):
    """WHAS500 split in two; a ridge Cox model's predictions on the second half."""
    model, X, test, reference = whas_cox
    grid = SurvivalGrid.for_data(test["time"], [365.0, 730.0, 1095.0])
    return {"reference": reference, "time": test["time"], "event": test["event"], "y": test,
            "risk": model.predict(X),
            "survival": model.predict_survival_function(X, grid.times), "grid": grid}


def test_point_metrics_are_scikit_survivals(whas):
    w = whas
    got = survival_metrics(w["reference"], w["time"], w["event"], w["risk"], w["survival"],
                           w["grid"], tau=1095.0)
    assert got["c_index"] == concordance_index_censored(w["event"], w["time"], w["risk"])[0]
    assert got["uno_c"] == concordance_index_ipcw(w["reference"], w["y"], w["risk"],
                                                  tau=1095.0)[0]
    ibs_cols = w["grid"].columns(w["grid"].ibs)
    assert got["ibs"] == integrated_brier_score(w["reference"], w["y"],
                                                w["survival"][:, ibs_cols], w["grid"].ibs)
    h_cols = w["grid"].columns(w["grid"].horizons)
    aucs = [cumulative_dynamic_auc(w["reference"], w["y"], 1 - w["survival"][:, c], h)[0][0]
            for c, h in zip(h_cols, w["grid"].horizons, strict=True)]
    assert got["td_auc"] == pytest.approx(np.mean(aucs), abs=1e-12)


@pytest.mark.parametrize("replicate", ["all ones", "a resample"])
def test_bootstrap_shortcuts_equal_scikit_survival_on_the_resampled_data(whas, replicate):
    w = whas
    n = len(w["time"])
    counts = (np.ones((1, n)) if replicate == "all ones"
              else replicate_counts(w["event"], 1, seed=3))
    rows = np.repeat(np.arange(n), counts[0].astype(int))
    expected = survival_metrics(w["reference"], w["time"][rows], w["event"][rows],
                                w["risk"][rows], w["survival"][rows], w["grid"], tau=1095.0,
                                detail=True)
    data = _Evaluated.build(w["reference"], w["time"], w["event"], w["risk"], w["survival"],
                            w["grid"], 1095.0)
    fast = _replicates(data, counts)
    for name, value in expected.items():
        assert fast[name][0] == pytest.approx(value, abs=1e-9), name


def test_the_brier_score_is_integrated_below_a_common_end_of_follow_up():
    # GBSG: 426 patients censored at 84 months, the longest follow-up, so the 90th percentile
    # of the times is the last follow-up time, where scikit-survival cannot integrate: the
    # integrated Brier score had been nan on every such split (and its interval alone shown)
    import pandas as pd

    from permed.testing import shared_data

    frame = pd.read_csv(shared_data("survival_pycox_csv/gbsg.csv"))
    frame = frame[frame["duration"] <= 84]  # 3 of 2,232 patients were followed longer
    y = survival_y(frame["duration"], frame["event"].astype(bool))
    train, test = y[::2], y[1::2]
    X = frame.drop(columns=["duration", "event"]).to_numpy(dtype=float)
    model = PenalizedCox().fit(X[::2], train)
    assert np.quantile(test["time"], 0.9) == test["time"].max()
    grid = SurvivalGrid.for_data(test["time"], [12.0, 36.0, 60.0])
    assert grid.ibs.max() < test["time"].max()
    survival = model.predict_survival_function(X[1::2], grid.times)
    reference, _ = censoring_reference(train, test)
    report = survival_report(reference, test["time"], test["event"], model.predict(X[1::2]),
                             survival, grid, tau=60.0, n_boot=100)
    ibs = report["test"]["ibs"]
    assert ibs["value"] == integrated_brier_score(reference, test,
                                                  survival[:, grid.columns(grid.ibs)], grid.ibs)
    assert ibs["ci_low"] < ibs["value"] < ibs["ci_high"]


def test_a_figure_undefined_on_the_patients_gets_no_interval(whas):
    # a grid reaching the last follow-up time: scikit-survival's Brier score is undefined
    # there, while the replicates' own integration is not; no interval without the figure
    w = whas
    end = w["time"].max()
    grid = SurvivalGrid(w["grid"].horizons, np.linspace(w["grid"].ibs.min(), end, 30))
    model_survival = np.exp(-np.outer(np.exp(w["risk"] - w["risk"].mean()), grid.times / 2000))
    report = survival_report(w["reference"], w["time"], w["event"], w["risk"], model_survival,
                             grid, tau=1095.0, n_boot=50)
    ibs = report["test"]["ibs"]
    assert np.isnan(ibs["value"])
    assert np.isnan(ibs["ci_low"])
    assert np.isnan(ibs["ci_high"])


def test_kaplan_meier_at_matches_scikit_survival(whas):
    steps, surv = kaplan_meier_estimator(whas["event"], whas["time"])
    for horizon in (100.0, 365.0, 1000.0):
        expected = surv[np.searchsorted(steps, horizon, side="right") - 1]
        assert kaplan_meier_at(whas["time"], whas["event"], horizon) == pytest.approx(expected)


def test_calibration_slope_is_the_cox_coefficient_of_the_complementary_log_log(whas):
    horizon = 730.0
    at_h = whas["survival"][:, whas["grid"].columns(np.array([horizon]))[0]]
    x = np.log(-np.log(at_h))[:, None]
    censored_at_h = survival_y(np.minimum(whas["time"], horizon),
                               whas["event"] & (whas["time"] <= horizon))
    reference = CoxPHSurvivalAnalysis(ties="efron").fit(x, censored_at_h).coef_[0]
    assert calibration_slope(whas["time"], whas["event"], at_h, horizon) == pytest.approx(
        reference, abs=1e-6)


def _tied_months(seed: int = 2):
    """500 patients followed in whole months, administratively censored at 24 (24 distinct
    times, 160 patients censored at 24), with the log hazard ``score``."""
    rng = np.random.default_rng(seed)
    score = rng.normal(size=500)
    latent, censor = rng.exponential(1 / (0.03 * np.exp(score))), rng.uniform(1, 60, 500)
    time = np.minimum(np.ceil(np.minimum(latent, censor)), 24.0)
    return time, (latent <= censor) & (time < 24), score


@pytest.mark.parametrize("horizon", [4.0, 8.0, 12.0])
def test_calibration_slope_handles_heavily_tied_times_with_efrons_method(horizon):
    # the refit used Breslow's handling of ties, the models Efron's: with integer months
    # (ties.csv) the slope was 1.36/1.37/1.38 at 4/8/12 months against 1.47/1.49/1.49 (lifelines)
    time, event, score = _tied_months()
    at_h = np.exp(-0.03 * horizon * np.exp(0.8 * score))  # too moderate: slope above 1
    x = np.log(-np.log(at_h))[:, None]
    censored_at_h = survival_y(np.minimum(time, horizon), event & (time <= horizon))
    efron = CoxPHSurvivalAnalysis(ties="efron").fit(x, censored_at_h).coef_[0]
    breslow = CoxPHSurvivalAnalysis(ties="breslow").fit(x, censored_at_h).coef_[0]
    assert efron - breslow > 0.02  # the ties matter here
    slope = calibration_slope(time, event, at_h, horizon)
    assert slope == pytest.approx(efron, abs=1e-6)
    # a case weight of 0 is a patient left out (bootstrap replicates weigh by their counts)
    counts = np.random.default_rng(0).multinomial(500, np.full(500, 1 / 500)).astype(float)
    kept = counts > 0
    assert calibration_slope(time, event, at_h, horizon, weights=kept.astype(float)) == (
        pytest.approx(calibration_slope(time[kept], event[kept], at_h[kept], horizon),
                      abs=1e-9))


def test_perfectly_calibrated_exponential_model_has_slope_near_one():
    rng = np.random.default_rng(0)
    hazard = np.exp(rng.normal(size=4000))
    time = rng.exponential(1 / hazard)
    event = np.ones(4000, dtype=bool)
    slope = calibration_slope(time, event, np.exp(-hazard * 1.0), 1.0)
    assert slope == pytest.approx(1.0, abs=0.08)


def test_survival_report_gives_every_figure_with_an_interval(whas):
    w = whas
    report = survival_report(w["reference"], w["time"], w["event"], w["risk"], w["survival"],
                             w["grid"], tau=1095.0, n_boot=200, seed=0)
    assert set(report["test"]) == set(SURVIVAL_METRICS)
    for entry in [*report["test"].values(), *report["td_auc_by_horizon"].values()]:
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    assert set(report["td_auc_by_horizon"]) == {"365", "730", "1095"}
    calibration = report["calibration"]["730"]
    assert calibration["slope"]["ci_low"] < calibration["slope"]["ci_high"]
    assert sum(row["n"] for row in calibration["deciles"]) == len(w["time"])
    assert {"c_index", "uno_c", "ibs", "td_auc"} <= set(METRIC_ESTIMATORS)
    again = survival_report(w["reference"], w["time"], w["event"], w["risk"], w["survival"],
                            w["grid"], tau=1095.0, n_boot=200, seed=0)
    assert again["test"] == report["test"]


def test_a_horizon_without_an_event_gets_no_td_auc_and_no_numpy_warning(whas):
    # an event column coded 1 = alive put every "event" after the first horizon: scikit-survival
    # divided 0 by 0 there and its RuntimeWarning reached the console of permed evaluate
    w = whas
    event = w["event"] & (w["time"] > 365.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = survival_metrics(w["reference"], w["time"], event, w["risk"], w["survival"],
                               w["grid"], tau=1095.0, detail=True)
    assert np.isnan(got["td_auc@365"])
    assert np.isfinite(got["td_auc@730"])


def test_survival_report_refuses_a_survival_matrix_off_the_grid(whas):
    with pytest.raises(PermedError, match="survival has shape"):
        survival_report(whas["reference"], whas["time"], whas["event"], whas["risk"],
                        whas["survival"][:, :3], whas["grid"], tau=1095.0, n_boot=100)


def test_observed_expected_ci_is_kaplan_meiers_over_the_mean_predicted_risk(whas):
    # the event-stratified bootstrap keeps the number of events, so the observed risk at a late
    # horizon hardly varied: at 1095 days its CI was about half as wide as Kaplan-Meier's
    w = whas
    report = survival_report(w["reference"], w["time"], w["event"], w["risk"], w["survival"],
                             w["grid"], tau=1095.0, n_boot=200)
    steps, surv, (low, high) = kaplan_meier_estimator(w["event"], w["time"],
                                                      conf_type="log-log")
    for j, h in enumerate(w["grid"].horizons):
        expected = np.mean(1.0 - w["survival"][:, w["grid"].columns(w["grid"].horizons)[j]])
        at = np.searchsorted(steps, h, side="right") - 1
        oe = report["calibration"][f"{h:g}"]["observed_expected"]
        assert oe["value"] == pytest.approx((1.0 - surv[at]) / expected, rel=1e-12)
        assert oe["ci_low"] == pytest.approx((1.0 - high[at]) / expected, rel=1e-12)
        assert oe["ci_high"] == pytest.approx((1.0 - low[at]) / expected, rel=1e-12)


def test_calibration_table_groups_by_predicted_risk():
    rng = np.random.default_rng(1)
    risk = rng.random(400)
    time = rng.exponential(1 / (0.2 + risk))
    rows = calibration_table(time, np.ones(400, dtype=bool), risk, 1.0)
    assert len(rows) == 10
    predicted = [r["predicted"] for r in rows]
    assert predicted == sorted(predicted)
    assert rows[-1]["observed"] > rows[0]["observed"]


@pytest.mark.parametrize("events", [False, True])
def test_a_group_with_no_event_or_only_events_gets_an_exact_binomial_interval(events):
    # 22 patients in a group; by the horizon 1.0 none (or all 20 whose status is known) had
    # the event: Kaplan-Meier's log-log interval had zero width (observed 0.0, 0.0 to 0.0)
    from scipy.stats import binomtest

    time = np.r_[np.full(20, 0.5 if events else 2.0), 0.3, 0.4]  # 2 censored early
    event = np.r_[np.full(20, events), False, False]
    (row,) = calibration_table(time, event, np.linspace(0.1, 0.2, 22), 1.0, bins=1)
    interval = binomtest(20 if events else 0, 20).proportion_ci(method="exact")
    assert row["observed"] == (1.0 if events else 0.0)
    assert row["observed_low"] == pytest.approx(interval.low, abs=1e-12)
    assert row["observed_high"] == pytest.approx(interval.high, abs=1e-12)
    assert row["observed_high"] - row["observed_low"] > 0.15


def test_logrank_test_is_scikit_survivals():
    rng = np.random.default_rng(2)
    groups = rng.choice(["low", "high"], 300)
    time = rng.exponential(np.where(groups == "high", 1.0, 2.0))
    event = rng.random(300) < 0.8
    statistic, p_value = compare_survival(survival_y(time, event), groups)
    result = logrank_test(time, event, groups)
    assert result == {"statistic": statistic, "df": 1, "p_value": p_value}


@pytest.mark.parametrize(("proportional", "low", "high"), [(True, 0.05, 1.0),
                                                            (False, 0.0, 1e-4)])
def test_proportional_hazards_test_flags_a_time_varying_effect(proportional, low, high):
    rng = np.random.default_rng(3)
    n = 800
    X = rng.normal(size=(n, 2))
    early = rng.exponential(np.exp(-0.7 * X[:, 0] - 0.5 * X[:, 1]))
    late = rng.exponential(np.exp(-0.7 * X[:, 0] + (0.5 if proportional else -1.5) * X[:, 1]))
    time = early if proportional else np.where(early < 0.5, early, 0.5 + late)
    censor = rng.exponential(3, n)
    event, time = time <= censor, np.minimum(time, censor)
    model = PenalizedCox(alpha=0.0).fit(X, survival_y(time, event))
    result = proportional_hazards_test(model.scaler_.transform(X), time, event, model.coef_,
                                       ["x0", "x1"])
    assert low <= result["features"]["x1"]["p_value"] <= high
    assert result["events"] == int(event.sum())


def _crossing_hazards(n: int = 600, seed: int = 0):
    """x1 with proportional hazards, noise, and two groups whose hazards cross (Weibull shape
    0.5 in B, 2 in A, same median); continuous times, no ties."""
    rng = np.random.default_rng(seed)
    x1, group, noise = rng.normal(size=n), rng.integers(0, 2, n), rng.normal(size=n)
    shape = np.where(group == 1, 0.5, 2.0)
    latent = (5 * np.log(2) ** (-1 / shape) * (-np.log(rng.uniform(size=n))) ** (1 / shape)
              * np.exp(-0.5 * x1 / shape))
    censor = rng.uniform(0, 20, n)
    return x1, group, noise, np.minimum(latent, censor), latent <= censor


def test_a_two_level_categorical_is_tested_as_one_term_like_lifelines():
    # the workflow passes every level one-hot encoded and the ridge fit: the redundant
    # direction got variance 1/alpha and each level's chi-squared was 0.29 (p = 0.59) where
    # lifelines finds 156 with one level as the reference (permed train on ph_bad_cat.csv)
    x1, group, noise, time, event = _crossing_hazards()
    full = np.column_stack([x1, noise, group == 0, group == 1]).astype(float)
    model = PenalizedCox(alpha=1.0).fit(full, survival_y(time, event))
    result = proportional_hazards_test(model.scaler_.transform(full), time, event, model.coef_,
                                       ["x1", "noise", "grp_A", "grp_B"], penalty=1.0,
                                       terms={"x1": [0], "noise": [1], "grp": [2, 3]})
    # lifelines 0.30.3: CoxPHFitter() (unpenalized, Efron) on x1, noise, grp_B;
    # proportional_hazard_test(time_transform=lambda t, c, w: 1 - KM(t-)) (the left-continuous
    # KM of R's cox.zph, transform "km"); global: sum over events of (1 - KM(t-), centred)
    # times lifelines' Schoenfeld residuals, through its variance_matrix_ (3 df). The ridge
    # fit's coefficients differ from the unpenalized ones by under 1%.
    assert set(result["features"]) == {"x1", "noise", "grp"}
    grp = result["features"]["grp"]
    assert grp["df"] == 1
    assert grp["statistic"] == pytest.approx(159.905, rel=5e-3)
    assert grp["p_value"] < 1e-30
    assert result["features"]["x1"]["statistic"] == pytest.approx(2.2776, rel=5e-3)
    assert result["global"]["df"] == 3
    assert result["global"]["statistic"] == pytest.approx(167.347, rel=5e-3)


def test_a_categorical_term_does_not_depend_on_its_coding():
    # GBSG2, unpenalized: 5 numeric columns, horTh and menostat (2 levels), tgrade (3 levels)
    import pandas as pd
    from sksurv.datasets import load_gbsg2

    X, y = load_gbsg2()
    X = X.astype(dict.fromkeys(("horTh", "menostat", "tgrade"), str))
    time, event = y["time"], y["cens"]
    reference = pd.get_dummies(X, drop_first=True, dtype=float)  # levels no, Post, I dropped
    model = PenalizedCox(alpha=0.0).fit(reference.to_numpy(), survival_y(time, event))
    coef = pd.Series(model.coef_ / model.scaler_.scale_, index=reference.columns)

    def term_test(design: pd.DataFrame, coef: pd.Series) -> dict:
        terms: dict[str, list[int]] = {}
        for j, column in enumerate(design.columns):
            terms.setdefault(column.split("_")[0], []).append(j)
        return proportional_hazards_test(design.to_numpy(), time, event,
                                         coef.reindex(design.columns, fill_value=0.0),
                                         list(design.columns), terms=terms)

    every_level = pd.get_dummies(X, dtype=float)  # the reference levels' coefficients 0
    # the same linear predictor with tgrade III as the reference level
    other = every_level.drop(columns=["horTh_no", "menostat_Post", "tgrade_III"])
    other_coef = coef.drop("tgrade_III")
    other_coef["tgrade_I"] = -coef["tgrade_III"]
    other_coef["tgrade_II"] = coef["tgrade_II"] - coef["tgrade_III"]
    results = [term_test(reference, coef), term_test(every_level, coef),
               term_test(other, other_coef)]
    # lifelines 0.30.3 on the drop-first coding (as in the test above): age 2.957, global
    # 22.684 on 9 df; tgrade's 2-df Wald test of its two time trends through lifelines'
    # variance_matrix_ block: 6.683. GBSG2 has 29 tied event times: lifelines' Schoenfeld
    # residuals use Efron's weights, permed's the risk set's mean (0.1% apart).
    for result in results:
        assert result["global"]["df"] == 9
        assert result["global"]["statistic"] == pytest.approx(22.684, rel=2e-3)
        assert result["features"]["tgrade"]["df"] == 2
        assert result["features"]["tgrade"]["statistic"] == pytest.approx(6.683, rel=2e-3)
        assert result["features"]["age"]["statistic"] == pytest.approx(2.957, rel=2e-3)
        for name, figures in results[0]["features"].items():
            assert result["features"][name]["statistic"] == pytest.approx(
                figures["statistic"], rel=1e-8)


def test_large_cohorts_get_the_same_point_figures_from_the_pair_sums(whas, monkeypatch):
    w = whas
    expected = survival_metrics(w["reference"], w["time"], w["event"], w["risk"], w["survival"],
                                w["grid"], tau=1095.0, detail=True)
    monkeypatch.setattr("permed.evaluate.survival.POINT_SUMS_FROM_ROWS", 10)
    large = survival_metrics(w["reference"], w["time"], w["event"], w["risk"], w["survival"],
                             w["grid"], tau=1095.0, detail=True)
    assert large.keys() == expected.keys()
    for name, value in expected.items():
        assert large[name] == pytest.approx(value, abs=1e-9, nan_ok=True), name
    headline = survival_metrics(w["reference"], w["time"], w["event"], w["risk"], w["survival"],
                                w["grid"], tau=1095.0)
    assert headline == {name: large[name] for name in SURVIVAL_METRICS}
