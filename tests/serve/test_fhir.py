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
    with pytest.raises(FhirError, match=r"^Patient.gender 'unknown' has no code for feature "
                       r"'sex' in the study's \[fhir\] map \(male, female\)$"):
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
