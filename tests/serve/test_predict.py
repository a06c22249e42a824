"""Predict, explain and models endpoints against a live server: whole answers, exact errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permed.bundle import load_bundle


def test_single_patient_answer_matches_the_library(live, runs, bc_patients):
    with live.client("alice") as client:
        response = client.post("/v1/models/bc/predict", json={"patient": bc_patients[0]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["name"] == "bc"
    assert body["model"]["task"] == "diagnose"
    assert body["model"]["engine"] == "onnx"
    assert len(body["model"]["version"]) == 12
    (result,) = body["results"]
    assert set(result) == {"prediction_id", "summary", "answer", "uncertainty", "flags",
                           "explanation", "explanation_note", "survival_curve"}
    model, _ = load_bundle(runs["bc"])
    expected = model.predict_frame(pd.DataFrame([bc_patients[0]])).iloc[0]
    for column, value in expected.items():
        if column.startswith("prob_"):
            assert result["answer"][column] == pytest.approx(value, abs=1e-5)
        else:
            assert result["answer"][column] == value
    assert result["summary"].startswith(f"diagnosis = {expected['predicted']} (probability ")
    assert result["uncertainty"]["prediction_set"] == expected["prediction_set"].split("|")
    assert result["uncertainty"]["coverage"] == 0.95
    assert result["flags"]["missing_features"] == []


def test_explanation_is_additive_and_matches_permed_explain(live, runs, bc_patients):
    with live.client("alice") as client:
        body = client.post("/v1/models/bc/explain", json={"patient": bc_patients[1],
                                                          "top": 5}).json()
    explanation = body["results"][0]["explanation"]
    assert explanation["method"] == "tree"
    assert len(explanation["factors"]) == 5
    total = explanation["base_value"] + sum(f["contribution"] for f in explanation["factors"])
    assert total + explanation["other"] == pytest.approx(explanation["value"], abs=1e-6)
    model, _ = load_bundle(runs["bc"])
    exact = model.explain(pd.DataFrame([bc_patients[1]]))
    by_feature = dict(zip(exact.features, exact.values[0, :, 0], strict=True))
    for factor in explanation["factors"]:
        assert factor["contribution"] == pytest.approx(by_feature[factor["feature"]], abs=1e-6)


def test_batch_answers_each_patient_and_logs_each(live, bc_patients):
    with live.client("alice") as client:
        body = client.post("/v1/models/bc/predict",
                           json={"patients": bc_patients, "explain": False}).json()
        ids = [r["prediction_id"] for r in body["results"]]
        mine = client.get("/v1/predictions", params={"limit": 500}).json()
    assert len(ids) == len(bc_patients) == len(set(ids))
    assert all(r["explanation"] is None for r in body["results"])
    assert set(ids) <= {entry["id"] for entry in mine}
    entry = next(e for e in mine if e["id"] == ids[0])
    assert entry["input_digest"].startswith("hmac-sha256:")
    assert "mean radius" not in entry["answer"]  # inputs are never stored


def test_each_bad_field_gets_one_entry(live, bc_patients):
    patient = dict(bc_patients[0], **{"mean radius": "large", "tumour size": 3})
    with live.client("alice") as client:
        response = client.post("/v1/models/bc/predict", json={"patient": patient})
    assert response.status_code == 422
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert set(errors) == {"patient.mean radius", "patient.tumour size"}
    assert errors["patient.mean radius"]["received"] == "large"
    assert errors["patient.mean radius"]["expected"] == (
        "a number or null (training range 6.981 to 28.11)")
    assert errors["patient.mean radius"]["message"] == (
        "field 'patient.mean radius' must be a number (or null when unknown)")
    assert errors["patient.tumour size"]["message"].startswith(
        "field 'patient.tumour size' is not a feature of this model: remove it (features: ")


def test_valid_range_unit_and_unseen_category_are_refused(live):
    patient = {"age": 7, "sex": "X", "heart_rate": 100, "resp_rate": 20, "temperature": 37.0,
               "spo2": 97, "weight": 50}
    with live.client("alice") as client:
        response = client.post("/v1/models/vitals/predict", json={"patient": patient})
    assert response.status_code == 422
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert set(errors) == {"patient.sex", "patient.temperature"}
    assert errors["patient.temperature"]["message"] == (
        "field 'patient.temperature' is 37 [degF], outside its valid range [86, 113] [degF]: "
        "check the value and its unit")
    assert errors["patient.temperature"]["expected"].startswith(
        "a number or null in [86, 113] [degF] (training range ")
    assert errors["patient.sex"]["message"] == (
        "field 'patient.sex' is 'X', a value the model never saw; expected one of 'F', 'M' "
        "(or null when unknown)")


def test_missing_fields_are_imputed_and_listed(live):
    with live.client("alice") as client:
        body = client.post("/v1/models/vitals/predict",
                           json={"patient": {"age": 9, "temperature": 102.5}}).json()
    flags = body["results"][0]["flags"]
    assert flags["missing_features"] == ["sex", "heart_rate", "resp_rate", "spo2", "weight"]
    assert body["model"]["engine"] == "onnx"


@pytest.mark.parametrize(("body", "status", "detail"), [
    ({"patient": {}, "patients": [{}]}, 422, "1 field(s) cannot be used: see errors"),
    ({}, 422, "1 field(s) cannot be used: see errors"),
    ({"patient": {}, "dose": 3}, 422, "the request does not match the API: see errors"),
    ({"patients": [{}] * 21}, 413, "21 patients in one request; the limit is 20: split the batch"),
])
def test_request_shape_errors(live, body, status, detail):
    with live.client("alice") as client:
        response = client.post("/v1/models/bc/predict", json=body)
    assert response.status_code == status
    assert response.json()["detail"] == detail


def test_a_body_that_is_not_json_or_not_the_api_names_the_problem(live):
    with live.client("alice") as client:
        broken = client.post("/v1/models/bc/predict", content=b'{"patient": ',
                             headers={"content-type": "application/json"})
        unknown = client.post("/v1/models/bc/predict", json={"patient": {}, "dose": 3})
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["field"] == "body"
    assert broken.json()["errors"][0]["expected"].startswith("Invalid JSON")
    assert unknown.json()["errors"] == [{
        "field": "dose", "expected": "Extra inputs are not permitted", "received": 3,
        "message": "body.dose: Extra inputs are not permitted"}]


@pytest.mark.parametrize("body", [
    {"patient": 0},
    {"patients": 2, "explain": False},
    {"patient": 1, "explain_scale": "log-odds"},
])
def test_answers_hold_to_the_documented_schema(live, bc_patients, body):
    # the predict route writes its answer without FastAPI's response-model pass: every field of
    # PredictResponse, and nothing else, must be there
    from permed.serve._schemas import PredictResponse

    if "patient" in body:
        body = {**body, "patient": bc_patients[body["patient"]]}
    else:
        body = {**body, "patients": bc_patients[:body["patients"]]}
    with live.client("alice") as client:
        answer = client.post("/v1/models/bc/predict", json=body).json()
    assert PredictResponse.model_validate(answer).model_dump(mode="json") == answer


def test_body_over_the_limit_is_413(live):
    with live.client("alice") as client:
        response = client.post("/v1/models/bc/predict", content=b"{" + b" " * 300_000 + b"}",
                               headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["detail"] == ("request body larger than 200000 bytes: send fewer "
                                         "patients per request")


def test_unknown_model_is_404_with_the_names(live):
    with live.client("alice") as client:
        response = client.post("/v1/models/heart/predict", json={"patient": {}})
    assert response.status_code == 404
    assert response.json()["detail"] == "no model 'heart' is served here; models: bc, vitals"


def test_models_schema_card_metrics_and_report(live, runs):
    with live.client("sam") as client:
        models = client.get("/v1/models").json()
        schema = client.get("/v1/models/vitals/schema").json()
        card = client.get("/v1/models/bc/card").json()
        metrics = client.get("/v1/models/bc/metrics").json()
        ticket = client.post("/v1/models/bc/report-ticket").json()
        report = client.get(ticket["url"])
    assert [m["name"] for m in models] == ["bc", "vitals"]
    temperature = next(f for f in schema["features"] if f["name"] == "temperature")
    assert temperature["unit"] == "[degF]"
    assert temperature["valid_range"] == [86.0, 113.0]
    assert temperature["fhir"] == {"loinc": "8310-5", "unit": "[degF]"}
    assert card["selected_model"] == "lightgbm"
    assert card["test"]["auroc"]["value"] > 0.95
    assert metrics["task"] == "diagnose"
    assert report.status_code == 200
    assert report.text == (runs["bc"] / "report.html").read_text()
    assert "unsafe-inline" in report.headers["content-security-policy"]


def test_native_engine_gives_the_same_answer(runs, bc_patients, tmp_path):
    from permed.serve import Settings
    from permed.serve._registry import load_model

    onnx = load_model("bc", runs["bc"])
    native = load_model("bc", runs["bc"], onnx=False)
    typed = [{k: float(v) for k, v in p.items()} for p in bc_patients]
    fast, slow = onnx.scorer.score(typed), native.scorer.score(typed)
    a, b = fast.answers, slow.answers
    assert onnx.scorer.engine == "onnx"
    assert native.scorer.engine == "native"
    assert fast.transformed is not None
    assert fast.table is None
    assert slow.transformed is None
    assert len(slow.table) == len(typed)
    assert fast.curves is None
    assert slow.curves is None
    for left, right in zip(a, b, strict=True):
        assert left.keys() == right.keys()
        assert np.allclose([left["prob_malignant"]], [right["prob_malignant"]], atol=1e-5)
        assert {k: v for k, v in left.items() if not k.startswith("prob_")} == \
            {k: v for k, v in right.items() if not k.startswith("prob_")}
    assert Settings().rate_limit == 600
