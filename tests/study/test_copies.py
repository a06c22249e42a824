"""Rows that repeat another row in every feature and the outcome are warned about when the
study has no id (Symptom2Disease holds 90 such rows)."""

from __future__ import annotations

import pandas as pd

from permed.study import Study, validate
from permed.testing import shared_data


def test_repeated_rows_are_named_without_an_id(small_cohort):
    unique = small_cohort.drop(columns="patient_id").drop_duplicates(ignore_index=True)
    n = len(unique)
    frame = pd.concat([unique, unique.iloc[[3, 7]]], ignore_index=True)
    study = Study(task="diagnose", target="disease")
    repeated = [f.message for f in validate(frame, study).warnings
                if "repeat another row" in f.message]
    assert repeated == [
        f"4 rows repeat another row in every feature and the outcome (rows 4, 8, {n + 1}, "
        f"{n + 2}): if "
        "they are a patient recorded twice, copies can fall on both sides of the test split and "
        "flatter the test figures; drop the repeats, or declare --id so that duplicated "
        "patients are refused"]
    with_id = validate(frame.assign(patient_id=range(len(frame))),
                       study.with_overrides(id="patient_id"))
    assert not [f for f in with_id.warnings if "repeat another row" in f.message]


def test_symptom2disease_repeats_are_found():
    frame = pd.read_csv(shared_data("clinical_text/Symptom2Disease.csv"))
    report = validate(frame, Study(task="diagnose", target="label", notes=["text"]))
    (message,) = [f.message for f in report.warnings if "repeat another row" in f.message]
    assert message.startswith("90 rows repeat another row")
