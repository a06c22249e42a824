"""Leakage warnings describe the value that gives the outcome away, never quote it: a date there
(WHAS500's follow-up date) is a Safe Harbor identifier, and the warning is printed and written
into manifest.json and report.html, which are shared in clear."""

from __future__ import annotations

import numpy as np
import pandas as pd

from permed.study import Study, validate
from permed.testing import shared_data

N = 200
STUDY_END = "12/31/2002"


def _warnings(frame: pd.DataFrame, study: Study) -> list[str]:
    return [f.message for f in validate(frame, study).warnings]


def _leakage(messages: list[str]) -> list[str]:
    return [m for m in messages if "likely leakage" in m]


def test_a_follow_up_date_shared_by_the_censored_is_described_by_its_format():
    """Every censored patient was followed to the study's end: one date, 12/31/2002."""
    i = np.arange(N)
    event = i % 2
    last_seen = pd.Timestamp("2001-01-01") + pd.to_timedelta(i, unit="D")
    follow_up = np.where(event == 1, last_seen.strftime("%m/%d/%Y"), STUDY_END)
    frame = pd.DataFrame({"days": 30.0 + i, "age": 40 + i % 37, "fdate": follow_up,
                          "fstat": event})
    messages = _warnings(frame, Study(task="risk", time="days", event="fstat"))
    assert _leakage(messages) == [
        "column 'fdate' separates the patients who had the event ('fstat') from the censored "
        "almost perfectly on its own (univariate AUROC 1.000 over 200 patients; 100 of the 100 "
        "censored patients and only 0 others have its most common value, a date written "
        "MM/DD/YYYY): likely leakage (recorded at or after the event?); if it is not known when "
        "the prediction is made, drop it with --drop 'fdate'"]
    assert not any(STUDY_END in m for m in messages)


def test_a_date_every_patient_of_which_had_the_event_is_described_by_its_format():
    i = np.arange(N)
    event = i % 2
    registered = np.where(i % 4 == 1, "2003-02-14", np.where(i % 4 == 3, "2001-06-30",
                                                              "2002-09-01"))
    frame = pd.DataFrame({"days": 30.0 + i, "age": 40 + i % 37, "registered": registered,
                          "fstat": event})
    messages = _warnings(frame, Study(task="risk", time="days", event="fstat"))
    assert _leakage(messages)[0] == (
        "column 'registered': all 50 patients with one of its values, a date written "
        "YYYY-MM-DD, had the event ('fstat'): likely leakage (recorded at or after the event, "
        "like a status at discharge?); if it is not known when the prediction is made, drop it "
        "with --drop 'registered'")
    assert not any(day in m for m in messages for day in ("2003-02-14", "2001-06-30"))


def test_a_place_agreeing_with_the_diagnosis_is_not_quoted():
    i = np.arange(N)
    disease = np.where(i % 2 == 1, "yes", "no")
    town = np.where((disease == "yes") != (i < 6), "Springfield", "Worcester")
    frame = pd.DataFrame({"age": 40 + i % 37, "town": town, "disease": disease})
    (message,) = _leakage(_warnings(frame, Study(task="diagnose", target="disease")))
    assert ("(univariate AUROC 0.970 over 200 patients; 97 of the 100 'yes' patients and only 3 "
            "others have one of its values, a text of 11 characters with letters)") in message
    assert "Springfield" not in message
    assert "Worcester" not in message


def test_whas500_follow_up_date_is_not_quoted():
    """The hospital tester's run: permed train whas500.csv --task risk --time lenfol --event
    fstat --id id (the full WHAS500 with its dates)."""
    frame = pd.read_csv(shared_data("survival_raw_csv/whas500.csv"))
    messages = _warnings(frame, Study(task="risk", time="lenfol", event="fstat", id="id"))
    (fdate,) = [m for m in _leakage(messages) if m.startswith("column 'fdate'")]
    assert ("285 of the 285 censored patients and only 0 others have its most common value, a "
            "date written MM/DD/YYYY)") in fdate
    assert not any("12/31/2002" in m for m in messages)
