"""How permed ingest fhir reads what a hospital's FHIR export holds: units, statuses, the as-of
date, references, coded values, duplicates (small Bundles written for each case)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from permed.exceptions import DataError
from permed.ingest.fhir import read_fhir

LOINC = "http://loinc.org"
GLUCOSE = "glucose_2345_7"


def observation(patient: str, value: float, unit: str = "mg/dL", *,
                when: str = "2024-01-01T08:00:00Z", code: str = "2345-7",
                display: str = "Glucose", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": when,
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "valueQuantity": {"value": value, "unit": unit,
                              "system": "http://unitsofmeasure.org", "code": unit}, **extra}


def patient(pid: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1970-05-02",
            **extra}


def write_bundle(path: Path, *resources: dict[str, Any], patients: tuple[str, ...] = ("p1",),
                 ) -> Path:
    entries = [{"resource": r} for r in [*map(patient, patients), *resources]]
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                "entry": entries}))
    return path


def rows(table) -> dict[str, dict[str, Any]]:
    return table.frame.set_index("patient_id").to_dict(orient="index")


def test_values_in_another_unit_are_converted_as_serve_converts_them(tmp_path):
    path = write_bundle(
        tmp_path / "b.json", observation("p1", 37.0, "Cel", code="8310-5", display="Body temp"),
        observation("p2", 98.6, "[degF]", code="8310-5", display="Body temp"),
        observation("p3", 37.5, "Cel", code="8310-5", display="Body temp"),
        patients=("p1", "p2", "p3"))
    table = read_fhir(path)
    assert table.frame["body_temp_8310_5_latest"].tolist() == pytest.approx([37.0, 37.0, 37.5])
    assert table.units["body_temp_8310_5_latest"] == "Cel"
    assert table.notes == [
        "LOINC 8310-5: 1 value(s) in '[degF]' converted to 'Cel', the code's most frequent unit"]
    assert table.warnings == []


def test_a_unit_spelled_another_way_that_ucum_allows_is_the_same_unit(tmp_path):
    path = write_bundle(tmp_path / "b.json", observation("p1", 100), observation("p2", 180),
                        observation("p3", 120, "mg/dl"), patients=("p1", "p2", "p3"))
    table = read_fhir(path)
    assert table.frame[f"{GLUCOSE}_latest"].tolist() == [100, 180, 120]
    assert table.units[f"{GLUCOSE}_latest"] == "mg/dL"
    assert (table.warnings, table.dropped_units) == ([], {})


def test_a_value_that_cannot_be_converted_is_left_out_and_named(tmp_path):
    path = write_bundle(tmp_path / "b.json", observation("p1", 100), observation("p2", 180),
                        observation("p3", 5.5, "mmol/L"), observation("p3", 6.1, "mmol/L"),
                        patients=("p1", "p2", "p3"))
    with pytest.warns(UserWarning, match=re.escape("LOINC 2345-7: 2 value(s) of 1 patient(s)")):
        table = read_fhir(path)
    assert table.frame[f"{GLUCOSE}_count"].tolist()[:2] == [1, 1]
    assert table.frame[f"{GLUCOSE}_latest"].isna().tolist() == [False, False, True]
    assert table.dropped_units == {"2345-7": 2}
    assert table.warnings == [
        "LOINC 2345-7: 2 value(s) of 1 patient(s) in 'mmol/L' cannot be converted to 'mg/dL' "
        "(the code's most frequent unit), so they are left out: 'mmol/L' measures "
        "substance concentration, 'mg/dL' mass concentration, and converting between them "
        "needs the analyte's molar mass: convert them before ingest, or give them the LOINC "
        "code of the molar measurement"]


def test_results_that_do_not_stand_are_left_out_as_serve_leaves_them_out(tmp_path):
    from permed.serve._fhir import features_from_bundle

    diabetes = {"coding": [{"system": "http://snomed.info/sct", "code": "44054006",
                            "display": "Diabetes"}]}
    path = write_bundle(
        tmp_path / "b.json", observation("p1", 100, when="2024-01-01"),
        observation("p1", 999, when="2024-01-02", status="entered-in-error"),
        observation("p2", 120, when="2024-01-01"),
        observation("p2", 5, when="2024-01-02", status="cancelled"),
        {"resourceType": "Condition", "subject": {"reference": "Patient/p2"}, "code": diabetes,
         "verificationStatus": {"coding": [{"code": "entered-in-error"}]}},
        patients=("p1", "p2"))
    table = read_fhir(path)
    found = rows(table)
    assert (found["p1"][f"{GLUCOSE}_latest"], found["p1"][f"{GLUCOSE}_count"]) == (100, 1)
    assert (found["p2"][f"{GLUCOSE}_latest"], found["p2"][f"{GLUCOSE}_mean"]) == (120, 120)
    assert not any(c.startswith("condition_") for c in table.frame.columns)
    assert table.notes == [
        "3 resource(s) that do not stand are left out (1 Condition with verificationStatus "
        "entered-in-error, 1 Observation with status cancelled, 1 Observation with status "
        "entered-in-error), as permed serve leaves them out"]
    # one record, read the same way for training and serving
    bundle = json.loads(path.read_text())
    bundle["entry"] = [e for e in bundle["entry"] if "p2" not in json.dumps(e)]
    served = features_from_bundle(bundle, table.study().fhir, [f"{GLUCOSE}_latest"])
    assert served.values[f"{GLUCOSE}_latest"] == found["p1"][f"{GLUCOSE}_latest"]


def test_as_of_reads_the_record_as_it_stood_on_that_date(tmp_path):
    diabetes = {"coding": [{"system": "http://snomed.info/sct", "code": "44054006",
                            "display": "Diabetes"}]}
    path = write_bundle(
        tmp_path / "b.json",
        observation("p1", 100, when="2023-01-01T08:00:00Z"),
        observation("p1", 400, when="2025-06-01T08:00:00Z"),
        observation("p1", 300, when="2024-01-01T23:00:00Z"),  # on the day: read
        observation("p2", 120, when="2023-01-01T08:00:00Z"),
        {**observation("p2", 500), "effectiveDateTime": None},  # undated: left out
        # diagnosed after the date: not yet; resolved after it: still active then
        {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}, "code": diabetes,
         "onsetDateTime": "2024-06-01"},
        {"resourceType": "Condition", "subject": {"reference": "Patient/p2"}, "code": diabetes,
         "onsetDateTime": "2020-01-01", "clinicalStatus": {"coding": [{"code": "resolved"}]},
         "abatementDateTime": "2024-06-01"},
        patients=("p1", "p2", "p3"))
    bundle = json.loads(path.read_text())
    bundle["entry"][2]["resource"]["deceasedDateTime"] = "2024-03-01"
    path.write_text(json.dumps(bundle))
    table = read_fhir(path, as_of="2024-01-01")
    found = rows(table)
    assert (found["p1"][f"{GLUCOSE}_latest"], found["p1"][f"{GLUCOSE}_mean"]) == (300, 200)
    assert (found["p2"][f"{GLUCOSE}_latest"], found["p2"][f"{GLUCOSE}_count"]) == (120, 1)
    assert {p: found[p]["condition_44054006_diabetes"] for p in found} == {
        "p1": 0, "p2": 1, "p3": 0}
    assert (found["p3"]["deceased"], found["p3"]["age_years"]) == (0, 53)
    assert table.notes == [
        "--as-of 2024-01-01: 1 Observation(s) of 1 patient(s) and 1 Condition(s) of 1 "
        "patient(s) dated after it are left out",
        "--as-of 2024-01-01: 1 patient(s) died after it: deceased is 0 for them and their age "
        "is on --as-of"]
    assert table.warnings == [
        "--as-of 2024-01-01: 1 Observation(s) of 1 patient(s) have no date, so nothing shows "
        "they precede it: they are left out; date them (effective[x], onset[x] or "
        "recordedDate) to have them read"]


def test_as_of_a_time_of_day_cuts_at_that_instant(tmp_path):
    path = write_bundle(tmp_path / "b.json",
                        observation("p1", 100, when="2024-01-01T09:00:00+01:00"),
                        observation("p1", 200, when="2024-01-01T10:30:00+01:00"))
    found = rows(read_fhir(path, as_of="2024-01-01T10:00:00+01:00"))
    assert found["p1"][f"{GLUCOSE}_latest"] == 100
    assert rows(read_fhir(path, as_of="2024-01-01T10:00:00Z"))["p1"][f"{GLUCOSE}_count"] == 2


def test_a_versioned_or_absolute_reference_names_its_patient(tmp_path):
    path = write_bundle(
        tmp_path / "b.json",
        observation("p1", 100, subject={"reference": "Patient/p1/_history/2"}),
        observation("p2", 150, subject={"reference": "https://ehr.example.org/fhir/Patient/p2"}),
        patients=("p1", "p2"))
    table = read_fhir(path)
    assert table.frame["patient_id"].tolist() == ["p1", "p2"]
    assert table.frame[f"{GLUCOSE}_latest"].tolist() == [100, 150]
    assert table.warnings == []


def test_patients_without_an_id_are_known_by_their_full_url(tmp_path):
    born = {"resourceType": "Patient", "gender": "male", "birthDate": "1980-01-01"}
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:aaa", "resource": born},
        {"fullUrl": "urn:uuid:bbb", "resource": {**born, "gender": "female"}},
        {"resource": {**born, "gender": "other"}},  # nothing can refer to it
        {"fullUrl": "urn:uuid:o1",
         "resource": observation("x", 100, subject={"reference": "urn:uuid:bbb"})}]}))
    with pytest.warns(UserWarning, match="neither an id nor a fullUrl"):
        table = read_fhir(path, as_of="2024-01-01")
    found = rows(table)
    assert list(found) == ["urn:uuid:aaa", "urn:uuid:bbb"]
    assert found["urn:uuid:bbb"]["gender"] == "female"
    assert found["urn:uuid:bbb"][f"{GLUCOSE}_latest"] == 100
    assert pd.isna(found["urn:uuid:aaa"][f"{GLUCOSE}_latest"])
    assert table.warnings == [
        "1 Patient resource(s) have neither an id nor a fullUrl (in b.json), so nothing can "
        "refer to them: they are left out; give each Patient an id"]


def test_one_id_given_to_patients_that_disagree_is_warned_of_by_file(tmp_path):
    write_bundle(tmp_path / "a.json", observation("p1", 100, when="2023-01-01"),
                 patients=("p1", "p2"))
    bundle = json.loads(write_bundle(tmp_path / "b.json", observation("p1", 300),
                                     patients=("p1", "p2")).read_text())
    bundle["entry"][0]["resource"].update(gender="male", birthDate="1950-01-01")
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    table = read_fhir(tmp_path)
    assert table.frame["patient_id"].tolist() == ["p1", "p2"]
    # p2 is the same in both files: not a conflict; p1's id is never named (it may be an MRN)
    assert table.warnings == [
        "1 Patient id(s) are given to more than one Patient resource that differ in gender, "
        "birthDate (in a.json, b.json): the one read last is used and their Observations and "
        "Conditions are pooled in one row; give different patients different ids, or leave "
        "the older record out"]


def test_observations_of_a_patient_not_in_the_input_are_counted(tmp_path):
    path = write_bundle(tmp_path / "b.json", observation("p1", 100), observation("p9", 300),
                        observation("p9", 310), observation("p8", 320))
    table = read_fhir(path)
    assert table.frame[f"{GLUCOSE}_latest"].tolist() == [100]
    assert table.warnings == [
        "3 Observation value(s) refer to 2 patient(s) not in the input (no Patient with that id "
        "or fullUrl), so they are left out: include those Patients, or check the subject "
        "references"]


def test_an_instant_or_a_period_dates_an_observation(tmp_path):
    instant = observation("p1", 100)
    del instant["effectiveDateTime"]
    instant["effectiveInstant"] = "2024-01-05T00:00:00Z"
    # measured on 2 January, released on the 9th: measured is what dates it
    period = observation("p1", 300, effectivePeriod={"start": "2024-01-02T00:00:00Z"},
                         issued="2024-01-09T00:00:00Z")
    del period["effectiveDateTime"]
    path = write_bundle(tmp_path / "b.json", instant, observation("p1", 200, when="2024-01-03"),
                        period)
    assert rows(read_fhir(path))["p1"][f"{GLUCOSE}_latest"] == 100
    found = rows(read_fhir(path, as_of="2024-01-02"))["p1"]
    assert (found[f"{GLUCOSE}_latest"], found[f"{GLUCOSE}_count"]) == (300, 1)


def test_a_bundle_saved_with_a_byte_order_mark_is_read(tmp_path):
    path = write_bundle(tmp_path / "b.json", observation("p1", 100))
    path.write_text(path.read_text(), encoding="utf-8-sig")
    assert rows(read_fhir(path))["p1"][f"{GLUCOSE}_latest"] == 100


def test_a_bad_ndjson_line_is_named_by_its_number(tmp_path):
    lines = [json.dumps(patient("p1")), "", json.dumps(observation("p1", 100)),
             '{"resourceType": "Observation", "id": "bad"', json.dumps(observation("p1", 110))]
    path = tmp_path / "Observation.ndjson"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=re.escape(
            f"'{path}' is not valid JSON (Expecting ',' delimiter at line 4, column 44): fix or "
            "remove the file")):
        read_fhir(path)
    path.write_text("\n".join([*lines[:3], "[1, 2]"]) + "\n")
    with pytest.raises(DataError, match=re.escape(
            f"'{path}' holds JSON without a resourceType at line 4: it is not FHIR")):
        read_fhir(path)


def test_a_folder_reads_around_a_bulk_export_manifest_that_a_file_alone_cannot_be(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    write_bundle(export / "b.json", observation("p1", 100))
    manifest = export / "manifest.json"
    manifest.write_text(json.dumps({"transactionTime": "2024-01-01T00:00:00Z",
                                    "output": [{"type": "Patient", "url": "Patient.ndjson"}]}))
    table = read_fhir(export)
    assert rows(table)["p1"][f"{GLUCOSE}_latest"] == 100
    assert table.files == 1
    assert table.warnings == ["1 JSON file(s) without a resourceType are not FHIR and were "
                              "skipped (a bulk-export manifest, say): manifest.json"]
    with pytest.raises(DataError, match=re.escape(
            f"'{manifest}' holds JSON without a resourceType: it is not FHIR")):
        read_fhir(manifest)


def test_a_value_beyond_a_limit_is_kept_at_the_limit_with_a_warning(tmp_path):
    def crp(pid: str, value: float, comparator: str | None, when: str) -> dict[str, Any]:
        found = observation(pid, value, "mg/L", code="1988-5", display="CRP", when=when)
        if comparator:
            found["valueQuantity"]["comparator"] = comparator
        return found

    path = write_bundle(tmp_path / "b.json", crp("p1", 3.0, None, "2024-01-01"),
                        crp("p1", 0.5, "<", "2024-02-01"), crp("p2", 200, ">", "2024-02-01"),
                        crp("p2", 250, ">", "2024-03-01"), patients=("p1", "p2"))
    table = read_fhir(path)
    # as permed serve reads them: the latest is the limit, never an older value
    assert table.frame["crp_1988_5_latest"].tolist() == [0.5, 250]
    assert table.warnings == [
        "LOINC 1988-5: 3 value(s) of 2 patient(s) are given beyond a limit ('<' 1, '>' 2): each "
        "is read at its limit, as permed serve reads it, so the true value lies beyond what "
        "the table holds; they are kept, since leaving them out would drop the most abnormal "
        "results and let an older value stand as the latest"]


def test_an_observation_sent_twice_is_counted_once(tmp_path):
    path = write_bundle(
        tmp_path / "b.json",
        observation("p1", 100, when="2024-01-01T23:00:00-05:00", id="a"),
        observation("p1", 200, when="2024-01-02T02:00:00+00:00", id="b"),
        observation("p1", 100, "mg/dl", when="2024-01-02T04:00:00Z", id="c"))  # a, again
    table = read_fhir(path)
    found = rows(table)["p1"]
    assert (found[f"{GLUCOSE}_latest"], found[f"{GLUCOSE}_mean"]) == (100, 150)
    assert found[f"{GLUCOSE}_count"] == 2
    assert table.notes == [
        "1 Observation value(s) of 1 patient(s) repeat another exactly (same patient, code, "
        "time, value and unit) and are counted once"]


def coded(pid: str, result: str, when: str, **extra: Any) -> dict[str, Any]:
    found = observation(pid, 0, code="94531-1", display="SARS-CoV-2 RNA", when=when, **extra)
    del found["valueQuantity"]
    found["valueCodeableConcept"] = {"coding": [
        {"system": "http://snomed.info/sct", "code": "260373001" if result == "Detected"
         else "260415000", "display": result}]}
    return found


def test_a_coded_result_is_the_latest_category_of_its_code(tmp_path):
    path = write_bundle(
        tmp_path / "b.json", coded("p1", "Not detected", "2024-01-01"),
        coded("p1", "Detected", "2024-01-05"), coded("p2", "Not detected", "2024-01-03"),
        patients=("p1", "p2", "p3"))
    table = read_fhir(path)
    assert rows(table)["p1"]["sars_cov_2_rna_94531_1_result"] == "Detected"
    assert table.frame["sars_cov_2_rna_94531_1_result"].tolist()[1] == "Not detected"
    assert pd.isna(table.frame["sars_cov_2_rna_94531_1_result"].tolist()[2])
    # a category: no unit, and not among what permed serve reads by LOINC code and unit
    assert "sars_cov_2_rna_94531_1_result" not in {**table.units, **table.loinc}
    as_of = rows(read_fhir(path, as_of="2024-01-02"))["p1"]
    assert as_of["sars_cov_2_rna_94531_1_result"] == "Not detected"


def test_a_local_code_is_read_apart_from_the_loinc_code(tmp_path):
    local = observation("p1", 100)
    local["code"]["coding"][0]["system"] = "http://hospital.local/labcodes"
    both = observation("p3", 120)
    both["code"]["coding"].insert(0, {"system": "http://hospital.local/labcodes",
                                      "code": "GLU"})
    path = write_bundle(tmp_path / "b.json", local, observation("p2", 180), both,
                        patients=("p1", "p2", "p3"))
    table = read_fhir(path)
    found = rows(table)
    local_column = "glucose_hospital_local_labcodes_2345_7_latest"
    assert found["p1"][local_column] == 100
    # a coding in LOINC is read as LOINC, whatever comes first
    assert [found[p][f"{GLUCOSE}_latest"] for p in ("p2", "p3")] == [180, 120]
    assert table.units[local_column] == "mg/dL"
    assert local_column not in table.loinc
    assert table.warnings == []


def test_values_that_are_not_read_are_counted_per_code(tmp_path):
    text = observation("p2", 0, valueString="105")
    del text["valueQuantity"]
    absent = observation("p1", 0, dataAbsentReason={"text": "not done"})
    del absent["valueQuantity"]
    path = write_bundle(tmp_path / "b.json", text, absent, observation("p2", 90),
                        patients=("p1", "p2"))
    table = read_fhir(path)
    assert table.frame[f"{GLUCOSE}_latest"].tolist()[1] == 90
    assert table.warnings == [
        "2 Observation value(s) are not read: 1 valueString (LOINC 2345-7 1); 1 without a "
        "value (LOINC 2345-7 1). Only quantities and coded results (valueCodeableConcept) become "
        "features; free text is never read, as it may name people"]
