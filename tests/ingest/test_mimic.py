"""MIMIC-III demo tables to an in-hospital mortality table with admission-time features only."""

from __future__ import annotations

import pandas as pd
import pytest

from permed.exceptions import DataError
from permed.ingest.mimic import parse_times, read_mimic
from permed.testing import shared_data

# Recorded during or after the stay: none may reach the table (module docstring).
LEAKS = ("dischtime", "deathtime", "discharge_location", "hospital_expire_flag", "dod",
         "expire_flag", "los", "icd9_code", "has_chartevents_data", "outtime")


@pytest.fixture(scope="module")
def folder():
    return shared_data("mimic3_demo")


@pytest.fixture(scope="module")
def patients(folder):
    return read_mimic(folder)


def test_one_row_per_patient_first_admission(patients):
    assert len(patients) == 100
    assert patients["hadm_id"].is_unique
    # 33 of the 100 patients died during their first admission (the same count follows from
    # ordering the admissions by ICUSTAYS.INTIME, whose dates kept their four-digit years)
    assert int(patients["died_in_hospital"].sum()) == 33


def test_no_feature_comes_from_after_admission(patients):
    assert not {c.lower() for c in patients.columns} & set(LEAKS)
    assert not [c for c in patients.columns if c.startswith(("dx_", "icd", "proc"))]


def test_ages_handle_two_digit_years_and_the_over_89_shift(patients):
    ages = patients.set_index("hadm_id")["age_years"]
    assert ages.between(15, 90).all()
    assert ages.loc["142345"] == pytest.approx(70.6)  # DOB 3/5/94 and admission 10/23/64
    assert (ages == 90).sum() == 8  # over 89: birth dates shifted by 300 years


def test_history_counts_only_earlier_discharges(folder):
    table = read_mimic(folder, level="admission")
    assert len(table) == 129
    first = table.groupby("subject_id").head(1)
    assert (first["prior_admissions"] == 0).all()
    later = table.groupby("subject_id").nth(1)
    assert (later["prior_admissions"] >= 1).all()
    assert (later["days_since_last_discharge"] >= 0).all()
    assert later.filter(like="prior_dx_").sum(axis=1).gt(0).all()


def test_two_digit_and_iso_times():
    parsed = parse_times(pd.Series(["10/23/64 21:09", "2164-10-23 21:10:15", "", None]))
    assert parsed.iloc[0] == pd.Timestamp("2164-10-23 21:09")
    assert parsed.iloc[1] == pd.Timestamp("2164-10-23 21:10:15")
    assert parsed.iloc[2:].isna().all()


def test_missing_tables_and_tasks_are_refused(tmp_path, folder):
    with pytest.raises(DataError, match="has no ADMISSIONS.csv: point permed ingest mimic"):
        read_mimic(tmp_path)
    with pytest.raises(DataError, match="--task 'los' is not known for MIMIC"):
        read_mimic(folder, task="los")
