"""permed ingest mimic on ordinary export problems: refused with the table, column, count and
rows (never a value), or read with a warning that says how; never a traceback, never silently
wrong. Three admissions of three patients, one field changed per case (as a tester found them).
"""

from __future__ import annotations

import pandas as pd
import pytest

from permed.cli.main import main
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


def _export(folder, admissions=None, patients=None, **tables):
    """Write the tables (``None``: the three-admission base) and return the folder."""
    for name, rows in {"ADMISSIONS": admissions or ADMISSIONS, "PATIENTS": patients or PATIENTS,
                       **tables}.items():
        pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.fixture
def permed(capsys):
    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, " ".join(captured.err.split())

    return run


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
