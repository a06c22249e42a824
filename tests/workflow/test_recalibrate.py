"""permed recalibrate as a library: a site whose patients differ from the development site's
by a known intercept and slope (diagnose) or a doubled baseline hazard (risk). Each truth is
simulated; the figures are checked on a fresh sample of the local site, never on the patients
the recalibration was fitted to."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from permed.bundle import load_bundle
from permed.evaluate import calibration_slope_intercept
from permed.evaluate.survival import kaplan_meier_at
from permed.exceptions import PermedError
from permed.privacy import generate_key, is_encrypted, save_table, use_key
from permed.report import render_markdown
from permed.study import Study
from permed.study._validate_risk import time_text
from permed.testing import assert_valid_absolute_risk, assert_valid_survival
from permed.workflow import TrainConfig, predict_run, train_run
from permed.workflow._recalibrate import recalibrate_run
from permed.workflow._recalibrated import (
    RecalibratedSurvival,
    cox_slope,
    fit_logistic_recalibration,
)

FAST = {"n_boot": 100, "cv": 3}
# the local site: logit P(disease) = LOCAL_A + LOCAL_B * (the development site's logit)
LOCAL_A, LOCAL_B = 1.2, 0.6
HAZARD_RATIO = 2.0  # the local site's baseline hazard against the development site's


def diagnose_cohort(n: int, seed: int, a: float = 0.0, b: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    lp = -0.5 + x1 + 0.8 * x2
    disease = rng.random(n) < 1 / (1 + np.exp(-(a + b * lp)))
    return pd.DataFrame({"x1": x1.round(3), "x2": x2.round(3),
                         "disease": np.where(disease, "yes", "no")})


def risk_cohort(n: int, seed: int, hazard_ratio: float = 1.0,
                censoring: tuple[float, float] = (1, 6)) -> pd.DataFrame:
    """Exponential times (0.15 events a year at x = 0), censored uniformly over 1-6 years
    (``censoring``; infinite: no patient censored)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    rate = 0.15 * hazard_ratio * np.exp(0.7 * x1 + 0.5 * x2)
    event_time, censored = rng.exponential(1 / rate), rng.uniform(*censoring, n)
    return pd.DataFrame({"x1": x1.round(3), "x2": x2.round(3),
                         "years": np.minimum(event_time, censored).round(4) + 1e-4,
                         "died": (event_time <= censored).astype(int)})


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def diagnose(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recalibrate-diagnose")
    diagnose_cohort(2000, 1).to_csv(tmp / "source.csv", index=False)
    diagnose_cohort(3000, 2, LOCAL_A, LOCAL_B).to_csv(tmp / "local.csv", index=False)
    diagnose_cohort(5000, 3, LOCAL_A, LOCAL_B).to_csv(tmp / "fresh.csv", index=False)
    source = train_run(tmp / "source.csv", Study(task="diagnose", target="disease"),
                       TrainConfig(models=["logistic"], **FAST), tmp / "source")
    before = _digests(source)
    out = recalibrate_run(source, tmp / "local.csv", tmp / "local", n_boot=200)
    return tmp, source, out, before


@pytest.fixture(scope="module")
def risk(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recalibrate-risk")
    risk_cohort(1500, 1).to_csv(tmp / "source.csv", index=False)
    risk_cohort(1500, 2, HAZARD_RATIO).to_csv(tmp / "local.csv", index=False)
    risk_cohort(5000, 3, HAZARD_RATIO).to_csv(tmp / "fresh.csv", index=False)
    source = train_run(tmp / "source.csv", Study(task="risk", time="years", event="died"),
                       TrainConfig(models=["coxph"], horizons=[1.0, 2.0, 3.0], **FAST),
                       tmp / "source")
    out = recalibrate_run(source, tmp / "local.csv", tmp / "local", n_boot=200)
    return tmp, source, out


def test_diagnose_recalibration_removes_the_shift_on_a_fresh_local_sample(diagnose):
    tmp, source, out, _ = diagnose
    fresh = pd.read_csv(tmp / "fresh.csv")
    y = (fresh["disease"] == "yes").to_numpy(dtype=int)
    old = calibration_slope_intercept(y, predict_run(source, tmp / "fresh.csv")["prob_yes"])
    new = calibration_slope_intercept(y, predict_run(out, tmp / "fresh.csv")["prob_yes"])
    # measured: calibration-in-the-large 1.60 before, 0.007 after; slope 0.60 -> 1.07
    assert old["intercept"] > 1.0
    assert abs(new["intercept"]) < 0.2
    assert abs(new["slope"] - 1.0) < 0.15
    entry = json.loads((out / "metrics.json").read_text())["recalibration"]
    # the fitted update recovers the simulated one (the source logistic model is near exact)
    assert entry["slope"]["value"] == pytest.approx(LOCAL_B, abs=0.1)
    assert entry["slope"]["ci_low"] < LOCAL_B < entry["slope"]["ci_high"]
    assert entry["intercept"]["value"] == pytest.approx(LOCAL_A, abs=0.25)


def test_diagnose_metrics_record_the_update_and_its_out_of_sample_check(diagnose):
    tmp, source, out, _ = diagnose
    metrics = json.loads((out / "metrics.json").read_text())
    entry = metrics["recalibration"]
    assert entry["method"] == "slope"
    index = (source / "model" / "bundle.json").read_bytes()
    assert entry["source_run"] == {
        "path": str(source), "selected_model": "logistic",
        "data_fingerprint": json.loads((source / "metrics.json").read_text())["data"][
            "fingerprint"],
        "bundle_sha256": f"sha256:{hashlib.sha256(index).hexdigest()}"}
    assert entry["cohort"]["rows"] == entry["cohort"]["patients"] == 3000
    assert entry["cohort"]["fingerprint"] == metrics["data"]["fingerprint"]
    assert entry["interval"].startswith("percentile bootstrap 95% CI")
    assert entry["calibration"]["after_method"].startswith("5-fold cross-fitting")
    before, after = entry["calibration"]["before"], entry["calibration"]["after"]
    assert before["calibration_intercept"]["value"] > 1.0
    assert abs(after["calibration_intercept"]["value"]) < 0.15
    assert after["brier"]["value"] < before["brier"]["value"]
    assert metrics["test"]["calibration_intercept"] == after["calibration_intercept"]
    assert entry["failed_replicates"] == 0
    assert metrics["threshold"]["classification"].startswith("unchanged by construction")
    html = (out / "report.html").read_text()
    assert "Calibration before and after" in html
    assert "data:image/png" in html


def test_diagnose_predict_applies_the_update_and_keeps_the_labels(diagnose):
    tmp, source, out, _ = diagnose
    old, new = predict_run(source, tmp / "fresh.csv"), predict_run(out, tmp / "fresh.csv")
    entry = json.loads((out / "metrics.json").read_text())["recalibration"]
    a, b = entry["intercept"]["value"], entry["slope"]["value"]
    p = np.clip(old["prob_yes"].to_numpy(), 1e-6, 1 - 1e-6)
    expected = 1 / (1 + np.exp(-(a + b * np.log(p / (1 - p)))))
    np.testing.assert_allclose(new["prob_yes"], expected, atol=1e-9)
    np.testing.assert_allclose(new["prob_no"] + new["prob_yes"], 1.0)
    # the threshold is carried through the update: the same patients are above it
    assert (new["predicted"] == old["predicted"]).all()
    model, _ = load_bundle(out)
    assert model.threshold == pytest.approx(entry["threshold"]["recalibrated"])


def test_the_source_run_is_never_changed(diagnose):
    _, source, _, before = diagnose
    assert _digests(source) == before


def test_intercept_only_fixes_the_slope_at_one(diagnose):
    tmp, source, _, _ = diagnose
    out = recalibrate_run(source, tmp / "local.csv", tmp / "local-intercept",
                          method="intercept", n_boot=100)
    entry = json.loads((out / "metrics.json").read_text())["recalibration"]
    assert entry["slope"] == {"value": 1.0, "ci_low": None, "ci_high": None, "fixed": True}
    # the slope it does not apply is still estimated, to see the model's direction here
    assert entry["slope_check"]["value"] == pytest.approx(LOCAL_B, abs=0.1)
    fresh = pd.read_csv(tmp / "fresh.csv")
    y = (fresh["disease"] == "yes").to_numpy(dtype=int)
    new = calibration_slope_intercept(y, predict_run(out, tmp / "fresh.csv")["prob_yes"])
    # in the large: the offset intercept is right; the slope (0.6 simulated) is not updated
    assert abs(new["intercept"]) < 0.2
    assert new["slope"] < 0.75


def test_risk_recalibration_matches_the_local_observed_risk(risk):
    tmp, source, out = risk
    fresh = pd.read_csv(tmp / "fresh.csv")
    observed = {h: 1 - kaplan_meier_at(fresh["years"].to_numpy(), fresh["died"].to_numpy(
        dtype=bool), h) for h in (1.0, 2.0, 3.0)}
    old, new = predict_run(source, tmp / "fresh.csv"), predict_run(out, tmp / "fresh.csv")
    for h, column in zip((1.0, 2.0, 3.0), ("risk_at_1", "risk_at_2", "risk_at_3"), strict=True):
        gap_before = abs(old[column].mean() - observed[h])
        gap_after = abs(new[column].mean() - observed[h])
        # measured at 1 year: observed 0.319, source 0.184, recalibrated 0.300
        assert gap_before > 0.08
        assert gap_after < 0.03
        assert gap_after < gap_before / 4
    assert_valid_absolute_risk(new[["risk_at_1", "risk_at_2", "risk_at_3"]].to_numpy())


def test_risk_curves_are_valid_survival_curves(risk):
    tmp, _, out = risk
    model, _ = load_bundle(out)
    fresh = pd.read_csv(tmp / "fresh.csv").head(300)
    longest = float(pd.read_csv(tmp / "local.csv")["years"].max())
    times = np.linspace(0.0, longest, 41)  # up to the local follow-up
    assert_valid_survival(model.survival_curves(fresh, times).to_numpy(), 300, 41)
    assert_valid_survival(model.survival_curves(fresh).to_numpy(), 300,
                          len(model.event_times))
    # past it the local baseline hazard is flat: the curve there is refused, not repeated
    with pytest.raises(PermedError, match=re.escape(
            f"survival asked at 8, past {time_text(longest)}, the longest follow-up of the "
            "cohort this model was recalibrated on: its baseline hazard is flat after that, "
            "so the curve there is not an estimate; ask for times up to "
            f"{time_text(longest, floor=True)}")):
        model.survival_curves(fresh, [1.0, 8.0])


def test_every_path_to_a_survival_time_refuses_one_past_the_follow_up_or_not_finite(risk):
    from permed.explain import risk_counterfactual
    from permed.explain._outcomes import explain_risk

    tmp, _, out = risk
    model, _ = load_bundle(out)
    fresh = pd.read_csv(tmp / "fresh.csv").head(5)
    longest = float(pd.read_csv(tmp / "local.csv")["years"].max())
    past = re.escape(f"survival asked at 8, past {time_text(longest)}, the longest follow-up")
    with pytest.raises(PermedError, match=past):
        model.survival(fresh, [8.0])
    with pytest.raises(PermedError, match=past):
        explain_risk(model, fresh, horizon=8.0, permutations=10)
    with pytest.raises(PermedError, match=past):
        risk_counterfactual(model, fresh.iloc[[0]], actionable=["x1"], horizon=8.0)
    with pytest.raises(PermedError, match=re.escape(
            "survival asked at nan (1 of the 2 times asked): a time must be a finite number in "
            "the model's time unit; check the horizon or times passed")):
        model.survival(fresh, [1.0, np.nan])
    # the default answers (at the local event times, up to the follow-up) are not refused
    assert model.survival_curves(fresh).shape == (5, len(model.event_times))


def test_risk_metrics_record_the_reference_horizon_and_hazard_ratio(risk):
    _, _, out = risk
    metrics = json.loads((out / "metrics.json").read_text())
    entry = metrics["recalibration"]
    assert entry["reference_horizon"] == 2.0
    assert entry["reference_horizon_rule"] == ("the middle of the run's horizons the local "
                                               "cohort follows enough patients to (checkable)")
    assert entry["horizons"]["kept"] == [1.0, 2.0, 3.0]
    assert entry["horizons"]["dropped"] == {}
    assert entry["failed_replicates"] == 0
    # log H0(h_ref) of the update is log of the simulated hazard ratio when the slope is ~1
    assert entry["intercept"]["value"] == pytest.approx(np.log(HAZARD_RATIO), abs=0.15)
    assert entry["slope"]["value"] == pytest.approx(1.0, abs=0.12)
    assert entry["cohort"]["counts"]["event"] > 0
    after = entry["calibration"]["after"]["horizons"]
    before = entry["calibration"]["before"]["horizons"]
    for key in ("1", "2", "3"):
        assert before[key]["observed_expected"]["ci_low"] > 1.2
        assert after[key]["observed_expected"]["ci_low"] < 1.0 < \
            after[key]["observed_expected"]["ci_high"]
    assert "Calibration before and after" in (out / "report.html").read_text()
    markdown = render_markdown(out)
    assert markdown.startswith("# permed model report — Recalibration — risk: died\n")
    assert "| Reference horizon h_ref | 2.00 |" in markdown


# --------------------------------------------------------------------- what it must refuse


def _manifest_warnings(run: Path) -> list[str]:
    return json.loads((run / "manifest.json").read_text())["warnings"]


def _scored_by(source: Path, frame: pd.DataFrame, path: Path) -> np.ndarray:
    """The source run's probability of 'yes' for ``frame``'s patients."""
    frame[["x1", "x2"]].to_csv(path, index=False)
    return predict_run(source, path)["prob_yes"].to_numpy()


@pytest.fixture(scope="module")
def four_horizons(tmp_path_factory):
    """A risk run with horizons 1-4 years; local cohorts censored by 2.5 or by 0.9 years."""
    tmp = tmp_path_factory.mktemp("recalibrate-horizons")
    risk_cohort(1500, 1).to_csv(tmp / "source.csv", index=False)
    risk_cohort(600, 4, HAZARD_RATIO, censoring=(0.5, 2.5)).to_csv(tmp / "short.csv",
                                                                    index=False)
    risk_cohort(600, 5, HAZARD_RATIO, censoring=(0.3, 0.9)).to_csv(tmp / "shorter.csv",
                                                                    index=False)
    source = train_run(tmp / "source.csv", Study(task="risk", time="years", event="died"),
                       TrainConfig(models=["coxph"], horizons=[1.0, 2.0, 3.0, 4.0], **FAST),
                       tmp / "source")
    return tmp, source


def test_horizons_past_the_local_follow_up_are_dropped_and_h_ref_is_among_the_kept(
        four_horizons):
    tmp, source = four_horizons
    out = recalibrate_run(source, tmp / "short.csv", tmp / "short-run", n_boot=100)
    longest = float(pd.read_csv(tmp / "short.csv")["years"].max())
    metrics = json.loads((out / "metrics.json").read_text())
    entry = metrics["recalibration"]
    # the middle of the checkable 1 and 2 years, not of all four (3 years)
    assert entry["reference_horizon"] == 2.0
    assert entry["horizons"]["kept"] == [1.0, 2.0]
    assert entry["horizons"]["dropped"] == {"3": 0, "4": 0}
    assert entry["horizons"]["local_max_follow_up"] == pytest.approx(longest)
    assert metrics["horizons"]["values"] == [1.0, 2.0]
    assert metrics["horizons"]["source"] == [1.0, 2.0, 3.0, 4.0]
    # before/after only where the local Kaplan-Meier curve is not flat by construction
    for side in ("before", "after"):
        assert list(entry["calibration"][side]["horizons"]) == ["1", "2"]
    for h in (3, 4):
        assert (f"horizon {h} is dropped from the recalibrated model: only 0 of 600 local "
                "patients are followed that long in 'years' (30 needed; longest local follow-up "
                f"{time_text(longest)}), and the local baseline hazard is flat after the last "
                "local time, so the risk by then would not be estimated; the recalibrated "
                "model reports 1, 2") in _manifest_warnings(out)
    answers = predict_run(out, tmp / "short.csv")
    assert [c for c in answers.columns if c.startswith("risk_at_")] == ["risk_at_1", "risk_at_2"]
    assert not answers[["risk_at_1", "risk_at_2"]].isna().any().any()
    assert "3 (dropped: not checkable, 0 followed)" in render_markdown(out)


def test_a_cohort_followed_shorter_than_every_horizon_is_refused(four_horizons):
    tmp, source = four_horizons
    years = pd.read_csv(tmp / "shorter.csv")["years"].to_numpy()
    reach = float(np.sort(years)[::-1][29])  # 30 patients (20, or 5% of 600) reach it
    with pytest.raises(PermedError, match=re.escape(
            "no horizon of the model (1, 2, 3, 4) is reached by 30 of the 600 patients of the "
            f"local cohort in 'years' (longest follow-up {time_text(float(years.max()))}): a "
            "recalibration on it would not estimate the risk by any of them, since its "
            "baseline hazard is flat after the last local time; recalibrate on a cohort "
            f"followed longer, or train a model with horizons up to "
            f"{time_text(reach, floor=True)} (permed train --horizons)")):
        recalibrate_run(source, tmp / "shorter.csv", tmp / "shorter-run", n_boot=100)
    assert not (tmp / "shorter-run").exists()


def _few(tmp: Path, positives: int) -> Path:
    """The local cohort with only its first ``positives`` patients with the disease."""
    local = pd.read_csv(tmp / "local.csv")
    keep = (local["disease"] == "no") | ((local["disease"] == "yes").cumsum() <= positives)
    path = tmp / f"few-{positives}.csv"
    local[keep].to_csv(path, index=False)
    return path


def test_fewer_than_100_in_the_smaller_class_is_warned_of_with_the_guidance(diagnose):
    tmp, source, _, _ = diagnose
    out = recalibrate_run(source, _few(tmp, 60), tmp / "few-60", n_boot=100)
    assert ("the local cohort has 60 patients with 'yes' (the smaller outcome class of "
            "'disease'), fewer than the 100 sample-size guidance asks for to check or update a "
            "model's calibration (Vergouwe et al., J Clin Epidemiol 2005; Collins et al., Stat "
            "Med 2016; Riley et al., Stat Med 2021): the update and its CIs are imprecise; "
            "--method intercept estimates less and is steadier") in _manifest_warnings(out)


def test_a_slope_from_fewer_than_20_in_the_smaller_class_is_refused(diagnose):
    tmp, source, _, _ = diagnose
    with pytest.raises(PermedError, match=re.escape(
            "the local cohort has 15 patients with 'yes' (the smaller outcome class of "
            "'disease'): a recalibration slope needs at least 20 (100 recommended: Vergouwe "
            "et al., J Clin Epidemiol 2005; Collins et al., Stat Med 2016; Riley et al., Stat "
            "Med 2021); use --method "
            "intercept, which updates the average risk only, or recalibrate on a larger "
            "cohort")):
        recalibrate_run(source, _few(tmp, 15), tmp / "few-15", n_boot=100)
    out = recalibrate_run(source, _few(tmp, 15), tmp / "few-15", method="intercept",
                          n_boot=100)
    assert any(w.startswith("the local cohort has 15 patients with 'yes'")
               for w in _manifest_warnings(out))


def test_outcomes_separated_by_the_model_leave_no_slope(diagnose):
    tmp, source, _, _ = diagnose
    local = diagnose_cohort(600, 5)
    p = _scored_by(source, local, tmp / "separated-x.csv")
    local["disease"] = np.where(p > np.median(p), "yes", "no")
    local.to_csv(tmp / "separated.csv", index=False)
    # scikit-learn's unpenalized fit stops at some large slope; it has no finite estimate
    with pytest.raises(PermedError, match=re.escape(
            "the recalibration slope has no finite estimate on this cohort: every one of its "
            "300 patients with 'yes' has a probability at or above every one of its 300 with "
            "'no' (the source model's probability separates its outcomes perfectly; the slope "
            "tends to infinity): use --method intercept, or recalibrate on a larger cohort")):
        recalibrate_run(source, tmp / "separated.csv", tmp / "separated-run", n_boot=100)
    out = recalibrate_run(source, tmp / "separated.csv", tmp / "separated-run",
                          method="intercept", n_boot=100)
    check = json.loads((out / "metrics.json").read_text())["recalibration"]["slope_check"]
    assert (check["value"], check["separation"]) == (None, "perfect")


@pytest.mark.parametrize("method", ["slope", "intercept"])
def test_a_model_ranking_the_site_backwards_is_refused_by_both_methods(diagnose, method):
    tmp, source, _, _ = diagnose
    local = diagnose_cohort(600, 5)
    p = _scored_by(source, local, tmp / "reversed-x.csv")
    local["disease"] = np.where(p < np.median(p), "yes", "no")  # every 'yes' at the bottom
    local.to_csv(tmp / "reversed.csv", index=False)
    with pytest.raises(PermedError, match=re.escape(
            "the source model ranks the patients of this cohort backwards: every one of its "
            "300 patients with 'no' has a probability at or above every one of its 300 with "
            "'yes' (reverse separation: the recalibration slope tends to minus infinity), "
            "which neither --method slope nor --method intercept can repair; check the "
            "outcome coding of 'disease' (which value is 'yes'), or train a model on this "
            "site's patients (permed train)")):
        recalibrate_run(source, tmp / "reversed.csv", tmp / f"reversed-{method}",
                        method=method, n_boot=100)


@pytest.mark.parametrize("method", ["slope", "intercept"])
def test_a_risk_model_ranking_the_site_backwards_is_refused_by_both_methods(risk, method):
    tmp, source, _ = risk
    local = risk_cohort(300, 12, HAZARD_RATIO)
    local[["x1", "x2"]].to_csv(tmp / "backwards-x.csv", index=False)
    risk_at = predict_run(source, tmp / "backwards-x.csv")["risk_at_2"].to_numpy()
    # the lowest-risk patient dies first, then the next: each event the lowest of its risk set
    local["years"] = 0.01 + np.argsort(np.argsort(risk_at, kind="stable")) * 5.0 / 300
    local["died"] = 1
    local.to_csv(tmp / "backwards.csv", index=False)
    with pytest.raises(PermedError, match=re.escape(
            "the source model ranks the patients of this cohort backwards: each of its 300 "
            "events among 300 patients has the lowest risk by 2 of the patients still at risk "
            "at its time (reverse separation: the recalibration slope tends to minus "
            "infinity), which neither --method slope nor --method intercept can repair; check "
            "the event coding of 'died'")):
        recalibrate_run(source, tmp / "backwards.csv", tmp / f"backwards-{method}",
                        method=method, n_boot=100)


def test_a_fold_without_a_slope_is_refused_with_its_number_counts_and_direction(diagnose):
    tmp, source, _, _ = diagnose
    local = diagnose_cohort(400, 6)
    p = _scored_by(source, local, tmp / "one-x.csv")
    local["disease"] = np.where(p > np.median(p), "yes", "no")
    # one patient with the disease at the lowest probability: the cohort overlaps, the
    # training part of the fold that holds it out does not
    # (and the 'yes' just above the median becomes a 'no': still 200 of each)
    local.loc[int(np.argmin(np.where(local["disease"] == "yes", p, np.inf))), "disease"] = "no"
    local.loc[int(np.argmin(p)), "disease"] = "yes"
    local.to_csv(tmp / "one.csv", index=False)
    with pytest.raises(PermedError, match=(
            r"^the recalibration slope has no finite estimate on the training part of "
            r"cross-fitting fold [1-5] of 5 \(the other 4 folds, whose update checks fold "
            r"[1-5] out of sample\): every one of its 160 patients with 'yes' has a "
            r"probability at or above every one of its 160 with 'no' \(the source model's "
            r"probability separates its outcomes perfectly; the slope tends to infinity\): "
            r"use --method intercept, or recalibrate on a larger cohort$")):
        recalibrate_run(source, tmp / "one.csv", tmp / "one-run", n_boot=100)


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_separation_is_detected_in_both_fits_with_its_direction(direction):
    x = np.linspace(-3, 3, 200)
    y = (direction * x > 0.2).astype(int)
    intercept, slope = fit_logistic_recalibration(x, y, "slope")
    assert np.isnan(intercept)
    assert slope == direction * np.inf, "the slope's limit says the separation's direction"
    assert np.isfinite(fit_logistic_recalibration(x, y, "intercept")[0])
    # Cox: every event has the largest (or smallest) lp of its risk set, failing first
    event = direction * x > 0
    time = np.where(event, 4.0 - direction * x, 10.0)
    assert cox_slope(x, time, event) == direction * np.inf, "Cox separation's direction"
    times = np.random.default_rng(0).exponential(np.exp(-direction * x))
    assert np.isfinite(cox_slope(x, times, np.ones(200, dtype=bool)))


def test_bootstrap_replicates_without_an_estimate_are_counted_and_warned_of(diagnose):
    tmp, source, _, _ = diagnose
    local = diagnose_cohort(400, 6)
    p = _scored_by(source, local, tmp / "near-x.csv")
    local["disease"] = np.where(p > np.median(p), "yes", "no")
    # three patients with the disease among the lowest probabilities: the cohort overlaps,
    # a resample that misses all three does not (about 0.37^3 = 5% of them)
    local.loc[np.argsort(p)[:3], "disease"] = "yes"
    local.to_csv(tmp / "near.csv", index=False)
    out = recalibrate_run(source, tmp / "near.csv", tmp / "near-run", n_boot=200)
    entry = json.loads((out / "metrics.json").read_text())["recalibration"]
    failed = entry["failed_replicates"]
    assert 2 < failed < 40
    assert entry["slope"]["ci_low"] is not None
    assert (f"{failed} of 200 bootstrap replicates ({failed / 200:.1%}) have no finite "
            "recalibration estimate (the resample's outcomes were separated by the model's "
            f"probability): the 95% CIs are percentiles of the other {200 - failed} and "
            "understate the uncertainty; use --method intercept or recalibrate on a larger "
            "cohort") in _manifest_warnings(out)


def test_a_target_sensitivity_missed_at_the_site_is_named_with_both_numbers(diagnose):
    tmp = diagnose[0]
    source = train_run(tmp / "source.csv", Study(task="diagnose", target="disease"),
                       TrainConfig(models=["logistic"], target_sensitivity=0.9, **FAST),
                       tmp / "source-sens")
    # a flatter local site: more of its patients with the disease have low probabilities
    diagnose_cohort(2000, 7, a=1.0, b=0.3).to_csv(tmp / "flat.csv", index=False)
    out = recalibrate_run(source, tmp / "flat.csv", tmp / "flat-run", n_boot=100)
    metrics = json.loads((out / "metrics.json").read_text())
    threshold = metrics["recalibration"]["threshold"]
    assert threshold["source_rule"] == "target_sensitivity"
    assert threshold["target_sensitivity"] == 0.9
    reached = threshold["local_sensitivity"]
    assert reached < 0.85
    # exactly the source model's decisions at its own threshold: no fit, no cross-fitting
    flat = pd.read_csv(tmp / "flat.csv")
    sick = (flat["disease"] == "yes").to_numpy()
    source_p = predict_run(source, tmp / "flat.csv")["prob_yes"].to_numpy()
    expected = float(np.mean(source_p[sick] >= threshold["source"]))
    assert reached == pytest.approx(expected, abs=1e-12), "local sensitivity is not exact"
    assert "not cross-fitted" in threshold["local_sensitivity_method"]
    # the classification figures after the update are those same decisions' figures
    assert metrics["test"]["sensitivity"]["value"] == pytest.approx(expected, abs=1e-12), \
        "the after-threshold sensitivity is not the unchanged decisions'"
    specificity = float(np.mean(source_p[~sick] < threshold["source"]))
    assert metrics["test"]["specificity"]["value"] == pytest.approx(specificity, abs=1e-12)
    assert "unchanged_decisions" in metrics["test_figures"]
    predicted = pd.read_csv(out / "predictions.csv")["predicted"].to_numpy()
    np.testing.assert_array_equal(predicted == "yes", source_p >= threshold["source"],
                                  err_msg="predictions.csv's labels are not the decisions")
    positives = metrics["recalibration"]["cohort"]["counts"]["yes"]
    assert (f"the source run's threshold was chosen for sensitivity 0.9; on the local cohort "
            f"it reaches {reached:.3g} ({positives} patients with 'yes', the source model's "
            "decisions): "
            "recalibration keeps who is above the threshold, so it cannot restore the target; "
            "train a model on this site's patients with --target-sensitivity 0.9 (permed "
            "train)") in _manifest_warnings(out)


def test_an_encrypted_local_cohort_makes_an_encrypted_run(diagnose):
    tmp, source, _, _ = diagnose
    with use_key(generate_key()) as key:
        save_table(pd.read_csv(tmp / "local.csv"), tmp / "sealed-local.csv", key)
        out = recalibrate_run(source, tmp / "sealed-local.csv", tmp / "sealed-run",
                              n_boot=100)
    index = json.loads((out / "model" / "bundle.json").read_text())
    assert index["encrypted"] is True
    assert is_encrypted(out / "predictions.csv")


def test_intercept_only_still_warns_of_a_model_inverted_at_the_site(diagnose):
    tmp, source, _, _ = diagnose
    diagnose_cohort(1500, 8, a=0.0, b=-1.0).to_csv(tmp / "inverted.csv", index=False)
    out = recalibrate_run(source, tmp / "inverted.csv", tmp / "inverted-run",
                          method="intercept", n_boot=100)
    slope = json.loads((out / "metrics.json").read_text())["recalibration"]["slope_check"][
        "value"]
    assert slope < -0.5
    assert (f"the recalibration slope estimated on the local cohort is {slope:.3g} (not "
            "applied by --method intercept): at this site the source model's probability does "
            "not increase with the observed outcome, and updating the average risk keeps that "
            "inverted ordering; check the cohort's outcome coding, or train a model on this "
            "site's patients (permed train)") in _manifest_warnings(out)


def test_a_cohort_without_censored_patients_is_recalibrated(risk):
    tmp, source, _ = risk
    risk_cohort(500, 9, HAZARD_RATIO, censoring=(1e6, 1e6 + 1)).to_csv(tmp / "complete.csv",
                                                                        index=False)
    out = recalibrate_run(source, tmp / "complete.csv", tmp / "complete-run", n_boot=100)
    entry = json.loads((out / "metrics.json").read_text())["recalibration"]
    assert entry["cohort"]["counts"] == {"censored": 0, "event": 500}
    assert "drawn within the patients, all with the event (none censored)" in entry["interval"]
    assert entry["calibration"]["after_method"].startswith("5-fold cross-fitting")


def test_a_forest_s_recalibrated_risk_score_orders_patients_as_its_curves(four_horizons):
    tmp = four_horizons[0]
    risk_cohort(400, 10).to_csv(tmp / "forest-source.csv", index=False)
    risk_cohort(400, 11, HAZARD_RATIO).to_csv(tmp / "forest-local.csv", index=False)
    source = train_run(tmp / "forest-source.csv", Study(task="risk", time="years",
                                                         event="died"),
                       TrainConfig(models=["random_survival_forest"], horizons=[1.0, 2.0, 3.0],
                                   n_boot=100, cv=2), tmp / "forest")
    out = recalibrate_run(source, tmp / "forest-local.csv", tmp / "forest-run", n_boot=100)
    answers = predict_run(out, tmp / "forest-local.csv")
    order = np.argsort(answers["risk_score"].to_numpy(), kind="stable")
    for column in ("risk_at_1", "risk_at_2", "risk_at_3"):
        assert np.all(np.diff(answers[column].to_numpy()[order]) >= -1e-12), column
    # the risk groups are thirds of the local cohort by that score
    counts = answers["risk_group"].value_counts()
    assert counts.min() >= 400 // 3 - 2
    assert counts.max() <= 400 // 3 + 3


class _NoRiskYet:
    """A survival estimator whose curves are 1 until after the reference horizon."""

    def predict_survival_function(self, X, times):
        return np.ones((len(X), len(times)))


def test_a_reference_horizon_before_the_model_s_first_event_is_refused():
    from permed.models.risk import survival_y

    rng = np.random.default_rng(0)
    y = survival_y(rng.uniform(1, 5, 50), rng.random(50) < 0.5)
    with pytest.raises(PermedError, match=re.escape(
            "the source model predicts the same survival at the reference horizon 0.5 for all "
            "50 local patients (1: no risk at all): the reference horizon precedes the model's "
            "first event time; a recalibration has no ordering of patients to keep: check the "
            "model's horizons (permed train --horizons) or retrain it on this site's "
            "patients")):
        RecalibratedSurvival(_NoRiskYet(), 0.5).fit(np.zeros((50, 2)), y)


def test_a_tied_risk_score_that_empties_the_middle_group_is_warned_of(risk):
    tmp, source, _ = risk
    local = risk_cohort(600, 13, HAZARD_RATIO)
    local.loc[:359, ["x1", "x2"]] = 0.0  # 360 patients share one answer of the source model
    local.to_csv(tmp / "tied.csv", index=False)
    out = recalibrate_run(source, tmp / "tied.csv", tmp / "tied-run", n_boot=100)
    metrics = json.loads((out / "metrics.json").read_text())
    cuts = metrics["risk_groups"]["cuts"]
    assert cuts[0] == cuts[1]
    answers = predict_run(out, tmp / "tied.csv")
    counts = answers["risk_group"].value_counts()
    assert "intermediate" not in counts
    warning = (f"360 of the 600 local patients (60%) share the risk score {cuts[0]:.4g} on "
               f"which both tertile cuts fall: the intermediate risk group is empty "
               f"({counts['low']} low, 0 intermediate, {counts['high']} high on the local "
               "cohort); the source model gives many patients the same answer (a tree model, "
               "or survival at the reference horizon clipped at 0 or 1), so its risk groups "
               "cannot be thirds here")
    assert warning in _manifest_warnings(out), "the tied cut is not warned of"
    assert metrics["risk_groups"]["warning"] == warning
