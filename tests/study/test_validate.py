"""Every bad-input case of the data contract, with its exact message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permed.exceptions import DataError, StudyError
from permed.study import ColumnSpec, Study, validate


def _study(**roles) -> Study:
    return Study(task="diagnose", target="disease", **{"id": "patient_id", **roles})


def _errors(frame: pd.DataFrame, study: Study) -> list[str]:
    return [f.message for f in validate(frame, study).errors]


def _warnings(frame: pd.DataFrame, study: Study) -> list[str]:
    return [f.message for f in validate(frame, study).warnings]


def test_clean_cohort_has_no_findings(small_cohort):
    report = validate(small_cohort, _study(id="patient_id", sensitive=["sex"]))
    assert report.findings == []
    assert report.kinds == {"age": "numeric", "chol": "numeric", "smoker": "categorical"}


@pytest.mark.parametrize(
    ("target", "hint"),
    [("diseas", "did you mean 'disease'?"), ("Disease", "did you mean 'disease'? (names are "
                                             "case-sensitive)")],
)
def test_misspelled_target_suggests_the_closest_name(small_cohort, target, hint):
    (message,) = _errors(small_cohort, Study(task="diagnose", target=target, id="patient_id"))
    assert message == f"target column '{target}' (from --target) is not in the data: {hint}"


def test_missing_sensitive_column_is_named(small_cohort):
    (message,) = _errors(small_cohort, _study(sensitive=["gender"]))
    assert message.startswith("sensitive column 'gender' (from --sensitive) is not in the data")


def test_one_class_target_is_refused(small_cohort):
    small_cohort["disease"] = 1
    (message,) = _errors(small_cohort, _study())
    assert message == (
        "target column 'disease' has one class only ('1' for all 200 patients): a diagnosis "
        "needs at least two classes; check the column or the data extract")


def test_more_than_fifty_classes_is_refused(small_cohort):
    small_cohort["disease"] = np.arange(200) % 60
    (message,) = _errors(small_cohort, _study())
    assert message.startswith("target column 'disease' has 60 distinct values (at most 50 "
                              "classes are allowed for diagnose): it looks continuous")


def test_entirely_missing_column_is_refused(small_cohort):
    small_cohort["chol"] = np.nan
    assert _errors(small_cohort, _study()) == [
        "column 'chol' is entirely missing: drop it with --drop 'chol'"]


def test_constant_column_is_refused(small_cohort):
    small_cohort["smoker"] = "never"
    assert _errors(small_cohort, _study()) == [
        "column 'smoker' has one value, a text of 5 characters with letters, in all 200 rows: "
        "it carries no information; drop it with --drop 'smoker'"]


def test_saved_row_index_is_left_out_with_a_warning(small_cohort):
    small_cohort.insert(0, "Unnamed: 0", np.arange(len(small_cohort)))
    report = validate(small_cohort, _study())
    last = len(small_cohort) - 1
    assert [f.message for f in report.warnings] == [
        f"column 'Unnamed: 0' holds the row numbers 0..{last} in order (a saved table index): "
        "it is left out; declare it with --id 'Unnamed: 0' if it is the patient id, or give it "
        "a kind in the study if it is a measurement"]
    assert "Unnamed: 0" not in report.kinds


def test_a_record_counter_restarting_per_file_is_left_out_with_a_warning(small_cohort):
    # Symptom2Disease's index: 0..299 four times, the diagnoses listed in blocks within each
    n = len(small_cohort)
    small_cohort.insert(0, "index", np.arange(n) % (n // 2))
    report = validate(small_cohort, _study())
    assert [f.message for f in report.warnings] == [
        "column 'index' holds numbers going up by one from row to row, restarting 1 time (a "
        "record counter, which follows the order the rows were listed in, not the patient): it "
        "is left out; declare it with --id 'index' if it is the patient id, or give it a kind in "
        "the study if it is a measurement"]
    assert "index" not in report.kinds


def test_a_shuffled_record_number_is_kept_with_a_warning(small_cohort):
    n = len(small_cohort)
    small_cohort["patient_no"] = np.random.default_rng(0).permutation(n) + 5000
    report = validate(small_cohort, _study())
    assert [f.message for f in report.warnings] == [
        "column 'patient_no' holds a different whole number for every patient, like a record "
        "number: it is used as a feature; if it identifies patients, declare it with --id "
        "'patient_no' or drop it with --drop 'patient_no' (give it a kind in the study to keep "
        "it without this warning)"]
    assert report.kinds["patient_no"] == "numeric"
    small_cohort["patient_no"] = small_cohort["patient_no"] + 0.5  # not whole numbers: a value
    assert validate(small_cohort, _study()).warnings == []


def test_classes_spelled_two_ways_are_refused(small_cohort):
    small_cohort["disease"] = small_cohort["disease"].astype(str)
    small_cohort.loc[:9, "disease"] = [" 1 ", "1 "] * 5  # stray spaces on ten rows
    ones = int((small_cohort["disease"] == "1").sum())
    assert [f.message for f in validate(small_cohort, _study()).errors] == [
        "target column 'disease' has classes that differ only in letter case or spaces: "
        f"'1' ({ones}) and ' 1 ' (5) and '1 ' (5); write each class one way"]


def test_visit_years_restarting_per_patient_are_kept(small_cohort):
    small_cohort["year"] = 2001 + np.arange(len(small_cohort)) % 7
    report = validate(small_cohort, _study())
    assert report.warnings == []
    assert report.kinds["year"] == "numeric"


@pytest.mark.parametrize(("dates", "written"), [
    (lambda n: [f"{1 + i % 12}/{1 + i % 28}/199{i % 10}" for i in range(n)], "M/D/YYYY"),
    (lambda n: pd.date_range("2020-01-01", periods=n, freq="D").astype(str).tolist(),
     "YYYY-MM-DD"),
    (lambda n: pd.date_range("2020-01-01", periods=n, freq="D"), "YYYY-MM-DD"),  # Parquet's
])
def test_calendar_dates_are_left_out_with_a_warning(small_cohort, dates, written):
    """The warning goes into the manifest and the report: it shows how the dates are written,
    never a patient's date."""
    small_cohort["admitted"] = dates(len(small_cohort))
    report = validate(small_cohort, _study())
    assert [f.message for f in report.warnings] == [
        f"column 'admitted' holds dates (written {written}): it is left out, since a model would "
        "learn the calendar and a date recorded at follow-up gives the outcome away; put what "
        "matters in a number of its own (age at admission, days in hospital), or drop the "
        "column with --drop 'admitted'"]
    assert "admitted" not in report.kinds
    assert report.errors == []


def test_a_date_column_declared_categorical_is_kept(small_cohort):
    small_cohort["visit_month"] = [f"2020-{1 + i % 3:02d}-01" for i in range(len(small_cohort))]
    study = Study(task="diagnose", target="disease", id="patient_id",
                  columns={"visit_month": ColumnSpec(kind="categorical")})
    report = validate(small_cohort, study)
    assert report.kinds["visit_month"] == "categorical"
    assert report.warnings == []


def test_shuffled_integers_are_not_read_as_a_row_index(small_cohort):
    small_cohort["visit"] = np.random.default_rng(0).permutation(len(small_cohort))
    assert validate(small_cohort, _study()).kinds["visit"] == "numeric"


def test_text_in_numeric_column_is_described_with_its_rows(small_cohort):
    small_cohort["age"] = small_cohort["age"].astype(object)
    small_cohort.loc[[4, 5, 6], "age"] = "twelve"
    (message,) = _errors(small_cohort, _study())
    assert message == (
        "column 'age' is numeric but 3 of 200 values are text (rows 5, 6, 7; a value of 6 "
        "characters with letters): correct them, leave them empty (or NA), or list the marker "
        "under missing in the study's [study] table, to mark it missing, or declare the column "
        "categorical in the study")


def test_one_text_value_in_a_numeric_column_is_told_in_the_singular(small_cohort):
    small_cohort["age"] = small_cohort["age"].astype(object)
    small_cohort.loc[5, "age"] = "-"
    (message,) = _errors(small_cohort, _study())
    assert message == (
        "column 'age' is numeric but 1 of 200 values is text (row 6; '-', which marks a "
        "missing value): correct it, leave it empty (or NA), or list the marker under missing "
        "in the study's [study] table, to mark it missing, or declare the column categorical "
        "in the study")


def test_duplicate_ids_are_refused(small_cohort):
    small_cohort.loc[10, "patient_id"] = "P0003"
    (message,) = _errors(small_cohort, _study())
    assert message == (
        "id column 'patient_id' has 1 duplicated id (rows 4 and 11 share one): one row per "
        "patient is expected; de-duplicate or aggregate the rows first")


def test_values_outside_declared_range_are_refused(small_cohort):
    small_cohort.loc[[3, 16, 89], "age"] = [130, 212, 150]
    study = _study(columns={"age": ColumnSpec(kind="numeric", valid_range=(0, 120))})
    (message,) = _errors(small_cohort, study)
    assert message == (
        "column 'age' has 3 values above 120 (max 212) in rows 4, 17, 90: check the unit or "
        "set valid_range in the study")


def test_perfect_predictor_warns_of_leakage(small_cohort):
    small_cohort["discharge_code"] = small_cohort["disease"] * 10 + 3
    (message,) = _warnings(small_cohort, _study())
    assert message == (
        "column 'discharge_code' predicts 'disease' perfectly on its own: likely leakage "
        "(recorded after or because of the diagnosis?); if it is not known when the prediction "
        "is made, drop it with --drop 'discharge_code'")


def test_severe_imbalance_warns_with_ratio(small_cohort):
    small_cohort["disease"] = 0
    small_cohort.loc[:7, "disease"] = 1
    (message,) = _warnings(small_cohort, _study())
    assert message.startswith("severe class imbalance in 'disease': '1' is 4.0% of patients "
                              "(8 of 200), ratio 1:24 to '0'")


def test_identifier_like_text_column_is_refused_without_quoting_a_value(small_cohort):
    (message,) = _errors(small_cohort, _study(id=None))
    assert message == ("column 'patient_id' has a different text value for every patient: it "
                       "looks like an identifier or free text, not a feature; declare it with "
                       "--id 'patient_id' or drop it with --drop 'patient_id'")


def test_class_smaller_than_folds_is_refused(small_cohort):
    small_cohort["disease"] = 0
    small_cohort.loc[:2, "disease"] = 1
    report = validate(small_cohort, _study(), min_class_size=5)
    assert report.errors[0].message.startswith(
        "target column 'disease' has classes with fewer than 5 patients: '1' (3)")


def test_raise_errors_lists_every_problem(small_cohort):
    small_cohort["chol"] = np.nan
    small_cohort["smoker"] = "never"
    with pytest.raises(DataError, match=r"^2 problems in the data:\n- column 'chol'") as info:
        validate(small_cohort, _study()).raise_errors()
    assert len(info.value.problems) == 2


def test_study_rejects_unknown_task():
    with pytest.raises(StudyError, match="task 'predict' is not known"):
        Study(task="predict")


@pytest.mark.parametrize("bad", [[1], [0, 1, 2], ["low", 5], 5, [True, 2]])
def test_a_valid_range_that_is_not_two_numbers_is_refused(bad):
    with pytest.raises(StudyError, match=r"valid_range = .* must be two numbers, \[low, high\], "
                                         r"e.g. valid_range = \[0, 120\]$"):
        ColumnSpec(valid_range=bad)


def test_a_study_file_round_trips_every_setting(tmp_path):
    study = Study(task="diagnose", target="disease", id="patient_id", sensitive=["sex"],
                  use_sensitive=True, images="image_path", on_bad_file="skip",
                  text_encoder="minilm", genes=["gene_*"], drop=["admitted"],
                  columns={"age": ColumnSpec(kind="numeric", unit="years",
                                             valid_range=(np.int64(0), 120))},
                  deidentify={"zip": "zip3"}, fhir={"age": "Patient.birthDate"},
                  missing=["n/a", "-"])
    (tmp_path / "s.toml").write_text(study.to_toml())
    assert Study.from_toml(tmp_path / "s.toml") == study


@pytest.mark.parametrize("name", ["région", "Âge (years)", "dose[mg]", "blood pressure", "age-1"])
def test_a_column_name_that_is_no_bare_toml_key_round_trips(tmp_path, name):
    study = Study(task="diagnose", target="disease",
                  columns={name: ColumnSpec(kind="numeric")}, deidentify={name: "drop"})
    (tmp_path / "s.toml").write_text(study.to_toml(), encoding="utf-8")
    assert Study.from_toml(tmp_path / "s.toml") == study


@pytest.mark.parametrize("missing", [["n/a", ""], "n/a, -", [3]])
def test_missing_markers_must_be_a_list_of_texts(missing):
    with pytest.raises(StudyError, match=r"^\[study\] missing = .* must be a list of the texts "
                                         r'that mark a missing value, e.g. \["n/a", "-", '
                                         r'"unknown"\]$'):
        Study(missing=missing)


def test_an_unknown_key_in_the_study_table_is_refused():
    with pytest.raises(StudyError, match=r"^s.toml: \[study\] has unknown key\(s\) \['target'\]; "
                                         r"expected task, text_encoder, missing \(the column "
                                         r"roles go "
                                         r"under \[roles\]\)$"):
        Study.from_dict({"study": {"task": "diagnose", "target": "disease"}}, source="s.toml")


@pytest.mark.parametrize(("roles", "message"), [
    ({"target": ["a", "b"]}, r'\[roles\] target = \["a", "b"\] must be one column name in quotes, '
                             r'e.g. "age"$'),
    ({"sensitive": ["sex", 3]}, r'\[roles\] sensitive = \["sex", 3\] must be a list of column '
                                r'names, e.g. \["age", "sex"\]$'),
    ({"use_sensitive": "yes"}, r'\[roles\] use_sensitive = "yes" must be true or false$'),
])
def test_a_role_of_the_wrong_type_is_refused(roles, message):
    with pytest.raises(StudyError, match=message):
        Study.from_dict({"roles": roles}, source="s.toml")


def test_a_column_written_as_a_value_instead_of_a_table_is_refused():
    with pytest.raises(StudyError, match=r"^s.toml: columns.age = 'numeric' must be a table: "
                                         r"write \[columns.age\] on its own line, then kind = "
                                         r"\.\.\.$"):
        Study.from_dict({"columns": {"age": "numeric"}}, source="s.toml")


def test_inverted_valid_range_is_refused():
    with pytest.raises(StudyError, match=r"valid_range \[5.0, 1.0\] has its low end above"):
        ColumnSpec(valid_range=(5, 1))


@pytest.mark.parametrize(("column", "values"), [
    ("ssn", lambda i: f"{600 + i:03d}-{10 + i % 90:02d}-{1000 + i:04d}"),
    ("note", lambda i: f"Admitted 12/{1 + i % 28}/2018 with chest pain to bed {i}, stable."),
])
def test_values_that_only_contain_a_date_are_not_dates(small_cohort, column, values):
    """An SSN (666-91-9743) or a note mentioning a date is not a column of dates."""
    small_cohort[column] = [values(i) for i in range(len(small_cohort))]
    report = validate(small_cohort, _study())
    assert [f.message for f in report.findings if "holds dates" in f.message] == []
    assert any(f"column '{column}'" in f.message for f in report.errors)


@pytest.mark.parametrize(("value", "expected"), [
    ("2019-05-13", True), (" 2019-05-13 ", True), ("2019-05-13 10:00", True),
    ("2019-05-13T10:00:00Z", True), ("12/10/2018", True), ("13.05.2019", True),
    ("May 30, 2019", True), ("14-Mar-2021", True), ("3/14/21", True),
    ("666-91-9743", False), ("617-555-0142", False), ("admitted 12/10/2018", False),
    ("2019-13-01", False), ("12-34-5678", False),
])
def test_a_date_value_is_a_date_as_a_whole(value, expected):
    from permed.study._columns import looks_like_dates

    assert looks_like_dates(pd.Series([value])) is expected
