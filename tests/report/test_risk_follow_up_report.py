"""Report wording of a risk run where the figures say less than they seem: a group nobody of
which is followed to a horizon, bootstrap CIs from too few events, Uno's tau at the last
checkable horizon; and the time-to-event outcome with its follow-up in the data section and
the TRIPOD row."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from permed.report._html import Figures, Note, Paragraph, RunFiles, Table, data_section
from permed.report._risk import (
    calibration_section,
    performance_section,
    risk_groups_section,
    risk_summary,
)
from permed.report._tripod import tripod_items


def _ci(value: float, low: float | None, high: float | None) -> dict[str, float | None]:
    return {"value": value, "ci_low": low, "ci_high": high}


def _decile(predicted: float, followed: bool) -> dict[str, object]:
    return {"n": 20, "events": 2, "predicted": predicted, "observed": 0.1,
            "observed_low": 0.02, "observed_high": 0.3, "followed": followed}


def _follow_up(patients: int, events: int, median: float) -> dict[str, object]:
    return {"patients": patients, "events": events, "median": median, "iqr": [10.0, 40.0],
            "max": 60.0, "observed_median": 20.0, "km_risk": {"12": 0.1, "36": 0.3},
            "followed": {"12": 80, "36": 0}}


BASE = {
    "task": "risk",
    "data": {"rows": 500, "test_rows": 100, "development_rows": 400},
    "target": {"column": "status (time: months)", "classes": ["censored", "event"],
               "positive_class": "event", "counts": {"censored": 300, "event": 200}},
    "outcome": {"time": "months", "event": 200, "censored": 300, "event_value": "dead",
                "time_unit": "months",
                "follow_up": {"method": "reverse Kaplan-Meier ...",
                              "development": _follow_up(400, 160, 30.0),
                              "test": _follow_up(100, 40, 31.0)}},
    "horizons": {"values": [12.0, 36.0], "not_checkable": {}},
    "test": {"c_index": _ci(0.7, 0.65, 0.75), "uno_c": _ci(0.68, 0.62, 0.74),
             "ibs": _ci(0.18, 0.16, 0.2), "td_auc": _ci(0.75, 0.7, 0.8)},
    "evaluation": {"uno_c_tau": 36.0, "uno_c_tau_rule": "the last horizon",
                   "td_auc_horizons": [12.0, 36.0]},
    "bootstrap": {"replicates": 200, "intervals_estimable": True},
    "calibration": {"method": "none", "horizons": {
        h: {"slope": _ci(0.95, 0.7, 1.3), "observed_expected": _ci(1.0, 0.8, 1.2),
            "predicted": 0.2, "observed": 0.2,
            "deciles": [_decile(0.05 * (i + 1), followed=h == "12" or i < 3)
                        for i in range(5)]} for h in ("12", "36")}},
    "risk_groups": {"method": "tertiles", "logrank": {"statistic": 30.0, "df": 2,
                                                      "p_value": 0.0001},
                    "groups": {label: {"n": 33, "events": 13,
                                       "predicted": {"12": risk / 2, "36": risk},
                                       "observed": {"12": risk / 2, "36": risk},
                                       "followed": {"12": 25, "36": followed}}
                               for label, risk, followed in (("low", 0.1, 4),
                                                             ("intermediate", 0.3, 2),
                                                             ("high", 0.6, 0))}},
}


def _run(**changes: object) -> RunFiles:
    metrics = copy.deepcopy(BASE)
    for path, value in changes.items():
        *keys, last = path.split("__")
        place = metrics
        for key in keys:
            place = place[key]
        place[last] = value
    return RunFiles(Path("run"), metrics, {"config": {}}, {"task": "risk"}, None)


def test_a_group_nobody_of_which_is_followed_gives_no_observed_risk():
    # the high-risk third had none followed to 36: its "observed" risk there was its KM curve
    # carried flat, and the summary quoted it as what happened by 36 months
    run = _run()
    table = next(b for b in risk_groups_section(run).blocks if isinstance(b, Table))
    assert table.rows[2][-1] == "60.0% / none followed this long"
    assert table.rows[0][-1] == "10.0% / 10.0%"
    summary = risk_summary(run)
    assert "By 12 months, 30% of the high-risk third had the event against 5% of the " \
           "low-risk third." in summary
    assert "By 36 months" not in summary


def test_calibration_groups_nobody_is_followed_in_are_left_out_of_the_plot():
    figures = next(b for b in calibration_section(_run()).blocks if isinstance(b, Figures))
    at_12, at_36 = figures.items
    assert at_12.caption == "Error bars: 95% CI of the Kaplan-Meier risk in the group."
    assert at_36.caption == (
        "Error bars: 95% CI of the Kaplan-Meier risk in the group. 2 of the 5 groups of "
        "predicted risk are left out: none of their patients is followed to 36 months, so no "
        "risk by then was observed in them.")


def test_without_a_unit_the_summary_names_the_time_column():
    run = _run(outcome__time_unit=None)
    assert "By time 12 (in the unit of column 'months'), 30% of the high-risk third" in \
        risk_summary(run)


def test_too_few_events_are_said_to_give_no_interval_and_no_group_figure():
    note = ("only 3 evaluated patients had the event (fewer than 10): resampling within events "
            "keeps the same events in every replicate, so a bootstrap CI would reflect only the "
            "censored patients; the bootstrap CIs are left empty (null) and no calibration "
            "verdict is given")
    run = _run(bootstrap={"replicates": 200, "intervals_estimable": False, "note": note},
               test={m: _ci(0.7, None, None) for m in ("c_index", "uno_c", "ibs", "td_auc")})
    warning = next(b for b in performance_section(run).blocks if isinstance(b, Note))
    assert warning.title == "Confidence intervals not estimable"
    assert warning.text.startswith(f"No bootstrap confidence interval is shown: {note}.")
    assert any(isinstance(b, Note) and b.title == "Calibration not judged"
               for b in calibration_section(run).blocks)
    assert "high-risk third" not in risk_summary(run)


@pytest.mark.parametrize(("evaluation", "external", "thin", "words"), [
    ({"uno_c_tau": 12.0, "uno_c_tau_rule": "the last checkable horizon"}, False, {"36": 8},
     "tau = 12 months (the last checkable horizon)"),
    ({"uno_c_tau": 12.0}, True, {"36": 0}, "tau = 12 months (the last checkable horizon)"),
    ({"uno_c_tau": 36.0}, False, {}, "tau = 36 months (the last horizon)"),  # older runs
])
def test_uno_tau_is_named_for_what_it_is(evaluation, external, thin, words):
    run = _run(evaluation=evaluation, horizons__not_checkable=thin)
    if external:
        run.metrics["external"] = {"run": "runs/dev"}
    table = next(b for b in performance_section(run).blocks if isinstance(b, Table))
    assert words in table.rows[1][2]


def test_the_data_section_describes_a_time_to_event_outcome_and_its_follow_up():
    # it had shown "Outcome classes in all 500 rows" with "event (positive)"
    blocks = data_section(_run()).blocks
    tables = [b for b in blocks if isinstance(b, Table)]
    assert not any("Outcome classes" in t.caption for t in tables)
    follow_up = next(t for t in tables if t.caption.startswith("Follow-up"))
    assert follow_up.header == ["", "Development", "Test"]
    assert follow_up.rows[2] == ["Median follow-up, reverse Kaplan-Meier (IQR)",
                                 "30 (10–40)", "31 (10–40)"]
    assert follow_up.rows[4] == ["Observed risk by 12 months (Kaplan-Meier)",
                                 "10.0% (80 followed)", "10.0% (80 followed)"]
    assert follow_up.rows[5][1] == "none followed this long"
    text = next(b.text for b in blocks if isinstance(b, Paragraph)
                and str(b.text).startswith("Time to event"))
    assert text == (
        "Time to event. Column 'months' is each patient's follow-up (in months) from the start "
        "of follow-up to the event or the last contact; the event is 'status' = dead. A patient "
        "without the event is censored at the last contact: followed event-free until then, "
        "unknown after. 200 patients had the event and 300 were censored (all rows).")


def test_the_tripod_outcome_row_is_a_time_to_event_with_its_follow_up():
    row = next(item.recorded for item in tripod_items(_run()) if item.topic == "Outcome")
    assert "positive class" not in row
    assert "classes" not in row
    assert row.startswith("Time to event. Column 'months' is each patient's follow-up")
    assert row.endswith(
        "Follow-up (median and IQR by reverse Kaplan-Meier): development: 400 patients, 160 "
        "events, median follow-up 30 (IQR 10–40), longest 60; Kaplan-Meier risk by 12 months "
        "10.0% (80 followed), by 36 months none followed this long; test: 100 patients, 40 "
        "events, median follow-up 31 (IQR 10–40), longest 60; Kaplan-Meier risk by 12 months "
        "10.0% (80 followed), by 36 months none followed this long.")


def test_the_model_card_describes_a_time_to_event_not_classes():
    # it said "predicting status (time: months) (classes censored, event)"
    from permed.report._card import _details

    details = _details(_run())
    assert "classes" not in details
    assert "(time to event, censored patients followed until their last contact)" in details
