"""Safe Harbor de-identification of a table and its notes, through the command line and library."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from permed.cli.main import main
from permed.exceptions import DataError, StudyError
from permed.privacy import Key, create_key_file, deidentify_frame, generate_key, pseudonym
from permed.privacy._deidentify import _dates
from permed.privacy._synthetic import phi_table
from permed.study import Study

STUDY = """[study]
task = "diagnose"

[roles]
id = "patient_id"
target = "disease"
identifiers = ["first_name", "last_name", "ssn"]
quasi_identifiers = ["age", "sex", "zip"]

[deidentify]
admit_date = "shift_date"
discharge_date = "shift_date"
note = "scrub"
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A raw table seeded with all 18 kinds (a 93-year-old in row 1), its study and a key."""
    tmp = tmp_path_factory.mktemp("deid")
    frame, seeded = phi_table(25, seed=7)
    frame.loc[0, "age"] = 93
    frame.to_csv(tmp / "raw.csv", index=False)
    (tmp / "study.toml").write_text(STUDY)
    # a fixed key keeps the date shifts, and so the test, deterministic
    create_key_file(tmp / "site.key", Key(bytes(range(32))))
    return tmp, frame, seeded


@pytest.fixture(scope="module")
def cleaned(workspace):
    tmp, _, _ = workspace
    code = main(["deidentify", str(tmp / "raw.csv"), "--study", str(tmp / "study.toml"),
                 "--key-file", str(tmp / "site.key"), "--out", str(tmp / "clean.csv"),
                 "--report", str(tmp / "report.json"), "--quiet"])
    assert code == 0
    return pd.read_csv(tmp / "clean.csv", dtype=str, keep_default_na=False)


def test_no_seeded_identifier_remains(workspace, cleaned):
    tmp, _, seeded = workspace
    text = (tmp / "clean.csv").read_text()
    values = [(kind, v) for kind, vs in seeded.items() for v in vs
              if kind != "note:AGE" and len(v) >= 4]
    assert {kind.split(":")[-1] for kind, _ in values} >= {
        "NAME", "ADDRESS", "LOCATION", "ZIP", "DATE", "PHONE", "FAX", "EMAIL", "SSN", "MRN",
        "HEALTH_PLAN", "ACCOUNT", "LICENSE", "VEHICLE", "DEVICE", "URL", "IP", "BIOMETRIC",
        "PHOTO", "ID"}
    left = [(kind, v) for kind, v in values
            if re.search(rf"(?<![\w/.-]){re.escape(v)}(?![\w/-])", text)]
    assert left == []
    # the same check catches a value left in place
    assert re.search(rf"(?<![\w/.-]){re.escape(values[0][1])}(?![\w/-])",
                     (tmp / "raw.csv").read_text())


def test_the_scrubbed_note_keeps_its_clinical_text(cleaned):
    notes = " ".join(cleaned["note"])
    for tag in ("[NAME]", "[DATE]", "[PHONE]"):
        assert tag in notes
    assert "mg" in notes or "HbA1c" in notes or "denies" in notes


def test_ages_over_89_become_90_plus(workspace, cleaned):
    _, raw, _ = workspace
    assert cleaned.loc[0, "age"] == "90+"
    old = raw["age"] > 89
    assert (cleaned.loc[old.to_numpy(), "age"] == "90+").all()
    assert (cleaned.loc[~old.to_numpy(), "age"].astype(float) == raw.loc[~old, "age"]).all()


def test_date_intervals_within_a_patient_are_kept_exactly(workspace, cleaned):
    _, raw, _ = workspace
    before = pd.to_datetime(raw["discharge_date"]) - pd.to_datetime(raw["admit_date"])
    after = pd.to_datetime(cleaned["discharge_date"]) - pd.to_datetime(cleaned["admit_date"])
    assert (before.to_numpy() == after.to_numpy()).all()
    shift = pd.to_datetime(cleaned["admit_date"]) - pd.to_datetime(raw["admit_date"])
    assert (shift != pd.Timedelta(0)).all()
    assert shift.abs().max() <= pd.Timedelta(days=365)


def test_other_identifiers_are_generalized(workspace, cleaned):
    _, raw, _ = workspace
    assert set(cleaned.columns) == {"patient_id", "zip", "birth_date", "admit_date",
                                    "discharge_date", "age", "sbp", "sex", "note", "disease"}
    assert cleaned["zip"].str.fullmatch(r"\d{3}").all()
    assert cleaned["patient_id"].str.fullmatch(r"P[0-9a-f]{16}").all()
    assert cleaned["birth_date"].str.fullmatch(r"\d{4}|<=\d{4}").all()


def test_report_has_the_risk_before_and_after(workspace, cleaned):
    tmp, _, _ = workspace
    report = json.loads((tmp / "report.json").read_text())
    assert report["actions"]["patient_id"] == "pseudonymize"
    assert report["actions"]["phone"] == "drop"
    before, after = report["risk"]["before"], report["risk"]["after"]
    assert before["quasi_identifiers"] == after["quasi_identifiers"] == ["age", "sex", "zip"]
    assert after["k"] >= before["k"] >= 1
    assert after["unique_share"] <= before["unique_share"]
    assert any(w.startswith("column 'phone' looks like a phone number but has no "
                            "de-identification action: applied 'drop'") for w in report["warnings"])


def test_pseudonyms_and_date_shifts_are_stable_across_two_files(workspace):
    tmp, raw, _ = workspace
    raw.iloc[:15].to_csv(tmp / "part1.csv", index=False)
    raw.iloc[10:].to_csv(tmp / "part2.csv", index=False)
    parts = []
    for name in ("part1", "part2"):
        assert main(["deidentify", str(tmp / f"{name}.csv"), "--study", str(tmp / "study.toml"),
                     "--key-file", str(tmp / "site.key"), "--out", str(tmp / f"{name}.parquet"),
                     "--quiet"]) == 0
        parts.append(pd.read_parquet(tmp / f"{name}.parquet"))
    first, second = parts[0].iloc[10:15], parts[1].iloc[:5]
    for column in ("patient_id", "admit_date", "discharge_date"):
        assert first[column].tolist() == second[column].tolist()
    other = generate_key()
    assert pseudonym(raw.loc[10, "patient_id"], other) != first["patient_id"].iloc[0]


def test_record_numbers_are_read_as_written_so_leading_zeros_keep_patients_apart(workspace):
    """000101 and 101 are two patients (read as numbers they had one pseudonym and one date
    shift); 101.0, a number saved as a float, is still 101."""
    tmp, _, _ = workspace
    (tmp / "mrn.csv").write_text("mrn,visit_date\n000101,2020-01-05\n101,2020-01-05\n"
                                 "101.0,2020-01-05\n,2020-01-05\n")
    assert main(["deidentify", str(tmp / "mrn.csv"), "--key-file", str(tmp / "site.key"),
                 "--out", str(tmp / "mrn_clean.csv"), "--quiet"]) == 0
    clean = pd.read_csv(tmp / "mrn_clean.csv", dtype=str)
    key = Key(bytes(range(32)))
    assert clean["mrn"].tolist()[:3] == [pseudonym("000101", key), pseudonym(101, key),
                                         pseudonym(101, key)]
    assert clean["mrn"][0] != clean["mrn"][1]
    assert clean["visit_date"][0] != clean["visit_date"][1]
    assert clean["visit_date"][1] == clean["visit_date"][2]


def test_a_deidentified_table_trains_with_the_same_study(workspace, cleaned):
    """Removed identifier columns are not an error; "90+" reads as the number 90."""
    from permed.ingest import read_table
    from permed.study import validate

    tmp, _, _ = workspace
    frame, _ = read_table(tmp / "clean.csv")
    study = Study.from_toml(tmp / "study.toml").with_overrides(
        drop=["note", "admit_date", "discharge_date", "birth_date", "zip"])
    report = validate(frame, study)
    assert report.errors == []
    assert report.kinds["age"] == "numeric"


def test_grouped_years_of_birth_read_as_their_bound_when_training():
    """birth_year writes '<=1934' for people over 89: training reads it as 1934, as it reads
    '90+' as 90, and the de-identified table trains with the same study."""
    from permed.study import to_numeric, validate

    raw = pd.DataFrame({"pid": [f"p{i}" for i in range(40)],
                        "dob": [f"19{10 + i % 60}-05-01" for i in range(40)],
                        "disease": [i % 2 for i in range(40)]})
    study = Study(task="diagnose", id="pid", target="disease",
                  deidentify={"dob": "birth_year"})
    clean = deidentify_frame(raw, generate_key(), study, reference_year=2024).frame
    assert clean["dob"].iloc[0] == "<=1934"
    assert to_numeric(clean["dob"]).iloc[:3].tolist() == [1934.0, 1934.0, 1934.0]
    report = validate(clean, study)
    assert (report.errors, report.kinds["dob"]) == ([], "numeric")


def test_without_a_key_the_pseudonyms_are_one_time(workspace, capsys):
    tmp, _, _ = workspace
    assert main(["deidentify", str(tmp / "raw.csv"), "--study", str(tmp / "study.toml"),
                 "--out", str(tmp / "once.csv"), "--quiet"]) == 0
    assert "no --key-file: pseudonyms and date shifts use a one-time key" in \
        capsys.readouterr().err.replace("\n", " ")


@pytest.mark.parametrize(("zip_code", "expected"), [
    ("02139", "021"), (2139, "021"), ("03601", "000"), ("89301-1234", "000"), ("10001", "100"),
])
def test_zip_codes_keep_three_digits_and_restricted_areas_become_000(zip_code, expected):
    frame = pd.DataFrame({"zip": [zip_code], "x": [1]})
    result = deidentify_frame(frame, generate_key(), Study(deidentify={"zip": "zip3"}))
    assert result.frame["zip"].tolist() == [expected]


def test_birth_years_implying_an_age_over_89_are_grouped():
    frame = pd.DataFrame({"dob": ["1920-05-01", "1960-01-02", None]})
    result = deidentify_frame(frame, generate_key(), reference_year=2024)
    assert result.actions == {"dob": "birth_year"}
    assert result.frame["dob"].tolist() == ["<=1934", "1960", None]


def test_columns_without_an_action_that_look_like_identifiers_are_warned_about():
    frame = pd.DataFrame({"Patient Name": ["Ann Lee"], "visit": ["2021-03-04"], "sbp": [120]})
    result = deidentify_frame(frame, generate_key())
    assert result.warnings == [
        "column 'Patient Name' looks like a name but has no de-identification action: applied "
        "'drop'; declare it under [deidentify] in the study (Patient Name = \"drop\", or "
        "\"keep\" if it is not an identifier)",
        "column 'visit' looks like dates but has no de-identification action: applied 'year'; "
        "declare it under [deidentify] in the study (visit = \"year\", or \"keep\" if it is not "
        "an identifier)"]
    assert list(result.frame.columns) == ["visit", "sbp"]
    kept = deidentify_frame(frame, generate_key(), actions={"Patient Name": "keep",
                                                            "visit": "keep"})
    assert kept.warnings == []
    assert list(kept.frame.columns) == list(frame.columns)


@pytest.mark.parametrize(("study", "actions", "message"), [
    (Study(), {"sbp": "hide"}, "de-identification action 'hide' for column 'sbp' is not known; "
     "expected one of drop, pseudonymize"),
    (Study(), {"spb": "drop"}, "de-identification names column 'spb', which is not in the data: "
     "did you mean 'sbp'"),
    (Study(deidentify={"when": "shift_date"}), None, "shift_date needs the patient id column"),
])
def test_bad_actions_are_refused(study, actions, message):
    frame = pd.DataFrame({"sbp": [120, 130], "when": ["2020-01-01", "2020-02-01"]})
    with pytest.raises(StudyError, match=message):
        deidentify_frame(frame, generate_key(), study, actions=actions)


def test_unreadable_dates_are_refused_with_their_rows():
    frame = pd.DataFrame({"pid": ["a", "b", "c"], "seen": ["2020-01-01", "soon", "2020-03-01"]})
    with pytest.raises(DataError, match=r"column 'seen' has 1 values that are not dates in rows "
                       "2: write dates as YYYY-MM-DD"):
        deidentify_frame(frame, generate_key(), Study(id="pid", deidentify={"seen":
                                                                            "shift_date"}))


def test_cli_action_option_is_checked(workspace, capsys):
    tmp, _, _ = workspace
    code = main(["deidentify", str(tmp / "raw.csv"), "--out", str(tmp / "x.csv"),
                 "--action", "age"])
    assert code == 1
    assert "--action 'age' must be COLUMN=ACTION" in capsys.readouterr().err.replace("\n", " ")


@pytest.mark.parametrize("name", ["clean.xlsx", "clean"])
def test_an_out_table_permed_cannot_write_is_refused_before_reading(workspace, capsys, name):
    """An .xlsx --out had been written as CSV under that name, which Excel then refuses."""
    tmp, _, _ = workspace
    code = main(["deidentify", str(tmp / "raw.csv"), "--out", str(tmp / name)])
    assert code == 1
    said = " ".join(capsys.readouterr().err.split())
    assert "expected .csv, .tsv, .parquet: name the table to write with one of them" in said
    assert not (tmp / name).exists()


def test_notes_alone_are_scrubbed_with_the_records_own_names(workspace, capsys):
    """permed deidentify notes.csv --text-column note: no study needed."""
    tmp, raw, seeded = workspace
    raw[["patient_id", "first_name", "last_name", "note"]].to_csv(tmp / "notes.csv", index=False)
    assert main(["deidentify", str(tmp / "notes.csv"), "--text-column", "note", "--key-file",
                 str(tmp / "site.key"), "--out", str(tmp / "notes_clean.csv")]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "column 'first_name' looks like a name but has no de-identification action: " \
           "applied 'drop'" in said
    clean = pd.read_csv(tmp / "notes_clean.csv")
    assert list(clean.columns) == ["patient_id", "note"]
    text = (tmp / "notes_clean.csv").read_text()
    names = seeded["first_name"] + seeded["last_name"] + seeded["note:NAME"]
    assert [n for n in names if re.search(rf"\b{re.escape(n)}\b", text, re.IGNORECASE)] == []


def test_the_studys_deidentify_section_round_trips(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    study = Study.from_toml(path)
    assert study.quasi_identifiers == ["age", "sex", "zip"]
    assert study.deidentify == {"admit_date": "shift_date", "discharge_date": "shift_date",
                                "note": "scrub"}
    path.write_text(study.to_toml())
    assert Study.from_toml(path) == study
    with pytest.raises(StudyError, match=r"unknown section\(s\) \['deidentifiy'\]; expected "
                       r"\[study\], \[roles\], \[columns.NAME\], \[deidentify\]"):
        Study.from_dict({"deidentifiy": {}})


@pytest.mark.parametrize(("values", "expected"), [
    # dots: day first, decided by 13.05 or by convention when no value decides
    (["09.05.2019", "13.05.2019"], ["2019-05-09", "2019-05-13"]),
    (["09.05.2019", "01.02.2019"], ["2019-05-09", "2019-02-01"]),
    # slashes: month first unless a first number over 12 says otherwise
    (["05/09/2019", "12/19/2018"], ["2019-05-09", "2018-12-19"]),
    (["05/09/2019", "13/05/2019"], ["2019-09-05", "2019-05-13"]),
    # each separator decided on its own; ISO and written dates as they are
    (["09.05.2019", "05/09/2019", "2019-05-09", "May 9, 2019", "09-May-2019"],
     ["2019-05-09"] * 5),
])
def test_day_and_month_are_read_in_one_order_per_column(values, expected):
    frame = pd.DataFrame({"seen": values})
    result = deidentify_frame(frame, generate_key(), Study(deidentify={"seen": "year"}))
    assert _dates(frame["seen"], "seen").dt.strftime("%Y-%m-%d").tolist() == expected
    assert result.frame["seen"].tolist() == [int(v[:4]) for v in expected]


def test_shifted_intervals_stay_whole_with_day_first_dates():
    """09.05 and 13.05 are both May: their interval stays 4 days once shifted."""
    frame = pd.DataFrame({"pid": ["a", "a"], "seen": ["09.05.2019", "13.05.2019"]})
    result = deidentify_frame(frame, generate_key(), Study(id="pid",
                                                           deidentify={"seen": "shift_date"}))
    shifted = pd.to_datetime(result.frame["seen"])
    assert (shifted.iloc[1] - shifted.iloc[0]).days == 4


@pytest.mark.parametrize(("values", "message"), [
    (["13.05.2019", "05.13.2019"], "column 'seen' has dates written with dots in both orders: "
     "day first in rows 1 (written DD.MM.YYYY) and month first in rows 2 (written MM.DD.YYYY), "
     "so '05.09.2019' could be 5 September or 9 May: write the dates as YYYY-MM-DD, or in one "
     "order throughout the column"),
    (["12/19/2018", "2019-01-01", "13/12/2018"], "column 'seen' has dates written with slashes "
     "in both orders: day first in rows 3 (written DD/MM/YYYY) and month first in rows 1 "
     "(written MM/DD/YYYY), so '05/09/2019' could be 5 September or 9 May"),
])
def test_a_column_with_both_day_month_orders_is_refused(values, message):
    frame = pd.DataFrame({"seen": values})
    with pytest.raises(DataError, match=f"^{re.escape(message)}"):
        deidentify_frame(frame, generate_key(), Study(deidentify={"seen": "year"}))


def test_rows_without_a_patient_id_keep_no_real_date():
    frame = pd.DataFrame({"pid": ["a", None, "b"], "seen": ["2020-01-01", "2020-02-01", None],
                          "left": ["2020-01-05", "2020-02-03", None]})
    result = deidentify_frame(frame, generate_key(),
                              Study(id="pid", deidentify={"seen": "shift_date",
                                                          "left": "shift_date"}))
    assert result.frame["seen"].tolist()[1:] == [None, None]
    assert result.frame["left"].tolist()[1:] == [None, None]
    assert result.frame["seen"].iloc[0] not in (None, "2020-01-01")
    assert result.warnings == [
        "1 row(s) have dates but no patient id in 'pid' (rows 2): their dates in 'seen', "
        "'left' were left empty, since each date moves by its patient's offset and a real date "
        "must not remain; fill in the patient id to keep them"]


def test_a_note_mentioning_a_date_is_scrubbed_not_shifted():
    notes = [f"Patient admitted 12/1{i}/2018 with chest pain, discharged home after a few days"
             for i in range(5)]
    frame = pd.DataFrame({"patient_id": list("abcde"), "note": notes,
                          "admit": [f"12/1{i}/2018" for i in range(5)]})
    result = deidentify_frame(frame, generate_key())
    assert result.actions == {"patient_id": "pseudonymize", "note": "scrub",
                              "admit": "shift_date"}
    assert result.frame["note"].iloc[0] == ("Patient admitted [DATE] with chest pain, "
                                            "discharged home after a few days")


@pytest.mark.parametrize(("values", "what"), [
    (["123-45-6789", "234-56-7890", "345-67-8901", None], "SSNs (3 of 3 values)"),
    (["a.smith@example.org", "rj@example.org", "al@example.org"], "e-mail addresses (3 of 3 "
     "values)"),
    (["617-555-0100", "(617) 555-0111", "+1 617.555.0102"], "phone numbers (3 of 3 values)"),
    (["10.1.2.3", "192.168.0.7", "fe80::1ff:fe23:4567:890a"], "IP addresses (3 of 3 values)"),
    (["https://example.org/a", "www.example.com", "https://example.net/b", "n/a",
      "example.edu/x"], "web addresses (URLs) (4 of 5 values)"),
])
def test_columns_of_identifier_values_are_dropped_whatever_their_name(values, what):
    """A column named 'contact' or 'social' holding e-mail addresses or SSNs is dropped with a
    warning that counts its values and never quotes them."""
    frame = pd.DataFrame({"contact": values, "sbp": range(len(values))})
    result = deidentify_frame(frame, generate_key())
    assert result.actions == {"contact": "drop"}
    assert list(result.frame.columns) == ["sbp"]
    assert result.warnings == [
        f"column 'contact' holds {what} but has no de-identification action: applied 'drop'; "
        "declare it under [deidentify] in the study (contact = \"drop\", or \"keep\" if it is "
        "not an identifier)"]
    kept = deidentify_frame(frame, generate_key(), actions={"contact": "keep"})
    assert (kept.warnings, list(kept.frame.columns)) == ([], ["contact", "sbp"])
    few = frame.assign(contact=[*values[:1], *["x"] * (len(values) - 1)])  # under 80%
    assert deidentify_frame(few, generate_key()).warnings == []


@pytest.mark.parametrize("zip_codes", [["02139", None, "10001"], [2139, np.nan, 10001]])
def test_a_missing_zip_code_stays_missing(zip_codes):
    frame = pd.DataFrame({"pid": ["a", "b", "c"], "zip": zip_codes, "sex": ["F", "M", "F"]})
    result = deidentify_frame(frame, generate_key(), Study(id="pid", deidentify={"zip": "zip3"}),
                              quasi_identifiers=["zip", "sex"])
    assert result.frame["zip"].tolist() == ["021", None, "100"]
    assert result.risk["after"].k == 1


def test_cli_deidentifies_a_table_with_an_empty_zip_code(tmp_path):
    (tmp_path / "raw.csv").write_text("pid,zip,sbp\n1,02139,120\n2,,130\n3,10001,125\n")
    assert main(["deidentify", str(tmp_path / "raw.csv"), "--id", "pid", "--action", "zip=zip3",
                 "--quasi", "sbp,zip", "--out", str(tmp_path / "clean.csv"), "--quiet"]) == 0
    clean = pd.read_csv(tmp_path / "clean.csv", dtype=str)
    assert clean["zip"].tolist() == ["021", np.nan, "100"]
