"""A date exported from Excel as its serial number (44709 for 2022-05-27) reads as a number: a
model trained on it learns the calendar. Validation warns, and keeps it (it may be a count)."""

from __future__ import annotations

import numpy as np
import pytest

from permed.study import ColumnSpec, Study, validate

_STUDY = Study(task="diagnose", target="disease", id="patient_id")


def _warnings(frame, study=_STUDY):
    """The serial-date warnings (a wide range of whole numbers also looks like record numbers,
    warned about on its own)."""
    return [f.message for f in validate(frame, study).warnings if "Excel" in f.message]


def _message(column, n=200):
    return (f"column '{column}' is named like a date and all {n} of its values are whole "
            "numbers in the range where Excel keeps dates (days since 1899-12-30; 20000-60000 "
            "is 1954-2064): if it is a date exported as a number, the model learns the calendar "
            "(and a date recorded at follow-up gives the outcome away): drop it with --drop "
            f"'{column}', or convert it into a number of its own (age at admission, days in "
            "hospital); if it is a genuine number, keep it")


def _serials(low, high, seed=2):
    return np.random.default_rng(seed).integers(low, high, 200)


@pytest.mark.parametrize(("column", "low", "high"), [
    ("admit_serial", 44_000, 45_500),
    ("AdmitDate", 44_000, 45_500),
    ("time of admission", 44_000, 45_500),
    ("discharge_dt", 44_000, 45_500),
    ("visitdate", 20_000, 60_000),
    ("dob", 7_000, 40_000),  # births from 1919
])
def test_a_date_kept_as_excel_serial_numbers_is_warned_about(small_cohort, column, low, high):
    frame = small_cohort.assign(**{column: _serials(low, high)})
    assert _warnings(frame) == [_message(column)]
    assert validate(frame, _STUDY).kinds[column] == "numeric"  # kept: a warning, not an error


def test_the_warning_stands_when_the_study_declares_the_column_numeric(small_cohort):
    # permed init declares every number numeric: the declaration says nothing of dates
    frame = small_cohort.assign(admit_serial=_serials(44_000, 45_500))
    study = Study(task="diagnose", target="disease", id="patient_id",
                  columns={"admit_serial": ColumnSpec(kind="numeric")})
    assert _warnings(frame, study) == [_message("admit_serial")]


@pytest.mark.parametrize(("column", "values"), [
    ("charges", _serials(20_000, 60_000)),  # not named like a date
    ("admit_day", _serials(1, 31)),  # named so, but no serial numbers
    ("admit_serial", _serials(44_000, 45_500) + 0.5),  # not whole numbers
    ("admit_serial", np.append(_serials(44_000, 45_500)[:-1], 60_001)),  # one beyond 2064
    ("birth_weight", _serials(500, 5_000)),  # grams
    ("dob", _serials(500, 5_000)),  # below 1919
])
def test_numbers_that_are_not_serial_dates_are_not_warned_about(small_cohort, column, values):
    assert _warnings(small_cohort.assign(**{column: values})) == []
