"""FHIR R4 and CDS Hooks with real Synthea bundles: mapping, units, RiskAssessment, cards."""

from __future__ import annotations

import copy
import json

import pytest

from permed.serve._fhir import FhirError, convert, features_from_bundle
from permed.testing import shared_data

SYNTHEA = "synthea_fhir_covid_juvenile"
FEATURES = ["age", "sex", "heart_rate", "resp_rate", "temperature", "spo2", "weight"]


def synthea(name: str = "Bibi254") -> dict:
    folder = shared_data(SYNTHEA)
    (path,) = folder.glob(f"{name}_*.json")
    return json.loads(path.read_text())


def _observation(bundle: dict, loinc: str) -> dict:
    return next(e["resource"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == "Observation"
                and e["resource"]["code"]["coding"][0]["code"] == loinc)


def test_a_synthea_bundle_maps_to_features_with_units_converted(vitals_fhir):
    bundle = synthea()
    found = features_from_bundle(bundle, vitals_fhir, FEATURES)
    temperature = _observation(bundle, "8310-5")["valueQuantity"]
    weight = _observation(bundle, "29463-7")["valueQuantity"]
    assert temperature["code"] == "Cel"
    assert found.values["temperature"] == pytest.approx(temperature["value"] * 9 / 5 + 32)
    assert found.values["weight"] == pytest.approx(weight["value"] / 0.45359237)
    assert found.values["sex"] == "F"
    # born 2009-04-29; the Bundle's latest dated resource is of 2020-05-14 (her latest
    # Observation of 2020-03-06): completed years on that date, as permed ingest fhir computes
    assert found.values["age"] == 11
    assert found.missing == []
    assert found.patient_reference == "Patient/475d72ca-91c7-7211-97e3-f000af33fc04"
    assert len(found.basis) == 6


@pytest.mark.parametrize(("value", "unit", "target", "expected"), [
    (37.0, "Cel", "[degF]", 98.6), (212.0, "[degF]", "Cel", 100.0), (70.0, "kg", "[lb_av]", 154.32),
    (200.0, "mg/dL", "g/L", 2.0), (120.0, "mm[Hg]", "kPa", 15.999), (60.0, "/min", "/s", 1.0),
])
def test_unit_conversion(value, unit, target, expected):
    assert convert(value, unit, target) == pytest.approx(expected, abs=1e-2)


@pytest.mark.parametrize(("unit", "target", "message"), [
    ("degrees", "Cel", "unit 'degrees' is not a UCUM unit permed can convert"),
    ("kg", "Cel", "unit 'kg' measures mass, not temperature ('Cel')"),
    ("mmol/L", "mg/dL", "unit 'mmol/L' measures substance concentration, not mass concentration "
     "('mg/dL')"),
])
def test_unconvertible_units_are_named(unit, target, message):
    import re

    from permed.serve._fhir import UnitError

    with pytest.raises(UnitError, match=f"^{re.escape(message)}$"):
        convert(1.0, unit, target)


def test_riskassessment_from_a_synthea_bundle_is_valid_r4(live):
    from fhir.resources.R4B.riskassessment import RiskAssessment

    bundle = synthea("Hipolito984")
    with live.client("alice", **{"Content-Type": "application/fhir+json"}) as client:
        response = client.post("/fhir/RiskAssessment/$evaluate", params={"model": "vitals"},
                               content=json.dumps(bundle))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    resource = response.json()
    RiskAssessment.model_validate(resource)  # raises on any R4 violation
    assert resource["status"] == "final"
    assert resource["subject"] == {"reference": "Patient/6b9c211c-2c38-3955-43a0-4d285c714fab"}
    assert resource["method"]["coding"][0]["code"] == "vitals"
    observations = {e["resource"]["id"] for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "Observation"
                    and "valueQuantity" in e["resource"]}
    references = {b["reference"] for b in resource["basis"]}
    assert {f"Observation/{o}" for o in observations} <= references
    percents = [p["probabilityDecimal"] for p in resource["prediction"]]
    assert [p["outcome"]["text"] for p in resource["prediction"]] == ["admitted = 0",
                                                                       "admitted = 1"]
    assert sum(percents) == pytest.approx(100.0, abs=1e-3)  # R4: a percentage, max 100
    assert resource["note"][0]["text"].startswith("admitted = ")
    assert resource["note"][-1]["text"].startswith("top factors: ")


def test_an_unknown_unit_gets_a_422_naming_it(live):
    bundle = copy.deepcopy(synthea())
    observation = _observation(bundle, "8310-5")
    observation["valueQuantity"]["code"] = observation["valueQuantity"]["unit"] = "degrees"
    with live.client("alice") as client:
        response = client.post("/fhir/RiskAssessment/$evaluate", params={"model": "vitals"},
                               json=bundle)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    reference = f"Observation/{observation['id']} (LOINC 8310-5)"
    assert error == {
        "field": reference, "expected": "a UCUM unit convertible to '[degF]'",
        "received": "degrees",
        "message": f"{reference} for feature 'temperature' is in unit 'degrees': unit 'degrees' "
                   "is not a UCUM unit permed can convert; send it in '[degF]' or a unit "
                   "convertible to it"}


@pytest.mark.parametrize(("model", "body", "detail"), [
    ("vitals", {"resourceType": "Patient"},
     "the FHIR Bundle cannot be mapped to the model: the request body must be a FHIR Bundle "
     "(resourceType 'Bundle')"),
    ("vitals", {"resourceType": "Bundle", "entry": []},
     "the FHIR Bundle cannot be mapped to the model: the Bundle holds 0 Patient resources; "
     "send one patient's Bundle"),
    ("bc", {"resourceType": "Bundle", "entry": []}, "1 field(s) cannot be used: see errors"),
])
def test_bad_bundles_are_422(live, model, body, detail):
    with live.client("alice") as client:
        response = client.post("/fhir/RiskAssessment/$evaluate", params={"model": model},
                               json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == detail


def test_a_bad_mapping_value_is_refused_with_the_code(vitals_fhir):
    bundle = copy.deepcopy(synthea())
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    patient["gender"] = "unknown"
    with pytest.raises(FhirError, match=r"^Patient.gender has no code for feature 'sex' in "
                       r"the study's \[fhir\] map \(male, female\): send one of them$"):
        features_from_bundle(bundle, vitals_fhir, FEATURES)


def test_cds_hooks_discovery_and_patient_view_card(live):
    bundle = synthea("Pablo44")
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    observations = {"resourceType": "Bundle", "type": "searchset",
                    "entry": [e for e in bundle["entry"]
                              if e["resource"]["resourceType"] == "Observation"]}
    with live.client() as client:
        discovery = client.get("/cds-services").json()
    (service,) = discovery["services"]
    assert service["id"] == "permed-vitals"
    assert service["hook"] == "patient-view"
    assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert "http://loinc.org|8310-5" in service["prefetch"]["observations"]
    hook = {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"patientId": patient["id"], "userId": "Practitioner/1"},
            "prefetch": {"patient": patient, "observations": observations}}
    with live.client("alice") as client:
        cards = client.post("/cds-services/permed-vitals", json=hook).json()["cards"]
        empty = client.post("/cds-services/permed-vitals",
                            json={**hook, "prefetch": None}).json()
        unmapped = client.post("/cds-services/permed-vitals", json={
            **hook, "prefetch": {"patient": {"resourceType": "Patient", "id": "x"}}}).json()
        unknown = client.post("/cds-services/permed-bc", json=hook)
    (card,) = cards
    assert len(card["summary"]) < 140
    assert card["summary"].startswith("vitals: admitted = ")
    assert card["indicator"] in ("info", "warning", "critical")
    assert card["source"]["label"].startswith("permed vitals (version ")
    assert "**Top factors:**" in card["detail"]
    assert empty == {"cards": []}
    assert unmapped == {"cards": []}
    assert unknown.status_code == 404


# ---- malformed and partial input: every problem is a 422 that names the resource --------

LOINC = "http://loinc.org"


def small_bundle(patient: dict | None = None, observation: dict | None = None) -> dict:
    """A Patient (entry 0) and a temperature Observation (entry 1) dated 2020-03-06."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p1", "resource": {
            "resourceType": "Patient", "id": "p1", "gender": "female",
            "birthDate": "2009-04-29", **(patient or {})}},
        {"resource": {"resourceType": "Observation", "id": "t1", "status": "final",
                      "effectiveDateTime": "2020-03-06T10:00:00Z",
                      "code": {"coding": [{"system": LOINC, "code": "8310-5"}]},
                      "valueQuantity": {"value": 38.5, "code": "Cel"}, **(observation or {})}}]}


def evaluate(live, bundle: dict | str):
    content = bundle if isinstance(bundle, str) else json.dumps(bundle)
    with live.client("alice", **{"Content-Type": "application/fhir+json"}) as client:
        return client.post("/fhir/RiskAssessment/$evaluate", params={"model": "vitals"},
                           content=content)


CONCEPT = "a CodeableConcept: an object with a 'coding' list of {system, code} objects"
DATE = "a FHIR date string YYYY, YYYY-MM or YYYY-MM-DD"


@pytest.mark.parametrize(("patient", "observation", "field", "expected", "received", "what"), [
    # a number is not read as nanoseconds since 1970 (it gave a wrong age)
    ({"birthDate": 19600101}, None, "Bundle.entry[0].resource.birthDate", DATE, "a number",
     "Patient/p1 (Bundle.entry[0]): Patient.birthDate must be " + DATE + ", found a number"),
    ({"birthDate": "1960-02-30"}, None, "Bundle.entry[0].resource.birthDate", DATE,
     "text", "Patient/p1 (Bundle.entry[0]): Patient.birthDate must be " + DATE
     + ", found text not of that form"),
    ({"gender": ["female"]}, None, "Bundle.entry[0].resource.gender",
     "a code string (male, female, other, unknown)", "a list",
     "Patient/p1 (Bundle.entry[0]): Patient.gender must be a code string (male, female, other, "
     "unknown), found a list"),
    (None, {"code": "8310-5"}, "Bundle.entry[1].resource.code", CONCEPT, "text",
     "Observation/t1 (Bundle.entry[1]): Observation.code must be " + CONCEPT
     + ", found text not of that form"),
    (None, {"code": {"coding": "x"}}, "Bundle.entry[1].resource.code.coding",
     "a list of Coding objects ({system, code})", "text",
     "Observation/t1 (Bundle.entry[1]): Observation.code.coding must be a list of Coding "
     "objects ({system, code}), found text not of that form"),
    (None, {"component": [{"code": {"coding": [7]}}]},
     "Bundle.entry[1].resource.component[0].code.coding[0]", "a Coding object ({system, code})",
     "a number", "Observation/t1 (Bundle.entry[1]): Observation.component[0].code.coding[0] "
     "must be a Coding object ({system, code}), found a number"),
    (None, {"valueQuantity": 38.5}, "Bundle.entry[1].resource.valueQuantity",
     "a Quantity: an object with a numeric value and a UCUM code", "a number",
     "Observation/t1 (Bundle.entry[1]): Observation.valueQuantity must be a Quantity: an object "
     "with a numeric value and a UCUM code, found a number"),
    (None, {"effectiveDateTime": 20200306}, "Bundle.entry[1].resource.effectiveDateTime",
     "a FHIR dateTime string (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz)",
     "a number", "Observation/t1 (Bundle.entry[1]): Observation.effectiveDateTime must be a "
     "FHIR dateTime string (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz), found a "
     "number"),
])
def test_a_malformed_resource_is_a_422_naming_it(live, patient, observation, field, expected,
                                                  received, what):
    response = evaluate(live, small_bundle(patient, observation))
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": f"the FHIR Bundle cannot be mapped to the model: {what}",
        "errors": [{"field": field, "expected": expected, "received": received,
                    "message": what}]}


SSN = "SSN 123-45-6789"


@pytest.mark.parametrize(("patient", "observation", "field"), [
    ({"birthDate": SSN}, None, "Bundle.entry[0].resource.birthDate"),
    ({"gender": SSN}, None, "Patient.gender"),  # a code the study's map does not have
    (None, {"code": SSN}, "Bundle.entry[1].resource.code"),
    (None, {"valueQuantity": {"value": SSN, "code": "Cel"}},
     "Bundle.entry[1].resource.valueQuantity.value"),
])
def test_a_rejected_bundle_value_never_comes_back(live, patient, observation, field):
    response = evaluate(live, small_bundle(patient, observation))
    assert response.status_code == 422, response.text
    assert "123-45-6789" not in response.text
    assert "SSN" not in response.text
    (error,) = response.json()["errors"]
    assert (error["field"], error["received"]) == (field, "text")


def test_a_non_finite_value_is_a_422_not_a_500(live):
    text = json.dumps(small_bundle()).replace("38.5", "Infinity")
    response = evaluate(live, text)
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error == {
        "field": "Bundle.entry[1].resource.valueQuantity.value", "expected": "a finite number",
        "received": "a number",
        "message": "Observation/t1 (Bundle.entry[1]): Observation.valueQuantity.value must be "
                   "a finite number, found a number"}


def test_every_malformed_entry_is_named_at_once(live):
    bundle = small_bundle({"birthDate": 1960}, {"code": "8310-5"})
    bundle["entry"] += ["x", {"resource": [1]}, {"resource": {"id": "y"}}]
    response = evaluate(live, bundle)
    assert response.status_code == 422
    assert [(e["field"], e["received"]) for e in response.json()["errors"]] == [
        ("Bundle.entry[0].resource.birthDate", "a number"),
        ("Bundle.entry[1].resource.code", "text"),
        ("Bundle.entry[2]", "text"),
        ("Bundle.entry[3].resource", "a list"),
        ("Bundle.entry[4].resource.resourceType", None)]


@pytest.mark.parametrize(("birth", "age", "day"), [
    ("2009", 10, "2009-07-01"),     # the middle of the year: not yet 11 on 2020-03-06
    ("2009-02", 11, "2009-02-15"),  # the middle of the month
    ("2020", 0, "2020-03-06"),      # born this year, the middle still ahead: age 0
])
def test_a_partial_birth_date_counts_from_the_middle_of_its_period(vitals_fhir, birth, age,
                                                                   day):
    found = features_from_bundle(small_bundle({"birthDate": birth}), vitals_fhir, FEATURES)
    assert found.values["age"] == age
    assert found.notes == [
        f"age {age} from the partial Patient.birthDate '{birth}': the birthday is taken as "
        f"{day}, the middle of the period, so the age may be one year off"]
    full = features_from_bundle(small_bundle({"birthDate": "2009-04-29"}), vitals_fhir, FEATURES)
    assert full.values["age"] == 10
    assert full.notes == []


def _patient_view(bundle: dict) -> dict:
    """A CDS Hooks patient-view request whose prefetch holds the small bundle's resources."""
    patient, observation = (e["resource"] for e in bundle["entry"])
    return {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"patientId": "p1"}, "prefetch": {"patient": patient, "observations": {
                "resourceType": "Bundle", "type": "searchset",
                "entry": [{"resource": observation}]}}}


def test_a_year_only_birth_date_is_answered_and_noted_on_both_routes(live):
    from fhir.resources.R4B.riskassessment import RiskAssessment

    bundle = small_bundle({"birthDate": "2009"})
    response = evaluate(live, bundle)
    assert response.status_code == 200, response.text
    resource = response.json()
    RiskAssessment.model_validate(resource)
    note = ("age 10 from the partial Patient.birthDate '2009': the birthday is taken as "
            "2009-07-01, the middle of the period, so the age may be one year off")
    assert resource["note"][1] == {"text": note}
    hook = _patient_view(bundle)
    with live.client("alice") as client:
        cards = client.post("/cds-services/permed-vitals", json=hook)
    assert cards.status_code == 200, cards.text
    (card,) = cards.json()["cards"]
    assert f"*Read from the record:* {note}" in card["detail"].splitlines()


@pytest.mark.parametrize(("patient", "on", "basis"), [
    ({"birthDate": "2027-03-01"}, "2020-03-06", "the date of the Bundle's latest dated resource"),
    ({"birthDate": "2021"}, "2020-03-06", "the date of the Bundle's latest dated resource"),
    ({"birthDate": "2010-01-01", "deceasedDateTime": "2009-12-31T00:00:00Z"}, "2009-12-31",
     "the patient's deceasedDateTime"),
])
def test_a_birth_date_after_the_record_is_a_422(live, patient, on, basis):
    response = evaluate(live, small_bundle(patient))
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    # neither date (the birth, the record's) comes back: a patient's dates are identifiers
    assert error == {
        "field": "Patient.birthDate", "expected": f"a date on or before {basis}",
        "received": "text",
        "message": f"Patient.birthDate is after the date age is computed on ({basis}): a "
                   "patient is not born after their record; check Patient.birthDate and the "
                   "dates of the Bundle"}
    assert patient["birthDate"] not in response.text
    assert on not in response.text


def test_a_value_out_of_range_is_named_by_its_observation(live, vitals_fhir):
    from permed.serve._fhir import name_sources
    from permed.serve._validation import PatientError, check_patient

    schema = live.app.state.models["vitals"].schema
    found = features_from_bundle(small_bundle(None, {"valueQuantity": {"value": 140,
                                                                       "code": "[degF]"}}),
                                 vitals_fhir, FEATURES)
    with pytest.raises(PatientError) as caught:
        check_patient(schema, found.values, "patient.")
    (error,) = name_sources(caught.value, found).errors
    assert error.field == "Observation/t1 (LOINC 8310-5)"
    assert error.message == ("Observation/t1 (LOINC 8310-5) for feature 'temperature' is "
                             "above its valid range [86, 113] [degF]: check the value and its "
                             "unit")


def test_a_value_out_of_range_is_named_by_its_observation_on_both_routes(live):
    bundle = small_bundle(None, {"valueQuantity": {"value": 140, "code": "[degF]"}})
    hook = _patient_view(bundle)
    with live.client("alice") as client:
        card = client.post("/cds-services/permed-vitals", json=hook)
    for response in (evaluate(live, bundle), card):
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert error["field"] == "Observation/t1 (LOINC 8310-5)"
        assert error["message"].startswith("Observation/t1 (LOINC 8310-5) for feature "
                                           "'temperature' is above its valid range")


@pytest.mark.parametrize(("full_url", "subject"), [
    ("urn:uuid:p1", {"reference": "urn:uuid:p1"}),
    (None, {"display": "the Patient of the Bundle (it has no id or fullUrl to refer to)"}),
])
def test_a_patient_without_id_is_referred_to_by_what_there_is(live, full_url, subject):
    from fhir.resources.R4B.riskassessment import RiskAssessment

    bundle = small_bundle({"id": None})
    del bundle["entry"][0]["resource"]["id"]
    bundle["entry"][0]["fullUrl"] = full_url
    if full_url is None:
        del bundle["entry"][0]["fullUrl"]
    response = evaluate(live, bundle)
    assert response.status_code == 200, response.text
    resource = response.json()
    RiskAssessment.model_validate(resource)
    assert resource["subject"] == subject
    assert resource["basis"] == ([{"reference": full_url}] if full_url else []) + [
        {"reference": "Observation/t1"}]
