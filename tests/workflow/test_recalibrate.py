"""permed recalibrate as a library: a site whose patients differ from the development site's
by a known intercept and slope (diagnose) or a doubled baseline hazard (risk). Each truth is
simulated; the figures are checked on a fresh sample of the local site, never on the patients
the recalibration was fitted to."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from permed.bundle import load_bundle
from permed.evaluate import calibration_slope_intercept
from permed.evaluate.survival import kaplan_meier_at
from permed.report import render_markdown
from permed.study import Study
from permed.testing import assert_valid_absolute_risk, assert_valid_survival
from permed.workflow import TrainConfig, predict_run, train_run
from permed.workflow._recalibrate import recalibrate_run

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


def risk_cohort(n: int, seed: int, hazard_ratio: float = 1.0) -> pd.DataFrame:
    """Exponential times (0.15 events a year at x = 0), censored uniformly over 1-6 years."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    rate = 0.15 * hazard_ratio * np.exp(0.7 * x1 + 0.5 * x2)
    event_time, censored = rng.exponential(1 / rate), rng.uniform(1, 6, n)
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
    times = np.linspace(0.0, 8.0, 41)  # beyond the local follow-up too
    assert_valid_survival(model.survival_curves(fresh, times).to_numpy(), 300, 41)
    assert_valid_survival(model.survival_curves(fresh).to_numpy(), 300,
                          len(model.event_times))


def test_risk_metrics_record_the_reference_horizon_and_hazard_ratio(risk):
    _, _, out = risk
    metrics = json.loads((out / "metrics.json").read_text())
    entry = metrics["recalibration"]
    assert entry["reference_horizon"] == 2.0
    assert entry["reference_horizon_rule"] == "the middle of the run's horizons"
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
