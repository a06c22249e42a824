"""Findings describe a patient's values without quoting them: they are printed, and written
into manifest.json and report.html, which are shared in clear. Row numbers are kept, and the
common spellings of a missing value ('n/a', '-'), which are no patient's data, are named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permed.exceptions import SchemaMismatchError
from permed.study import FittedSchema, Study, validate

NAME = "Jane Roe"  # what a stray cell may hold: no message may repeat it
HOSPITAL = "St Elsewhere General"


def _messages(frame: pd.DataFrame, study: Study) -> list[str]:
    return [f.message for f in validate(frame, study).findings]


def _diagnose(**roles) -> Study:
    return Study(task="diagnose", target="disease", id="patient_id", **roles)


def test_a_constant_column_is_described_not_quoted(small_cohort):
    small_cohort["site"] = HOSPITAL
    small_cohort.loc[[3, 8], "site"] = np.nan
    assert _messages(small_cohort, _diagnose()) == [
        "column 'site' has one value, a text of 20 characters with letters and spaces, in all "
        "198 rows where it is recorded (2 are empty): it carries no information; drop it with "
        "--drop 'site'"]


def test_a_constant_number_is_described_as_a_number(small_cohort):
    small_cohort["ward"] = 7
    assert _messages(small_cohort, _diagnose()) == [
        "column 'ward' has one value, a number, in all 200 rows: it carries no information; "
        "drop it with --drop 'ward'"]


def test_text_in_a_numeric_column_is_described_with_its_rows(small_cohort):
    small_cohort["chol"] = small_cohort["chol"].astype(object)
    small_cohort.loc[[3, 8], "chol"] = [NAME, "see note 2"]
    small_cohort.loc[16, "chol"] = "n/a"
    assert _messages(small_cohort, _diagnose()) == [
        "column 'chol' is numeric but 3 of 200 values are text (rows 4, 9, 17; 'n/a', which "
        "marks a missing value, and 2 other texts, e.g. one of 8 characters with letters and "
        "spaces): correct them, leave them empty (or NA), or list the marker under missing in "
        "the study's [study] table, to mark it missing, or declare the column categorical in "
        "the study"]


def test_numbers_in_disguise_give_rows_and_signs_not_values():
    i = np.arange(60)
    frame = pd.DataFrame({"crp": [f"<{v}" if v % 3 == 0 else str(v) for v in 10 + i % 37],
                          "disease": i % 2})
    frame.loc[[4, 7], "crp"] = [NAME, "pending"]
    (message,) = _messages(frame, Study(task="diagnose", target="disease"))
    assert message.startswith(
        "column 'crp' holds numbers in 58 of its 60 values, 19 of them written with a "
        "comparison sign (rows 3, 6, 9, 12, 15 and 14 more), and 2 values that are not numbers "
        "('pending' (1), and a value of 8 characters with letters and spaces; rows 5, 8): ")
    assert ("write each value with '<' as a number (e.g. the detection limit), with a column "
            "of its own flagging it if that matters; leave missing values empty (or NA) rather "
            "than written in words;") in message
    assert "<1" not in message


def test_a_risk_time_with_text_is_described():
    frame = pd.DataFrame({"age": np.arange(40.0), "days": np.arange(1, 41).astype(object),
                          "status": np.arange(40) % 2})
    frame.loc[4, "days"] = NAME
    study = Study(task="risk", time="days", event="status")
    (message,) = [f.message for f in validate(frame, study).errors]
    assert message == (
        "time column 'days' must hold numbers but 1 of 40 values is text (row 5; a value of 8 "
        "characters with letters and spaces): follow-up times must be numbers in one unit "
        "(e.g. days); correct them")


def _treat_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 80
    return pd.DataFrame({"age": rng.normal(50, 10, n).round(), "arm": np.arange(n) % 2,
                         "cd4": rng.normal(350, 50, n).round(), "p": np.full(n, 0.5)})


@pytest.mark.parametrize(("change", "expected"), [
    (lambda f: f.assign(cd4=HOSPITAL),
     "outcome column 'cd4' has one value, a text of 20 characters with letters and spaces, in "
     "all 80 rows: there is no effect to estimate; choose another --outcome"),
    (lambda f: f.assign(cd4=f["cd4"].astype(object).where(f.index % 20 != 3, NAME)),
     "outcome column 'cd4' must be numeric (continuous) or have two values (binary), but 4 of "
     "80 values are text (rows 4, 24, 44, 64; a value of 8 characters with letters and "
     "spaces): correct them or leave them empty"),
    (lambda f: f.assign(p=f["p"].astype(object).where(f.index != 9, NAME)),
     "propensity column 'p' must be numeric but 1 of 80 values is text (row 10; a value of 8 "
     "characters with letters and spaces): correct the values"),
])
def test_treat_roles_describe_their_values(change, expected):
    study = Study(task="treat", treatment="arm", outcome="cd4", propensity="p")
    assert expected in [f.message for f in validate(change(_treat_table()), study).errors]


def test_a_gene_column_with_text_is_described():
    i = np.arange(40)
    frame = pd.DataFrame({"gene_a": (i % 7).astype(object), "gene_b": i % 5 + 0.5,
                          "disease": i % 2})
    frame.loc[2, "gene_a"] = NAME
    study = Study(task="diagnose", target="disease", genes=["gene_*"])
    assert [f.message for f in validate(frame, study).errors] == [
        "gene column 'gene_a' must hold numeric expression values but 1 of 40 values is text "
        "(row 3; a value of 8 characters with letters and spaces): correct the values or leave "
        "them empty"]


def test_new_data_with_text_in_a_numeric_column_is_described(small_cohort):
    study = _diagnose(sensitive=["sex"])
    schema = FittedSchema.from_frame(small_cohort, validate(small_cohort, study).kinds, study,
                                     ["0", "1"])
    small_cohort["age"] = small_cohort["age"].astype(object)
    small_cohort.loc[[1, 6], "age"] = [NAME, "-"]
    with pytest.raises(SchemaMismatchError) as refused:
        schema.check(small_cohort)
    assert str(refused.value) == (
        "column 'age' must be numeric (as in training) but 2 of 200 values are text (rows 2, 7; "
        "'-', which marks a missing value, and another value of 8 characters with letters and "
        "spaces): correct the values or leave them empty")


def test_duplicated_ids_are_told_by_their_rows_not_quoted(small_cohort):
    # an id may be a medical record number: a Safe Harbor identifier
    small_cohort["patient_id"] = [f"{i:06d}" for i in range(101, 301)]
    small_cohort.loc[[7, 30], "patient_id"] = small_cohort.loc[3, "patient_id"]
    small_cohort.loc[99, "patient_id"] = small_cohort.loc[98, "patient_id"]
    for row in (120, 140, 160, 180):
        small_cohort.loc[row + 1, "patient_id"] = small_cohort.loc[row, "patient_id"]
    assert [f.message for f in validate(small_cohort, _diagnose()).errors] == [
        "id column 'patient_id' has 6 duplicated ids (rows 4, 8 and 31 share one; rows 99 and "
        "100 another; rows 121 and 122 another; and 3 more): one row per patient is expected; "
        "de-duplicate or aggregate the rows first"]
    study = _diagnose()
    kept = small_cohort.drop_duplicates("patient_id")
    schema = FittedSchema.from_frame(kept, validate(kept, study).kinds, study, ["0", "1"])
    warning = schema.duplicated_ids(small_cohort.reset_index(drop=True))
    assert warning.startswith("id column 'patient_id' has 6 duplicated ids (rows 4, 8 and 31 "
                              "share one; rows 99 and 100 another; rows 121 and 122 another; "
                              "and 3 more): each row is evaluated")
    assert "000104" not in warning
