"""The events column of permed ingest mimic: time-ordered tokens known by the prediction time."""

from __future__ import annotations

import pandas as pd
import pytest

from permed.exceptions import DataError
from permed.ingest.mimic import read_mimic
from permed.testing import shared_data


def _write(folder, name: str, rows: list[dict]) -> None:
    pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)


@pytest.fixture
def tiny(tmp_path):
    """Patient 1: an earlier stay (coded), then the index stay with events on both sides of
    its 24-hour cut-off. Patient 2: a stay that ended after 5 hours (death)."""
    _write(tmp_path, "PATIENTS", [{"SUBJECT_ID": 1, "GENDER": "F", "DOB": "2100-01-01"},
                                  {"SUBJECT_ID": 2, "GENDER": "M", "DOB": "2090-01-01"}])
    _write(tmp_path, "ADMISSIONS", [
        {"SUBJECT_ID": 1, "HADM_ID": 10, "ADMITTIME": "2160-01-01 08:00",
         "DISCHTIME": "2160-01-05 12:00", "ADMISSION_TYPE": "ELECTIVE",
         "HOSPITAL_EXPIRE_FLAG": 0},
        {"SUBJECT_ID": 1, "HADM_ID": 11, "ADMITTIME": "2160-03-01 10:00",
         "DISCHTIME": "2160-03-09 10:00", "ADMISSION_TYPE": "EMERGENCY",
         "HOSPITAL_EXPIRE_FLAG": 1},
        {"SUBJECT_ID": 2, "HADM_ID": 20, "ADMITTIME": "2160-02-01 10:00",
         "DISCHTIME": "2160-02-01 15:00", "ADMISSION_TYPE": "EMERGENCY",
         "HOSPITAL_EXPIRE_FLAG": 1}])
    _write(tmp_path, "DIAGNOSES_ICD", [
        {"SUBJECT_ID": 1, "HADM_ID": 10, "ICD9_CODE": "4019"},
        {"SUBJECT_ID": 1, "HADM_ID": 11, "ICD9_CODE": "4275"}])  # index stay: at discharge
    _write(tmp_path, "PROCEDURES_ICD", [{"SUBJECT_ID": 1, "HADM_ID": 10, "ICD9_CODE": "3605"}])
    _write(tmp_path, "SERVICES", [
        {"SUBJECT_ID": 1, "HADM_ID": 11, "TRANSFERTIME": "2160-03-01 10:05",
         "CURR_SERVICE": "MED"},
        {"SUBJECT_ID": 1, "HADM_ID": 11, "TRANSFERTIME": "2160-03-03 09:00",
         "CURR_SERVICE": "CSURG"}])  # after the cut-off
    _write(tmp_path, "TRANSFERS", [
        {"SUBJECT_ID": 1, "HADM_ID": 11, "EVENTTYPE": "admit", "CURR_CAREUNIT": "MICU",
         "INTIME": "2160-03-01 10:05"},
        {"SUBJECT_ID": 1, "HADM_ID": 11, "EVENTTYPE": "transfer", "CURR_CAREUNIT": "CCU",
         "INTIME": "2160-03-02 11:00"}])  # one hour after the cut-off
    _write(tmp_path, "PRESCRIPTIONS", [
        {"SUBJECT_ID": 1, "HADM_ID": 10, "STARTDATE": "2160-01-02 00:00:00", "DRUG": "Aspirin"},
        {"SUBJECT_ID": 1, "HADM_ID": 11, "STARTDATE": "2160-03-01 00:00:00",
         "DRUG": "Heparin Sodium"},
        # dated the day of the cut-off: maybe started after it, so not known in time
        {"SUBJECT_ID": 1, "HADM_ID": 11, "STARTDATE": "2160-03-02 00:00:00",
         "DRUG": "Norepinephrine"}])
    return tmp_path


def test_only_events_known_by_the_cutoff_enter_in_time_order(tiny):
    table = read_mimic(tiny, level="admission", events=True, events_hours=24)
    index = table.set_index("hadm_id")["events"]
    assert index.loc["11"].split() == [
        "ADM:ELECTIVE", "RX:Aspirin", "DX:4019", "PX:3605",  # the earlier stay
        "ADM:EMERGENCY", "SVC:MED", "CU:MICU", "RX:Heparin_Sodium"]
    # nothing recorded after the cut-off (2160-03-02 10:00) reaches the table
    late = {"SVC:CSURG", "CU:CCU", "RX:Norepinephrine", "DX:4275"}
    assert not late & set(index.loc["11"].split())
    # Aspirin is dated the day after admission: known only once that day is over (past 08:00)
    assert index.loc["10"].split() == ["ADM:ELECTIVE"]


def test_stays_that_ended_before_the_cutoff_are_left_out(tiny):
    # patient 2 died 5 hours in: nothing to predict 24 hours after admission
    assert "20" not in read_mimic(tiny, level="admission", events=True)["hadm_id"].tolist()
    at_admission = read_mimic(tiny, level="admission", events=True, events_hours=0)
    assert at_admission.set_index("hadm_id")["events"].to_dict() == {
        "10": "ADM:ELECTIVE", "11": "ADM:ELECTIVE RX:Aspirin DX:4019 PX:3605 ADM:EMERGENCY",
        "20": "ADM:EMERGENCY"}


def test_negative_hours_are_refused(tiny):
    with pytest.raises(DataError, match=r"--events-hours -1.0 must be 0 \(at admission\) or "
                                        "more, e.g. 24"):
        read_mimic(tiny, events=True, events_hours=-1.0)


def test_mimic_demo_events():
    table = read_mimic(shared_data("mimic3_demo"), events=True)
    assert len(table) == 91  # 9 of the 100 first stays ended within 24 hours (8 deaths)
    assert int(table["died_in_hospital"].sum()) == 25
    # services of elective stays are often recorded minutes before ADMITTIME
    assert table["events"].str.contains("ADM:").all()
    assert table["events"].str.split().str.len().median() >= 10
    assert read_mimic(shared_data("mimic3_demo")).shape[0] == 100  # without events: unchanged
