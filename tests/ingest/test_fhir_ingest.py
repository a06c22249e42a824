"""FHIR R4 bundles to one row per patient (Synthea COVID-19 juvenile bundles)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from permed.exceptions import DataError
from permed.ingest.fhir import read_fhir
from permed.testing import shared_data

BIBI = "Bibi254_Schowalter414_475d72ca-91c7-7211-97e3-f000af33fc04.json"
CRIS = "Cris921_Rath779_d4519c92-d241-b2b2-7360-291d60be699e.json"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fhir")
    for name in (BIBI, CRIS):
        shutil.copy(shared_data(f"synthea_fhir_covid_juvenile/{name}"), folder / name)
    return folder


@pytest.fixture(scope="module")
def table(bundles):
    return read_fhir(bundles)


def test_one_row_per_patient_with_demographics(table):
    frame = table.frame.set_index("patient_id")
    assert len(frame) == 2
    assert table.files == 2
    bibi = frame.loc["475d72ca-91c7-7211-97e3-f000af33fc04"]
    assert bibi["gender"] == "female"
    # born 2009-04-29; her latest resource is from May 2020
    assert bibi["age_years"] == pytest.approx(11.0, abs=0.1)
    assert bibi["deceased"] == 0


def test_no_identifier_is_read(table):
    text = " ".join(map(str, table.frame.columns)) + table.frame.to_csv()
    for secret in ("Bibi254", "Schowalter414", "Marvin Divide", "01581", "Westborough"):
        assert secret not in text


def test_latest_and_aggregated_loinc_observations_with_units(table):
    frame = table.frame.set_index("patient_id")
    column = "body_temperature_8310_5_latest"
    assert frame.loc["475d72ca-91c7-7211-97e3-f000af33fc04", column] == pytest.approx(40.894)
    assert table.units[column] == "Cel"
    assert table.loinc[column] == "8310-5"
    # blood pressure panels give their systolic and diastolic components
    assert table.units["systolic_blood_pressure_8480_6_mean"] == "mm[Hg]"
    for stat in ("latest", "mean", "min", "max", "count"):
        assert f"heart_rate_8867_4_{stat}" in frame.columns
    assert (frame["heart_rate_8867_4_min"] <= frame["heart_rate_8867_4_max"]).all()


def test_active_conditions_are_indicators(tmp_path):
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "male",
                      "birthDate": "1950-01-01"}},
        {"resource": {"resourceType": "Patient", "id": "p2", "gender": "female",
                      "birthDate": "1960-01-01"}},
        # dated: with --as-of an undated Condition is left out (nothing shows it came before)
        *[{"resource": {"resourceType": "Condition", "subject": {"reference": f"Patient/{p}"},
                        "onsetDateTime": "2015-01-01",
                        "clinicalStatus": {"coding": [{"code": status}]},
                        "code": {"coding": [{"system": "http://snomed.info/sct",
                                             "code": "44054006", "display": "Diabetes"}]}}}
          for p, status in (("p1", "active"), ("p2", "resolved"))],
        {"resource": {"resourceType": "Observation", "subject": {"reference": "Patient/p1"},
                      "effectiveDateTime": "2020-01-01",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4",
                                           "display": "Hemoglobin A1c"}]},
                      "valueQuantity": {"value": 7.1, "code": "%"}}},
        {"resource": {"resourceType": "Observation", "subject": {"reference": "Patient/p1"},
                      "effectiveDateTime": "2019-01-01",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4",
                                           "display": "Hemoglobin A1c"}]},
                      "valueQuantity": {"value": 53, "code": "mmol/mol"}}},
    ]}
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    table = read_fhir(tmp_path / "b.json", as_of="2020-01-01")
    frame = table.frame.set_index("patient_id")
    assert frame["condition_44054006_diabetes"].to_dict() == {"p1": 1, "p2": 0}
    assert frame.loc["p1", "age_years"] == pytest.approx(70.0, abs=0.01)
    # the value in another unit is left out, and counted
    assert frame.loc["p1", "hemoglobin_a1c_4548_4_count"] == 1
    assert table.dropped_units == {"4548-4": 1}
    assert pd.isna(frame.loc["p2", "hemoglobin_a1c_4548_4_latest"])


def test_bad_files_are_named(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match=r"'.*broken.json' is not valid JSON"):
        read_fhir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no .json or .ndjson FHIR files"):
        read_fhir(empty)
    (tmp_path / "other.json").write_text(json.dumps({"resourceType": "Organization"}))
    with pytest.raises(DataError, match="no Patient resource in the 1 file"):
        read_fhir(tmp_path / "other.json")


@pytest.fixture(scope="module")
def cohort():
    return read_fhir(shared_data("synthea_fhir_covid_juvenile"))


def test_the_study_drops_the_constant_columns(cohort, synthea_constant_features):
    # one COVID-19 visit each: every vital sign counted once, nobody deceased, all single,
    # every respiratory virus but SARS-CoV-2 negative
    study = cohort.study()
    assert study.drop == ["deceased", "marital_status", *synthea_constant_features]
    assert study.drop == cohort.constant()
    assert study.id == "patient_id"
    assert study.columns["body_temperature_8310_5_mean"].unit == "Cel"


def test_every_code_of_the_synthea_bundles_is_read(cohort):
    # 16 codes a patient: 6 quantities (blood pressure in 2 components) and 10 coded results;
    # only the quantities were read before (the SARS-CoV-2 test was left out without a word)
    frame = cohort.frame.set_index("patient_id")
    read = {c.rsplit("_", 1)[0] for c in frame.columns if c.endswith(("_latest", "_result"))}
    assert len(read) == 17  # 16 codes, blood pressure as its 2 components
    sars = frame["sars_cov_2_rna_pnl_resp_naa_probe_94531_1_result"]
    assert sars.value_counts().to_dict() == {"Detected (qualifier value)": 8,
                                              "Not detected (qualifier value)": 1}
    assert "sars_cov_2_rna_pnl_resp_naa_probe_94531_1_result" not in cohort.study().fhir
    assert (cohort.warnings, cohort.notes) == ([], [])


def test_the_study_maps_what_serve_reads_from_a_bundle(cohort):
    study = cohort.study()
    assert study.fhir == {
        "gender": "Patient.gender", "age_years": "Patient.birthDate",
        **{c: {"loinc": code, "unit": cohort.units[c]} for c, code in cohort.loinc.items()}}
    assert all(c.endswith("_latest") for c in list(study.fhir)[2:])


def test_serve_reads_the_mapped_features_of_a_bundle_as_the_table_holds_them(cohort):
    from permed.serve._fhir import features_from_bundle

    study = cohort.study()
    bundle = json.loads(shared_data(f"synthea_fhir_covid_juvenile/{BIBI}").read_text())
    served = features_from_bundle(bundle, study.fhir, list(study.fhir))
    row = cohort.frame.set_index("patient_id").loc["475d72ca-91c7-7211-97e3-f000af33fc04"]
    for column in study.fhir:
        if column.endswith("_latest"):
            assert served.values[column] == pytest.approx(row[column], rel=1e-9), column
    assert served.values["gender"] == row["gender"] == "female"
    # both: completed years at her latest record (2020-05-14), not at her latest Observation
    assert served.values["age_years"] == row["age_years"] == 11
    assert served.missing == []


def _write_patient(tmp_path, patient: dict, *resources: dict):
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "male", **patient}},
        *({"resource": r} for r in resources)]}
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle))
    return path


@pytest.mark.parametrize(("birth", "age"), [
    ("1950-01-01", 70), ("1950-01", 69), ("1950", 69), ("1949", 70)])
def test_a_partial_birth_date_counts_from_the_middle_of_its_period(tmp_path, birth, age):
    # as permed serve reads it: July 1 of a year, the 15th of a month
    path = _write_patient(tmp_path, {"birthDate": birth})
    frame = read_fhir(path, as_of="2020-01-01").frame
    assert frame["age_years"].tolist() == [age]


@pytest.mark.parametrize(("patient", "resource", "problem"), [
    ({"birthDate": 19500101}, None, "Patient/p1 (resource 1 of the file): Patient.birthDate must "
     "be a FHIR date string YYYY, YYYY-MM or YYYY-MM-DD, found the number 19500101"),
    ({}, {"resourceType": "Observation", "subject": {"reference": "Patient/p1"},
          "code": "2093-3", "valueQuantity": {"value": 180, "code": "mg/dL"}},
     'Observation (resource 2 of the file): Observation.code must be a CodeableConcept: an '
     "object with a 'coding' list of {system, code} objects, found the string \"2093-3\""),
    ({}, {"resourceType": "Encounter", "id": "e1", "subject": "Patient/p1"},
     "Encounter/e1 (resource 2 of the file): Encounter.subject must be a Reference: an object "
     "with a 'reference' string, found the string \"Patient/p1\""),
])
def test_a_malformed_resource_is_named(tmp_path, patient, resource, problem):
    path = _write_patient(tmp_path, patient, *([resource] if resource else []))
    with pytest.raises(DataError) as caught:
        read_fhir(path)
    assert str(caught.value) == (f"'{path}' holds malformed FHIR: {problem}: fix the resource "
                                 "or leave the file out")


def test_a_birth_date_after_the_record_is_refused(tmp_path):
    path = _write_patient(tmp_path, {"birthDate": "2021"})
    with pytest.raises(DataError, match=r"^Patient/p1: Patient.birthDate '2021' is after "
                       r"2020-01-01, the date age is computed on \(its latest dated resource "
                       r"or --as-of\): fix the birthDate, or give --as-of a date after it$"):
        read_fhir(path, as_of="2020-01-01")
