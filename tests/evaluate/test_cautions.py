"""Warnings that a run's test figures say little: chance-level discrimination, too few test
patients in a class; and that its predicted risks are off (calibration)."""

from __future__ import annotations

import pytest

from permed.evaluate import (
    calibration_warning,
    cautions,
    chance_warning,
    miscalibration,
    small_test_warning,
)


def _ci(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "ci_low": low, "ci_high": high}


@pytest.mark.parametrize(("test", "label"), [
    ({"auroc": _ci(0.577, 0.318, 0.824), "brier": _ci(0.2, 0.1, 0.3)}, "AUROC"),
    ({"c_index": _ci(0.55, 0.5, 0.6), "ibs": _ci(0.2, 0.1, 0.3)}, "C-index"),  # 0.5 reached
])
def test_a_ci_reaching_one_half_is_flagged(test, label):
    entry = next(iter(test.values()))
    assert chance_warning(test) == (
        f"the test {label} is {entry['value']:.3f}, and its 95% CI ({entry['ci_low']:.3f}-"
        f"{entry['ci_high']:.3f}) reaches 0.5: on these patients the model is not shown to rank "
        "patients better than chance; do not use it for decisions before it is trained on more "
        "patients (or events) or better predictors and validated again")


@pytest.mark.parametrize(("test", "label", "coding"), [
    # WHAS year 3 with fstat = 1 - fstat: said to "reach 0.5", advised more patients
    ({"c_index": _ci(0.391, 0.328, 0.467)}, "C-index",
     "an event column coded 1 = alive or censored"),
    ({"auroc": _ci(0.2, 0.1, 0.32)}, "AUROC", "a target whose positive class is swapped"),
])
def test_a_ci_below_one_half_points_to_the_outcome_coding(test, label, coding):
    entry = next(iter(test.values()))
    assert chance_warning(test) == (
        f"the test {label} is {entry['value']:.3f}, and its 95% CI ({entry['ci_low']:.3f}-"
        f"{entry['ci_high']:.3f}) lies below 0.5: the model ranks these patients significantly "
        "worse than chance, which usually means the outcome is coded the other way round "
        f"({coding}) or means something else in these patients than in the development data; "
        "check the outcome's coding and definition before reading any other figure")


@pytest.mark.parametrize("test", [
    {"auroc": _ci(0.62, 0.501, 0.74)},  # just above chance
    {"c_index": _ci(0.63, 0.59, 0.67)},
    {"auroc": {"value": 0.7}},  # no CI (bootstrap off): nothing to read
    {"ate": _ci(0.1, -0.2, 0.4)},  # treat runs have no discrimination figure
    {},
])
def test_no_warning_otherwise(test):
    assert chance_warning(test) is None


def _diagnose(matrix: list[list[int]]) -> dict:
    return {"task": "diagnose", "confusion_matrix": {"labels": ["no", "yes"], "matrix": matrix}}


def _risk(events: list[int]) -> dict:
    return {"task": "risk", "risk_groups": {"groups": {
        name: {"n": 50, "events": e} for name, e in zip(("low", "intermediate", "high"), events,
                                                        strict=True)}}}


@pytest.mark.parametrize(("metrics", "what"), [
    (_diagnose([[0, 1], [1, 0]]), "1 patients with 'no'"),  # 2 test patients: zero-width CIs
    (_diagnose([[40, 5], [6, 3]]), "9 patients with 'yes'"),
    (_risk([1, 2, 3]), "6 patients with the event"),
])
def test_a_test_split_with_few_patients_in_a_class_is_flagged(metrics, what):
    assert small_test_warning(metrics) == (
        f"the test split holds {what}: the test figures and their 95% CIs rest on so few that "
        "they cannot be trusted (a bootstrap CI can even be of zero width); validate the model "
        "on more patients (permed evaluate RUN_DIR COHORT)")
    assert cautions(metrics) == [small_test_warning(metrics)]


@pytest.mark.parametrize("metrics", [
    _diagnose([[40, 5], [6, 4]]), _risk([2, 3, 5]), {"task": "treat"}, {}])
def test_ten_or_more_are_not_flagged(metrics):
    assert small_test_warning(metrics) is None


def _risk_calibration(external: bool, **figures: tuple) -> dict:
    """A risk run's calibration: ``h=(oe, oe_low, oe_high, predicted, observed)`` per horizon,
    the slope always (0.94, 0.57-1.55)."""
    metrics = {"task": "risk", "calibration": {"horizons": {
        h.removeprefix("h"): {"observed_expected": _ci(*oe[:3]), "slope": _ci(0.94, 0.57, 1.55),
                              "predicted": oe[3], "observed": oe[4]}
        for h, oe in figures.items()}}, "horizons": {"not_checkable": {}}}
    return {**metrics, "external": {"run": "runs/rott"}} if external else metrics


RECALIBRATE = ("Its risks do not hold at this site, although its ranking of patients may: "
               "recalibrate it on local data before use (permed recalibrate runs/rott "
               "LOCAL_COHORT --out runs/rott-local), or retrain it with this site's patients "
               "(permed train)")


def test_risk_over_estimated_is_flagged_at_the_horizons_where_it_is_shown():
    # Rotterdam -> GBSG: observed/expected CIs below 1 at 12 and 36 months (not at 60, where
    # it reaches 1.01), and no warning had been given
    metrics = _risk_calibration(True, h12=(0.627, 0.487, 0.805, 0.135, 0.084),
                                h36=(0.861, 0.773, 0.956, 0.415, 0.357),
                                h60=(0.930, 0.849, 1.014, 0.547, 0.508))
    assert calibration_warning(metrics) == (
        "the model is miscalibrated on the evaluated cohort: it over-estimates the risk by time "
        "12 (13.5% predicted, 8.4% observed; observed/expected 0.63, 95% CI 0.49-0.81) and by "
        "time 36 (41.5% predicted, 35.7% observed; observed/expected 0.86, 95% CI 0.77-0.96). "
        + RECALIBRATE)
    assert cautions(metrics) == [calibration_warning(metrics)]


def test_a_horizon_that_is_not_checkable_or_calibrated_is_not_flagged():
    metrics = _risk_calibration(False, h12=(1.2, 1.05, 1.4, 0.1, 0.12),
                                h36=(0.98, 0.9, 1.07, 0.4, 0.39))
    assert calibration_warning(metrics) == (
        "the model is miscalibrated on the test split: it under-estimates the risk by time 12 "
        "(10.0% predicted, 12.0% observed; observed/expected 1.20, 95% CI 1.05-1.40). Its risks "
        "are off even for held-out patients of the development data: retrain it with another "
        "model (--models) or more patients before using its risks")
    metrics["horizons"]["not_checkable"] = {"12": 8}  # 8 patients followed to 12
    assert calibration_warning(metrics) is None


@pytest.mark.parametrize(("events", "flagged"), [([0, 1, 0], False), ([3, 3, 3], False),
                                                ([3, 3, 4], True)])
def test_no_calibration_verdict_from_under_ten_test_events(events, flagged):
    # few.csv: 1 test event, and "the model is miscalibrated ... (calibration slope 0.32, 95%
    # CI 0.17-0.66)" beside the warning that the test figures cannot be trusted
    metrics = {**_risk_calibration(False, h12=(1.2, 1.05, 1.4, 0.1, 0.12)),
               "risk_groups": _risk(events)["risk_groups"]}
    assert (calibration_warning(metrics) is not None) is flagged
    assert bool(miscalibration(metrics)) is flagged


def test_no_event_by_a_horizon_points_to_the_event_coding_first():
    # WHAS year 3 with fstat = 1 - fstat: no "event" before 365 days
    metrics = _risk_calibration(True, h180=(0.0, 0.0, 0.0, 0.222, 0.0))
    assert calibration_warning(metrics) == (
        "the model is miscalibrated on the evaluated cohort: it over-estimates the risk by time "
        "180 (22.2% predicted, 0.0% observed; observed/expected 0.00, 95% CI 0.00-0.00). No "
        "patient had the event by 180, which usually means an event column coded the other way "
        "round (1 = alive or censored) or times in another unit: check those first. " + RECALIBRATE)


def test_risk_predictions_too_moderate_are_flagged_with_their_horizons():
    # a random survival forest on GBSG2's test split (permed demo): slopes 1.89 and 2.35
    metrics = _risk_calibration(False, h1095=(1.06, 0.85, 1.25, 0.34, 0.36),
                                h1825=(1.04, 0.95, 1.17, 0.49, 0.51))
    horizons = metrics["calibration"]["horizons"]
    horizons["1095"]["slope"] = _ci(1.889, 1.239, 2.596)
    horizons["1825"]["slope"] = _ci(2.349, 1.678, 3.234)
    assert miscalibration(metrics) == [
        "its predictions are too moderate by time 1095 (calibration slope 1.89, 95% CI "
        "1.24-2.60) and by time 1825 (calibration slope 2.35, 95% CI 1.68-3.23): high risks too "
        "low, low risks too high"]


def _diagnose_calibration(intercept: tuple, slope: tuple | None = None,
                          external: bool = True) -> dict:
    metrics = {"task": "diagnose", "target": {"column": "disease", "positive_class": "yes"},
               "calibration": {"method": "sigmoid"},
               "test": {"calibration_intercept": _ci(*intercept),
                        "calibration_slope": _ci(*slope) if slope else _ci(None, None, None)}}
    return {**metrics, "external": {"run": "runs/heartA"}} if external else metrics


@pytest.mark.parametrize(("intercept", "slope", "found"), [
    # Cleveland age < 58 -> age >= 58: observed 59.7% against 50.5% predicted
    ((0.878, 0.391, 1.312), (0.705, 0.520, 1.058),
     ["it under-estimates the risk of disease = yes (calibration-in-the-large 0.88, 95% CI "
      "0.39-1.31: the observed odds are about 2.4 times the predicted)"]),
    # cholesterol in mmol/l where the model learnt mg/dl
    ((-1.10, -1.74, -0.46), None,
     ["it over-estimates the risk of disease = yes (calibration-in-the-large -1.10, 95% CI "
      "-1.74 to -0.46: the predicted odds are about 3.0 times the observed)"]),
    ((0.1, -0.3, 0.5), (0.63, 0.48, 0.92),
     ["its predictions are too extreme (calibration slope 0.63, 95% CI 0.48-0.92): high risks "
      "too high, low risks too low"]),
    # 114 near-separable patients (AUROC 0.996): the CI reads 1.00-6.55 at two decimals
    ((0.51, -0.21, 1.33), (1.48, 1.0009, 6.55), []),
])
def test_diagnose_calibration_in_the_large_and_slope(intercept, slope, found):
    assert miscalibration(_diagnose_calibration(intercept, slope)) == found


def test_a_diagnose_test_split_names_the_calibration_method_to_change():
    metrics = _diagnose_calibration((0.878, 0.391, 1.312), external=False)
    assert calibration_warning(metrics).endswith(
        "Its risks are off even for held-out patients of the development data: retrain it with "
        "another --calibration (this run: sigmoid) or more patients before using its risks")


@pytest.mark.parametrize("metrics", [
    {"task": "diagnose", "test": {"auroc": _ci(0.8, 0.7, 0.9)}},  # multiclass: no slope
    {"task": "treat", "test": {"ate": _ci(0.1, 0.05, 0.2)}},
    {"task": "risk"},
    {},
])
def test_runs_without_calibration_figures_are_not_flagged(metrics):
    assert miscalibration(metrics) == []
    assert calibration_warning(metrics) is None
