"""The diagnose headline says when the probabilities are shown to be miscalibrated."""

from __future__ import annotations

from pathlib import Path

import pytest

from permed.report._diagnose import diagnose_summary
from permed.report._html import RunFiles


def _metrics(intercept: tuple[float, float, float]) -> dict:
    value, low, high = intercept
    return {"task": "diagnose", "selected_model": "logistic",
            "target": {"column": "disease", "positive_class": "yes", "classes": ["no", "yes"]},
            "data": {"test_rows": 124},
            "test": {"auroc": {"value": 0.87, "ci_low": 0.81, "ci_high": 0.93},
                     "calibration_intercept": {"value": value, "ci_low": low, "ci_high": high},
                     "calibration_slope": {"value": 0.71, "ci_low": 0.52, "ci_high": 1.06}}}


@pytest.mark.parametrize(("external", "fix"), [
    (True, "recalibrate it on this site's patients before using its probabilities"),
    (False, "do not use its probabilities as they are"),
])
def test_the_headline_says_when_the_risk_is_under_estimated(external, fix):
    # Cleveland age < 58 -> age >= 58: calibration-in-the-large 0.88 (0.39-1.31), said nowhere
    metrics = _metrics((0.878, 0.391, 1.312))
    if external:
        metrics["external"] = {"run": "runs/heartA"}
    summary = diagnose_summary(RunFiles(Path("run"), metrics, {"config": {}},
                                        {"task": "diagnose"}, None))
    assert ("The model is miscalibrated on these patients: it under-estimates the risk of "
            "disease = yes (calibration-in-the-large 0.88, 95% CI 0.39-1.31: the observed odds "
            f"are about 2.4 times the predicted); {fix}.") in summary
    calibrated = RunFiles(Path("run"), _metrics((0.1, -0.3, 0.5)), {"config": {}},
                          {"task": "diagnose"}, None)
    assert "miscalibrated" not in diagnose_summary(calibrated)
