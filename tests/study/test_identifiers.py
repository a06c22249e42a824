"""A feature column named like a direct identifier (a name, a phone number) is refused before
any other check can quote its values; a declared kind says it is not one."""

from __future__ import annotations

import pytest

from permed.study import ColumnSpec, Study, validate
from permed.study._validate import direct_identifier


@pytest.mark.parametrize(("column", "what"), [
    ("first_name", "a name"), ("PatientName", "a name"), ("surname", "a name"),
    ("phone", "a phone number"), ("Mobile", "a phone number"), ("email", "an e-mail address"),
    ("SSN", "an SSN"), ("fax", "a fax number"),
    ("mean radius", None), ("age", None), ("zip", None), ("username", None), ("hotel", None),
])
def test_direct_identifiers_are_named_by_the_column_name(column, what):
    assert direct_identifier(column) == what


def test_a_name_column_is_refused_without_quoting_its_values(small_cohort):
    small_cohort["last_name"] = ["Lopez"] * len(small_cohort)  # constant: would be quoted
    study = Study(task="diagnose", target="disease", id="patient_id")
    report = validate(small_cohort, study)
    assert [f.message for f in report.errors] == [
        "column 'last_name' looks like a name, a direct identifier: a model must not learn from "
        "it, and its values would be written into the report and the model; drop it with --drop "
        "'last_name' or list it under identifiers in the study (give it a kind in the study if "
        "it is not one)"]
    assert "Lopez" not in str([f.message for f in report.findings])
    listed = validate(small_cohort, study.with_overrides(identifiers=["last_name"]))
    assert listed.errors == []
    small_cohort["last_name"] = small_cohort["sex"]  # a declared kind: not an identifier
    declared = Study(task="diagnose", target="disease", id="patient_id",
                     columns={"last_name": ColumnSpec(kind="categorical")})
    assert validate(small_cohort, declared).errors == []


@pytest.mark.parametrize(("values", "what"), [
    (["123-45-6789", "234-56-7890", "345-67-8901"], "SSNs"),
    (["mary@example.org", "rob@example.org", "ana@example.org"], "e-mail addresses"),
    (["617-555-0100", "617-555-0101", "(617) 555-0102"], "phone numbers"),
    (["10.1.2.3", "10.1.2.4", "10.1.2.5"], "IP addresses"),
    (["https://a.example.org", "https://b.example.org", "www.example.com"],
     "web addresses (URLs)"),
])
def test_a_column_of_identifier_values_is_refused_without_quoting_them(small_cohort, values,
                                                                        what):
    """Named 'social' or 'contact', no name pattern catches it: its values do."""
    small_cohort["social"] = [values[i % 3] for i in range(len(small_cohort))]
    study = Study(task="diagnose", target="disease", id="patient_id")
    report = validate(small_cohort, study)
    n = len(small_cohort)
    assert [f.message for f in report.errors] == [
        f"column 'social' holds {what} ({n} of {n} values), a direct identifier: a model must "
        "not learn from it, and its values would be written into the report and the model; "
        "drop it with --drop 'social' or list it under identifiers in the study (give it a kind "
        "in the study if it is not one)"]
    assert not any(v in f.message for v in values for f in report.findings)
    assert validate(small_cohort, study.with_overrides(identifiers=["social"])).errors == []
