"""permed ingest mimic on ordinary export problems: refused with the table, column, count and
rows (never a value), or read with a warning that says how; never a traceback, never silently
wrong. Three admissions of three patients, one field changed per case (as a tester found them).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from permed.cli.main import main
from permed.exceptions import DataError
from permed.ingest import ReadWarning
from permed.ingest.mimic import read_mimic

ADMISSIONS = [
    {"SUBJECT_ID": 1, "HADM_ID": 101, "ADMITTIME": "2150-01-01 10:00:00",
     "DISCHTIME": "2150-01-05 10:00:00", "HOSPITAL_EXPIRE_FLAG": 0, "ADMISSION_TYPE": "EMERGENCY"},
    {"SUBJECT_ID": 2, "HADM_ID": 102, "ADMITTIME": "2150-02-01 10:00:00",
     "DISCHTIME": "2150-02-03 10:00:00", "HOSPITAL_EXPIRE_FLAG": 1, "ADMISSION_TYPE": "EMERGENCY"},
    {"SUBJECT_ID": 3, "HADM_ID": 103, "ADMITTIME": "2150-03-01 10:00:00",
     "DISCHTIME": "2150-03-02 10:00:00", "HOSPITAL_EXPIRE_FLAG": 0, "ADMISSION_TYPE": "EMERGENCY"}]
PATIENTS = [{"SUBJECT_ID": 1, "GENDER": "F", "DOB": "2100-01-01 00:00:00"},
            {"SUBJECT_ID": 2, "GENDER": "M", "DOB": "2080-06-01 00:00:00"},
            {"SUBJECT_ID": 3, "GENDER": "F", "DOB": "2120-01-01 00:00:00"}]
FIX_CLOCK = ("export every time with its offset, or every time as local time without one "
             r"\(as MIMIC-III does\)")


def _export(folder, admissions=None, patients=None, **tables):
    """Write the tables (``None``: the three-admission base) and return the folder."""
    for name, rows in {"ADMISSIONS": admissions or ADMISSIONS, "PATIENTS": patients or PATIENTS,
                       **tables}.items():
        pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
    return folder


def _changed(rows, index, **fields):
    rows = [dict(r) for r in rows]
    rows[index].update(fields)
    return rows


@pytest.fixture
def permed(capsys):
    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, " ".join(captured.err.split())

    return run


def test_offsets_beside_times_without_one_are_refused(tmp_path):
    admissions = _changed(_changed(ADMISSIONS, 0, ADMITTIME="2150-01-01T10:00:00-05:00"), 1,
                          ADMITTIME="2150-02-01T10:00:00Z")
    with pytest.raises(DataError, match=(
            r"^ADMISSIONS.ADMITTIME mixes times with a UTC offset \(2 rows: rows 1, 2\) and "
            r"times without one \(1 row: row 3\): a time without an offset is on an unknown "
            f"clock, so the two cannot be ordered; {FIX_CLOCK}$")):
        read_mimic(_export(tmp_path, admissions))


def test_event_times_with_offsets_beside_local_admissions_are_refused(tmp_path):
    services = [{"SUBJECT_ID": 1, "HADM_ID": 101, "TRANSFERTIME": "2150-01-01T10:05:00-05:00",
                 "CURR_SERVICE": "MED"},
                {"SUBJECT_ID": 1, "HADM_ID": 101, "TRANSFERTIME": "2150-01-02T10:05:00Z",
                 "CURR_SERVICE": "SURG"}]
    with pytest.raises(DataError, match=(
            r"^times carry a UTC offset in SERVICES.TRANSFERTIME but none in "
            r"ADMISSIONS.ADMITTIME, ADMISSIONS.DISCHTIME: a time without an offset is on an "
            f"unknown clock, so they cannot be compared; {FIX_CLOCK}$")):
        read_mimic(_export(tmp_path, SERVICES=services), events=True)


def test_an_export_with_offsets_throughout_is_read_on_utc(tmp_path):
    # Patient 1 leaves at 15:00 UTC and is admitted again at 12:00 -05:00 (17:00 UTC): an
    # earlier admission, though its wall clock reads later. The drug dated that day (local) is
    # known only at the end of that day, 05:00 UTC the next.
    admissions = [
        {"SUBJECT_ID": 1, "HADM_ID": 10, "ADMITTIME": "2150-01-01T10:00:00-05:00",
         "DISCHTIME": "2150-01-05T15:00:00Z", "HOSPITAL_EXPIRE_FLAG": 0,
         "ADMISSION_TYPE": "ELECTIVE"},
        {"SUBJECT_ID": 1, "HADM_ID": 11, "ADMITTIME": "2150-01-05T12:00:00-05:00",
         "DISCHTIME": "2150-01-09T10:00:00-0500", "HOSPITAL_EXPIRE_FLAG": 1,
         "ADMISSION_TYPE": "EMERGENCY"},
        {"SUBJECT_ID": 2, "HADM_ID": 20, "ADMITTIME": "2150-02-01T10:00:00Z",
         "DISCHTIME": "2150-02-03T10:00:00Z", "HOSPITAL_EXPIRE_FLAG": 0,
         "ADMISSION_TYPE": "EMERGENCY"}]
    services = [{"SUBJECT_ID": 1, "HADM_ID": 11, "TRANSFERTIME": "2150-01-05T12:30:00-05:00",
                 "CURR_SERVICE": "MED"}]
    drugs = [{"SUBJECT_ID": 1, "HADM_ID": 11, "STARTDATE": "2150-01-05T00:00:00-05:00",
              "DRUG": "Aspirin"}]
    folder = _export(tmp_path, admissions, PATIENTS[:2], SERVICES=services, PRESCRIPTIONS=drugs)
    with pytest.warns(ReadWarning, match=(
            r"^times carry UTC offsets \(ADMISSIONS.ADMITTIME, ADMISSIONS.DISCHTIME, "
            r"SERVICES.TRANSFERTIME, PRESCRIPTIONS.STARTDATE\): every time was converted to UTC, "
            "one clock for ordering stays and events")):
        table = read_mimic(folder, level="admission", events=True, events_hours=0).set_index(
            "hadm_id")
    assert table["prior_admissions"].to_dict() == {"10": 0, "11": 1, "20": 0}
    assert table.loc["11", "events"] == "ADM:ELECTIVE ADM:EMERGENCY"
    with pytest.warns(ReadWarning, match="^times carry UTC offsets"):
        later = read_mimic(folder, level="admission", events=True, events_hours=12)
    assert later.set_index("hadm_id").loc["11", "events"] == (
        "ADM:ELECTIVE ADM:EMERGENCY SVC:MED RX:Aspirin")


def test_an_expire_flag_written_y_n_is_read_with_a_warning(tmp_path):
    admissions = _changed(_changed(ADMISSIONS, 0, HOSPITAL_EXPIRE_FLAG="Y"), 2,
                          HOSPITAL_EXPIRE_FLAG="n")
    with pytest.warns(ReadWarning, match=(
            r"^ADMISSIONS.HOSPITAL_EXPIRE_FLAG is written Y/N in 2 admissions: Y was read as 1 "
            r"\(died in hospital\), N as 0$")):
        table = read_mimic(_export(tmp_path, admissions))
    assert table["died_in_hospital"].tolist() == [1, 1, 0]


@pytest.mark.parametrize(("flag", "message"), [
    (None, r"^ADMISSIONS.HOSPITAL_EXPIRE_FLAG, the outcome, is empty for 1 admission \(row 2\): "
           r"fill it in \(1 died in hospital, 0 discharged alive\) or remove those admissions; "
           "they are not left out silently"),
    ("2", r"^ADMISSIONS.HOSPITAL_EXPIRE_FLAG must be 0 or 1 \(or Y/N\); 1 admission hold "
          r"another value \(row 2\): recode them as 1 \(died in hospital\) or 0"),
    ("died", r"^ADMISSIONS.HOSPITAL_EXPIRE_FLAG must be 0 or 1 \(or Y/N\); 1 admission hold "),
])
def test_an_empty_or_unknown_expire_flag_is_refused(tmp_path, flag, message):
    with pytest.raises(DataError, match=message):
        read_mimic(_export(tmp_path, _changed(ADMISSIONS, 1, HOSPITAL_EXPIRE_FLAG=flag)))


def test_exact_repeats_of_rows_are_read_once(tmp_path):
    folder = _export(tmp_path, [*ADMISSIONS, ADMISSIONS[0]], [*PATIENTS, PATIENTS[0]])
    with pytest.warns(ReadWarning) as caught:
        table = read_mimic(folder, level="admission")
    assert [str(w.message) for w in caught] == [
        "ADMISSIONS repeats 1 row exactly (ROW_ID aside; row 4): each was read once",
        "PATIENTS repeats 1 row exactly (ROW_ID aside; row 4): each was read once"]
    assert table["hadm_id"].tolist() == ["101", "102", "103"]
    assert table["age_years"].tolist() == [50.0, 69.7, 30.2]


@pytest.mark.parametrize(("name", "rows", "message"), [
    ("PATIENTS", [*PATIENTS, {"SUBJECT_ID": 1, "GENDER": "M", "DOB": "2050-01-01 00:00:00"}],
     r"^PATIENTS has 1 SUBJECT_ID with rows that differ \(in GENDER, DOB; 2 rows: rows 1, 4\): "
     "PATIENTS holds one row per SUBJECT_ID, and which of them is right cannot be told; keep "
     "the right row of each and remove the others$"),
    ("ADMISSIONS", [*ADMISSIONS, {**ADMISSIONS[2], "HOSPITAL_EXPIRE_FLAG": 1}],
     r"^ADMISSIONS has 1 HADM_ID with rows that differ \(in HOSPITAL_EXPIRE_FLAG; 2 rows: "
     r"rows 3, 4\)"),
    ("ADMISSIONS", _changed(ADMISSIONS, 1, HADM_ID=None),
     r"^ADMISSIONS.HADM_ID is empty in 1 row \(row 2\): every row needs its HADM_ID"),
])
def test_rows_that_differ_under_one_id_are_refused(tmp_path, name, rows, message):
    with pytest.raises(DataError, match=message):
        read_mimic(_export(tmp_path, **{name.lower(): rows}), level="admission")


def test_a_birth_after_the_admission_leaves_the_age_missing(tmp_path):
    patients = _changed(PATIENTS, 0, DOB="2151-01-01 00:00:00")  # was read as 99 years
    with pytest.warns(ReadWarning, match=(
            r"^PATIENTS.DOB is after ADMISSIONS.ADMITTIME for 1 admission \(ADMISSIONS row 1\): "
            r"age_years is left missing for them \(a model imputes it\); check those birth "
            "dates")):
        ages = read_mimic(_export(tmp_path, patients=patients))["age_years"].tolist()
    assert math.isnan(ages[0])
    assert ages[1:] == [69.7, 30.2]
    # a two-digit year moves a date by a century: the age is taken modulo 100, as before
    spreadsheet = _changed(PATIENTS, 0, DOB="3/5/94 0:00")
    admissions = _changed(ADMISSIONS, 0, ADMITTIME="10/23/64 21:09", DISCHTIME="11/1/64 17:15")
    table = read_mimic(_export(tmp_path, admissions, spreadsheet))
    assert table["age_years"].iloc[0] == pytest.approx(70.6)


def test_a_discharge_before_its_admission_is_never_its_own_prior(tmp_path):
    # admission 101 ends before it begins; patient 2 has a real earlier stay (104)
    admissions = [*_changed(ADMISSIONS, 0, DISCHTIME="2149-01-01 00:00:00"),
                  {**ADMISSIONS[1], "HADM_ID": 104, "ADMITTIME": "2150-01-10 10:00:00",
                   "DISCHTIME": "2150-01-12 10:00:00", "HOSPITAL_EXPIRE_FLAG": 0}]
    diagnoses = [{"SUBJECT_ID": 1, "HADM_ID": 101, "ICD9_CODE": "4275"},
                 {"SUBJECT_ID": 2, "HADM_ID": 104, "ICD9_CODE": "4019"}]
    folder = _export(tmp_path, admissions, DIAGNOSES_ICD=diagnoses)
    with pytest.warns(ReadWarning, match=(
            r"^ADMISSIONS.DISCHTIME is before ADMITTIME for 1 admission \(row 1\): kept as "
            "written, but never counted as an earlier admission of itself")):
        table = read_mimic(folder, level="admission").set_index("hadm_id")
    assert table["prior_admissions"].to_dict() == {"101": 0, "104": 0, "102": 1, "103": 0}
    assert table["prior_dx_circulatory"].to_dict() == {"101": 0, "104": 0, "102": 1, "103": 0}
    # its discharge codes are not known at its admission (its own codes never are)
    with pytest.warns(ReadWarning, match="^ADMISSIONS.DISCHTIME is before ADMITTIME"):
        events = read_mimic(folder, level="admission", events=True, events_hours=0)
    assert events.set_index("hadm_id").loc["101", "events"] == "ADM:EMERGENCY"


def test_a_stay_ending_at_the_prediction_time_does_not_show_its_own_codes(tmp_path):
    # 24 hours exactly: its codes, known at discharge, were known at the cut-off (the demo's
    # admission 159647 showed its six discharge codes)
    admissions = _changed(ADMISSIONS, 2, DISCHTIME="2150-03-02 10:00:00")
    folder = _export(tmp_path, admissions,
                     DIAGNOSES_ICD=[{"SUBJECT_ID": 3, "HADM_ID": 103, "ICD9_CODE": "4275"}])
    table = read_mimic(folder, level="admission", events=True, events_hours=24)
    assert table.set_index("hadm_id")["events"].to_dict() == {
        "101": "ADM:EMERGENCY", "102": "ADM:EMERGENCY", "103": "ADM:EMERGENCY"}


def test_ids_keep_their_leading_zeros(tmp_path, permed):
    admissions = [{**r, "SUBJECT_ID": f"00{r['SUBJECT_ID']}", "HADM_ID": f"000{r['HADM_ID']}"}
                  for r in ADMISSIONS]
    patients = [{**r, "SUBJECT_ID": f"00{r['SUBJECT_ID']}"} for r in PATIENTS]
    folder = _export(tmp_path, admissions, patients)
    table = read_mimic(folder, level="admission")
    assert table["hadm_id"].tolist() == ["000101", "000102", "000103"]
    assert table["subject_id"].tolist() == ["001", "002", "003"]
    assert table["age_years"].tolist() == [50.0, 69.7, 30.2]
    code, _, err = permed("ingest", "mimic", folder, "--out", tmp_path / "out.csv")
    assert code == 0, err
    assert (tmp_path / "out.csv").read_text().splitlines()[1].startswith("000101,")


def test_ids_written_otherwise_in_another_table_are_refused(tmp_path):
    patients = [{**r, "SUBJECT_ID": f"00{r['SUBJECT_ID']}"} for r in PATIENTS]
    with pytest.raises(DataError, match=(
            r"^ADMISSIONS.SUBJECT_ID writes 3 ids otherwise than PATIENTS.SUBJECT_ID \(rows 1, "
            r"2, 3\): the same number with other leading zeros or decimals .*: export the ids "
            "the same way in every table$")):
        read_mimic(_export(tmp_path, patients=patients))
    codes = [{"SUBJECT_ID": 1, "HADM_ID": "101.0", "ICD9_CODE": "4019"}]
    with pytest.raises(DataError, match=r"^DIAGNOSES_ICD.HADM_ID writes 1 id otherwise than "
                                        r"ADMISSIONS.HADM_ID \(row 1\)"):
        read_mimic(_export(tmp_path, DIAGNOSES_ICD=codes))


@pytest.mark.parametrize(("column", "value", "message"), [
    ("ADMITTIME", "not a date", r"^ADMISSIONS.ADMITTIME is not a time for 1 admission \(row 1\): "
     "every admission needs it, the time of the prediction and of its history; correct those "
     r"rows \(YYYY-MM-DD HH:MM:SS\) or remove the admissions$"),
    ("DISCHTIME", None, r"^ADMISSIONS.DISCHTIME is empty for 1 admission \(row 1\): every "
     r"admission needs it, the end of the stay \(one still in hospital has no outcome yet\)"),
])
def test_an_admission_without_its_times_is_refused(tmp_path, column, value, message):
    with pytest.raises(DataError, match=message):
        read_mimic(_export(tmp_path, _changed(ADMISSIONS, 0, **{column: value})))


def test_ages_and_genders_left_missing_are_counted(tmp_path):
    patients = _changed(PATIENTS[:2], 1, DOB="unknown")
    admissions = [*ADMISSIONS, {**ADMISSIONS[0], "HADM_ID": 104, "ADMITTIME": "2160-01-01",
                                "DISCHTIME": "2160-01-02"}]
    with pytest.warns(ReadWarning) as caught:
        table = read_mimic(_export(tmp_path, admissions, patients), level="admission")
    assert [str(w.message) for w in caught] == [
        "PATIENTS.DOB is empty or not a date in 1 row (row 2): age_years is left missing for "
        "those patients (a model imputes it); write DOB as YYYY-MM-DD",
        "ADMISSIONS: 1 admission (row 3) without a PATIENTS row for the SUBJECT_ID: age_years "
        "and gender are left missing for them (a model imputes them); export the PATIENTS row "
        "of every patient"]
    assert table["hadm_id"].tolist() == ["101", "104", "102", "103"]
    assert table["age_years"].isna().tolist() == [False, False, True, True]
    assert table["gender"].isna().tolist() == [False, False, False, True]


def test_unreadable_event_times_are_counted(tmp_path):
    drugs = [{"SUBJECT_ID": 1, "HADM_ID": 101, "STARTDATE": "2150-01-01", "DRUG": "Aspirin"},
             {"SUBJECT_ID": 1, "HADM_ID": 101, "STARTDATE": "garbage", "DRUG": "Vancomycin"}]
    with pytest.warns(ReadWarning, match=r"^PRESCRIPTIONS.STARTDATE is not a time in 1 row "
                                         r"\(row 2\): their events were left out$"):
        table = read_mimic(_export(tmp_path, PRESCRIPTIONS=drugs), events=True)
    assert table["events"].iloc[0] == "ADM:EMERGENCY RX:Aspirin"


@pytest.mark.parametrize("case", [
    {"admissions": _changed(ADMISSIONS, 0, ADMITTIME="2150-01-01T10:00:00-05:00")},
    {"admissions": _changed(ADMISSIONS, 0, HOSPITAL_EXPIRE_FLAG=None)},
    {"admissions": _changed(ADMISSIONS, 0, HOSPITAL_EXPIRE_FLAG="?!")},
    {"patients": [*PATIENTS, {"SUBJECT_ID": 1, "GENDER": "M", "DOB": "2050-01-01"}]},
    {"admissions": _changed(ADMISSIONS, 0, ADMITTIME="garbage")},
])
def test_the_command_line_names_the_problem_without_a_traceback(tmp_path, permed, case):
    code, _, err = permed("ingest", "mimic", _export(tmp_path, **case), "--out",
                          tmp_path / "out.csv")
    assert code == 1
    assert err.startswith("error: ")
    assert "Traceback" not in err
    assert "garbage" not in err
    assert "?!" not in err
    assert not (tmp_path / "out.csv").exists()
