"""How values are written: numbers with units, signs or separators, missing values marked in
words, and categories spelled several ways are refused with the fix, each with its message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permed.study import ColumnSpec, Study, validate
from permed.study._columns import date_format, guess_kind

N = 60


def _cohort() -> pd.DataFrame:
    i = np.arange(N)
    return pd.DataFrame({"age": 40 + i % 37, "bp": 100 + i % 40, "disease": i % 2})


def _errors(frame: pd.DataFrame, study: Study | None = None) -> list[str]:
    study = study or Study(task="diagnose", target="disease")
    return [f.message for f in validate(frame, study).errors]


def test_numbers_with_a_unit_are_refused_with_the_fix():
    frame = _cohort()
    frame["bp"] = [f"{v} mmHg" for v in frame["bp"]]
    assert _errors(frame) == [
        "column 'bp' holds numbers in 60 of its 60 values, 60 of them written with a unit "
        "(rows 1, 2, 3, 4, 5 and 55 more): read as text, it would be a categorical feature of "
        "40 levels, each number a category of its own; strip the unit 'mmHg' (the study can "
        "record it: unit = \"mmHg\"); or declare kind = \"categorical\" under [columns.bp] in "
        "the study to keep the values as categories"]


@pytest.mark.parametrize(("write", "found", "fix"), [
    (lambda v: f"{v}%", "60 of them written with a percent sign (rows 1, 2,",
     "drop the percent sign"),
    (lambda v: f"{v * 10:,.1f}", "60 of them written with thousands separators (rows 1, 2,",
     "drop the thousands separators (1,200 as 1200)"),
    (lambda v: "<0.1" if v % 3 == 0 else str(v), "19 of them written with a comparison sign "
     "(rows 3, 6,", "write each value with '<' as a number (e.g. the detection limit), with a "
     "column of its own flagging it if that matters"),
    (lambda v: "$1,200" if v == 100 else f"{v} mg/dL", "60 of them written with a unit, "
     "thousands separators or a currency sign", "strip the unit 'mg/dL'"),
])
def test_numbers_written_with_signs_or_separators_are_refused(write, found, fix):
    frame = _cohort()
    frame["bp"] = [write(v) for v in frame["bp"]]
    (message,) = _errors(frame)
    assert message.startswith("column 'bp' holds numbers in 60 of its 60 values")
    assert found in message
    assert fix in message


def test_numbers_among_missing_value_markers_are_refused():
    frame = _cohort()
    frame["bp"] = frame["bp"].astype(object)
    frame.loc[frame.index % 4 == 0, "bp"] = "unknown"
    frame.loc[1, "bp"] = "not done"
    assert _errors(frame) == [
        "column 'bp' holds numbers in 44 of its 60 values, and 16 values that are not numbers "
        "('unknown' (15), 'not done' (1); rows 1, 2, 5, 9, 13 and 11 more): read as text, it "
        "would be a categorical feature of 32 levels, each number a category of its own; leave "
        "missing values empty (or NA) rather than 'unknown'; or declare kind = \"categorical\" "
        "under [columns.bp] in the study to keep the values as categories"]


def test_a_declared_categorical_column_keeps_its_written_values():
    frame = _cohort()
    frame["bp"] = [f"{v} mmHg" for v in frame["bp"]]
    study = Study(task="diagnose", target="disease",
                  columns={"bp": ColumnSpec(kind="categorical")})
    report = validate(frame, study)
    assert report.errors == []
    assert report.kinds["bp"] == "categorical"


@pytest.mark.parametrize("values", [
    ["1a", "1b", "2a", "2b", "3a", "3c", "4"],  # a stage: few numbers are codes
    ["T1", "T2", "N0", "V45.81", "E11.9", "I10", "C50"],  # a letter first: codes
    ["<40", "40-60", ">60"],  # age bands
])
def test_codes_and_bands_stay_categories(values):
    frame = _cohort()
    frame["code"] = [values[i % len(values)] for i in range(N)]
    report = validate(frame, Study(task="diagnose", target="disease"))
    assert report.errors == []
    assert report.kinds["code"] == "categorical"


def test_init_leaves_the_kind_of_numbers_in_disguise_to_validation():
    from permed.cli.study import guess_study

    frame = _cohort()
    frame["bp"] = [f"{v} mmHg" for v in frame["bp"]]
    frame["admitted"] = [f"2019-01-{1 + i % 28:02d}" if i % 4 else "unknown" for i in range(N)]
    frame["smoker"] = ["yes", "no", "former"] * (N // 3)
    study = guess_study(frame[["age", "bp", "admitted", "smoker", "disease"]])
    kinds = {name: spec.kind for name, spec in study.columns.items()}
    assert kinds == {"age": "numeric", "bp": None, "admitted": None, "smoker": "categorical"}
    assert ('[columns.bp]\n# kind = "numeric" or "categorical": not set; permed validate says '
            "what the values look like\n") in study.to_toml()
    assert guess_kind(frame["bp"]) is None


def test_dates_with_a_missing_value_marker_are_left_out_as_dates():
    frame = _cohort()
    frame["admitted"] = [f"2019-01-{1 + i % 28:02d}" if i % 4 else "unknown" for i in range(N)]
    report = validate(frame, Study(task="diagnose", target="disease"))
    assert "admitted" not in report.kinds
    (message,) = [f.message for f in report.warnings]
    assert message.startswith("column 'admitted' holds dates (written YYYY-MM-DD): it is left out")


@pytest.mark.parametrize(("roles", "what"), [
    ({}, "column 'sex'"),
    ({"sensitive": ["sex"]}, "sensitive column 'sex'"),
    ({"sensitive": ["sex"], "use_sensitive": True}, "column 'sex'"),
])
def test_categories_differing_only_in_case_or_spaces_are_refused(roles, what):
    frame = _cohort()
    frame["sex"] = ["Male", "male ", "MALE", "Female", "Female ", "Female"] * (N // 6)
    assert _errors(frame, Study(task="diagnose", target="disease", **roles)) == [
        f"{what} has categories that differ only in letter case or spaces: 'Female' (20) and "
        "'Female ' (10); 'Male' (10) and 'male ' (10) and 'MALE' (10); write each category "
        "one way"]


def test_yes_and_no_written_several_ways_are_refused():
    frame = _cohort()
    frame["fbs"] = ["Yes", "Y", "TRUE", "1", "yes", "No", "N", "false", "0", "no"] * (N // 10)
    assert _errors(frame) == [
        "column 'fbs' writes yes and no several ways: 'Yes' (6), 'Y' (6), 'TRUE' (6), '1' (6), "
        "'yes' (6) mean yes and 'No' (6), 'N' (6), 'false' (6), '0' (6), 'no' (6) mean no; "
        "write one spelling for each (e.g. 1 and 0), or they are read as 10 different "
        "categories"]


def test_an_event_written_several_ways_says_they_differ_only_in_case_or_spaces():
    frame = _cohort()
    frame["days"] = 10.0 + np.arange(N)
    frame["status"] = ["Alive", "DEAD ", "Dead", "alive", "dead"] * (N // 5)
    study = Study(task="risk", time="days", event="status", drop=["disease"])
    assert _errors(frame, study) == [
        "event column 'status' has values that differ only in letter case or spaces: 'Alive' "
        "(12) and 'alive' (12); 'DEAD ' (12) and 'Dead' (12) and 'dead' (12); write each value "
        "one way (1 = event and 0 = censored, or the value given with --event-value and one "
        "other)"]


@pytest.mark.parametrize(("value", "written"), [
    ("04/15/1922", "MM/DD/YYYY"), ("15/04/1922", "DD/MM/YYYY"), ("1/3/97", "M/D/YY"),
    ("15.04.1922", "DD.MM.YYYY"), ("1922-04-15", "YYYY-MM-DD"), ("Apr 15, 1922", "Mon DD, YYYY"),
    ("15-April-1922", "DD-Month-YYYY"), ("2022-04-30T10:05:00Z", "YYYY-MM-DDThh:mm:ssZ"),
    ("4/30/2022 10:05 PM", "M/DD/YYYY hh:mm PM"), (pd.Timestamp("2022-04-30"), "YYYY-MM-DD"),
])
def test_a_date_is_shown_by_its_format_never_its_value(value, written):
    assert date_format(value) == written
