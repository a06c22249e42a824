"""Warnings that a run's test figures say little: chance-level discrimination, too few test
patients in a class."""

from __future__ import annotations

import pytest

from permed.evaluate import cautions, chance_warning, small_test_warning


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
