"""Report wording of a risk run's calibration: the groups it is checked in, observed/expected
in the TRIPOD row and in the headline."""

from __future__ import annotations

from pathlib import Path

import pytest

from permed.report._html import Paragraph, RunFiles
from permed.report._risk import calibration_section, risk_summary
from permed.report._tripod import tripod_items


def _ci(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "ci_low": low, "ci_high": high}


def _group(n: int, predicted: float, observed: float) -> dict[str, object]:
    return {"n": n, "events": round(n * observed), "predicted": predicted,
            "observed": observed, "observed_low": 0.0, "observed_high": 0.3, "followed": True}


def _risk_metrics(sizes: list[int], oe: dict[str, float] | None = None) -> dict:
    """A risk run evaluated at 12 and 36 months; ``oe`` gives ``(value, low, high)`` per
    horizon (a calibrated model when absent)."""
    oe = oe or {"12": (1.02, 0.85, 1.2), "36": (0.98, 0.9, 1.07)}
    horizons = {h: {"slope": _ci(0.94, 0.68, 1.46), "observed_expected": _ci(*oe[h]),
                    "predicted": 0.135, "observed": 0.135 * oe[h][0],
                    "deciles": [_group(n, 0.1, 0.1) for n in sizes]}
                for h in ("12", "36")}
    return {"task": "risk", "data": {"rows": sum(sizes), "test_rows": sum(sizes)},
            "horizons": {"values": [12.0, 36.0]},
            "test": {"c_index": _ci(0.65, 0.62, 0.68), "ibs": _ci(0.19, 0.18, 0.2)},
            "calibration": {"method": "none", "horizons": horizons}}


def _run(metrics: dict) -> RunFiles:
    return RunFiles(Path("run"), metrics, {"config": {}}, {"task": "risk"}, None)


def _calibration_row(run: RunFiles) -> str:
    return next(str(item.recorded) for item in tripod_items(run) if item.topic == "Calibration")


@pytest.mark.parametrize(("sizes", "words"), [
    ([22] * 5 + [21] * 2, "7 groups of about 22 patients"),  # WHAS year 3: 152 patients
    ([69] * 6 + [68] * 4, "10 groups of about 69 patients"),  # GBSG: 686 patients
])
def test_calibration_names_the_groups_it_is_checked_in(sizes, words):
    # 152 patients had been said to be "split into ten groups" in 7
    run = _run(_risk_metrics(sizes))
    intro = calibration_section(run).blocks[0]
    assert isinstance(intro, Paragraph)
    assert intro.text.startswith(f"At each horizon, patients are split into {words} by "
                                 "predicted risk; a calibrated model's")
    assert _calibration_row(run).startswith(
        f"Predicted risk against Kaplan-Meier observed risk by decile at each horizon (here "
        f"{words}). On the test patients: ")


def test_tripod_calibration_quotes_observed_expected_beside_the_slope():
    # Rotterdam -> GBSG: the row had listed only the slopes, not observed/expected
    run = _run(_risk_metrics([69] * 10, oe={"12": (0.63, 0.47, 0.77), "36": (0.86, 0.8, 0.92)}))
    assert _calibration_row(run).endswith(
        "slope at 12 0.94 (0.68–1.46) and observed/expected 0.63 (0.47–0.77); slope at 36 0.94 "
        "(0.68–1.46) and observed/expected 0.86 (0.80–0.92). Calibration plots in "
        "'Calibration'.")
    run.metrics["horizons"]["not_checkable"] = {"36": 12}
    assert ("; slope and observed/expected at 36 not checkable (only 12 patients followed this "
            "long)." in _calibration_row(run))


@pytest.mark.parametrize(("external", "fix"), [
    (True, "recalibrate it on this site's patients before using its risks"),
    (False, "do not use its risks as they are"),
])
def test_the_headline_says_when_risk_is_over_or_under_estimated(external, fix):
    metrics = _risk_metrics([69] * 10, oe={"12": (0.63, 0.47, 0.77), "36": (0.98, 0.9, 1.07)})
    if external:
        metrics["external"] = {"run": "runs/rott"}
    summary = risk_summary(_run(metrics))
    assert ("The model is miscalibrated on these patients: it over-estimates the risk by time "
            "12 (13.5% predicted, 8.5% observed; observed/expected 0.63, 95% CI 0.47-0.77); "
            f"{fix}.") in summary
    assert "miscalibrated" not in risk_summary(_run(_risk_metrics([69] * 10)))  # calibrated
