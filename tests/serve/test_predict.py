"""Predict, explain and models endpoints against a live server: whole answers, exact errors."""

from __future__ import annotations

import json

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
    assert errors["patient.mean radius"]["received"] == "text"
    assert errors["patient.tumour size"]["received"] == "a number"
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
        "field 'patient.temperature' is below its valid range [86, 113] [degF]: check the "
        "value and its unit")
    assert errors["patient.temperature"]["expected"].startswith(
        "a number or null in [86, 113] [degF] (training range ")
    assert errors["patient.sex"]["message"] == (
        "field 'patient.sex' holds a value the model never saw; expected one of 'F', 'M' "
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
    assert broken.json()["errors"][0]["received"] == "a body that is not valid JSON"
    assert unknown.json()["errors"] == [{
        "field": "dose", "expected": "Extra inputs are not permitted", "received": "a number",
        "message": "body.dose: Extra inputs are not permitted: remove it"}]


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


def _audit_entry(live, response):
    """The audit entry of ``response``'s request (found by its request id)."""
    request_id = response.headers["x-request-id"]
    with live.client("ada") as client:
        entries = client.get("/v1/audit", params={"limit": 200}).json()
    (entry,) = [e for e in entries if e["details"]["request_id"] == request_id]
    return entry


def _post(live, body: str, path: str = "/v1/models/bc/predict", **headers: str):
    headers.setdefault("content-type", "application/json")
    with live.client("alice") as client:
        return client.post(path, content=body.encode(), headers=headers)


@pytest.mark.parametrize("value", ["1e400", "-1e400", "Infinity", "NaN", "1" + "0" * 399,
                                   "-" + "9" * 400])
def test_a_number_that_is_not_finite_is_422_and_audited(live, value):
    response = _post(live, '{"patient": {"mean radius": ' + value + "}}")
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": "1 field(s) cannot be used: see errors", "errors": [{
        "field": "patient.mean radius",
        "expected": "a number or null (training range 6.981 to 28.11)", "received": "a number",
        "message": "field 'patient.mean radius' is not a finite number (infinite, NaN, or "
                   "beyond a float's range): send a finite number (or null when unknown)"}]}
    entry = _audit_entry(live, response)
    assert (entry["user"], entry["action"], entry["outcome"]) == (
        "alice", "predict", "failure: 422")


def test_an_unknown_field_with_an_infinite_value_names_the_likely_feature(live):
    response = _post(live, '{"patient": {"mean radiuss": 1e400, "Mean Texture": NaN}}')
    assert response.status_code == 422, response.text
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert errors["patient.mean radiuss"]["received"] == "a number"
    assert errors["patient.mean radiuss"]["message"].startswith(
        "field 'patient.mean radiuss' is not a feature of this model: did you mean "
        "'mean radius'? Otherwise remove it (features: mean radius, mean texture, ")
    assert errors["patient.Mean Texture"]["received"] == "a number"
    assert "did you mean 'mean texture'?" in errors["patient.Mean Texture"]["message"]
    assert _audit_entry(live, response)["outcome"] == "failure: 422"


def test_an_empty_batch_is_422(live):
    response = _post(live, '{"patients": []}')
    assert response.status_code == 422
    assert response.json()["errors"] == [{
        "field": "patients", "expected": "a list of at least one patient", "received": "a list",
        "message": "patients must hold at least one patient: send one or more, or one "
                   "'patient'"}]
    assert _audit_entry(live, response)["outcome"] == "failure: 422"


@pytest.mark.parametrize(("declared", "found"), [
    ("text/plain", "is 'text/plain'"),
    ("application/x-www-form-urlencoded", "is 'application/x-www-form-urlencoded'"),
    (None, "is missing"),
])
def test_a_body_not_sent_as_json_is_415(live, bc_patients, declared, found):
    body = json.dumps({"patient": bc_patients[0]})
    headers = {"content-type": declared} if declared else {}
    with live.client("alice") as client:
        response = client.post("/v1/models/bc/predict", content=body.encode(), headers=headers)
    assert response.status_code == 415, response.text
    message = (f"header 'Content-Type' {found}, so the body is not read as JSON: send the "
               "body with the header 'Content-Type: application/json'")
    assert response.json() == {"detail": message, "errors": [{
        "field": "header Content-Type", "expected": "application/json", "received": declared,
        "message": message}]}
    assert _audit_entry(live, response)["outcome"] == "failure: 415"


@pytest.mark.parametrize("declared", ["application/json; charset=utf-8", "application/fhir+json"])
def test_json_media_types_are_read(live, bc_patients, declared):
    response = _post(live, json.dumps({"patient": bc_patients[0], "explain": False}),
                     **{"content-type": declared})
    assert response.status_code == 200, response.text


def test_explain_fhir_and_cds_hooks_refuse_a_body_not_sent_as_json(live, vitals_fhir):
    # the FHIR endpoint takes what predict takes: application/json or application/*+json
    explain = _post(live, '{"patient": {}}', "/v1/models/bc/explain",
                    **{"content-type": "text/plain"})
    fhir = _post(live, '{"resourceType": "Bundle", "type": "collection", "entry": []}',
                 "/fhir/RiskAssessment/$evaluate?model=vitals",
                 **{"content-type": "application/x-www-form-urlencoded"})
    cds = _post(live, '{"hook": "patient-view", "hookInstance": "x"}',
                "/cds-services/permed-vitals", **{"content-type": "text/plain"})
    assert [explain.status_code, fhir.status_code, cds.status_code] == [415, 415, 415]
    assert fhir.json()["errors"][0]["expected"] == "application/fhir+json or application/json"
    assert fhir.json()["detail"] == (
        "header 'Content-Type' is 'application/x-www-form-urlencoded', so the body is not read "
        "as JSON: send the body with the header 'Content-Type: application/fhir+json'")
    assert _audit_entry(live, fhir)["action"] == "evaluate"


def test_the_web_page_sends_json_media_types():
    from importlib import resources

    script = resources.files("permed.serve").joinpath("static/app.js").read_text("utf-8")
    assert 'headers: { "Content-Type": "application/json" },' in script
    assert 'headers: { "Content-Type": "application/fhir+json" }' in script


@pytest.mark.parametrize("explain", ['"yes"', '"true"', "1", '"false"'])
def test_explain_must_be_a_boolean(live, bc_patients, explain):
    response = _post(live, f'{{"patient": {json.dumps(bc_patients[0])}, "explain": {explain}}}')
    assert response.status_code == 422
    assert response.json()["errors"] == [{
        "field": "explain", "expected": "Input should be a valid boolean",
        "received": "a number" if explain == "1" else "text",
        "message": "body.explain: Input should be a valid boolean: correct it (the API's "
                   "schema: GET /openapi.json)"}]
    assert _audit_entry(live, response)["outcome"] == "failure: 422"


SSN = "SSN 123-45-6789"


@pytest.mark.parametrize(("user", "method", "path", "body", "field", "received"), [
    ("alice", "POST", "/v1/models/bc/predict", {"patient": {}, "explain": SSN}, "explain",
     "text"),
    ("alice", "POST", "/v1/models/bc/predict", {"patients": SSN}, "patients", "text"),
    ("alice", "POST", "/v1/models/bc/predict", {"patient": [{"mean radius": 14, "note": SSN}]},
     "patient", "a list"),
    ("alice", "POST", "/v1/models/bc/explain", {"patient": {}, "explain_scale": SSN},
     "explain_scale", "text"),
    ("alice", "POST", "/v1/models/bc/predict", '{"patient": {"name": "' + SSN + '", ',
     "body", "a body that is not valid JSON"),
    ("alice", "GET", f"/v1/predictions?limit={SSN}", None, "query.limit", "text"),
    ("ada", "POST", "/v1/users", {"name": SSN, "role": "clinician"}, "name", "text"),
])
def test_a_rejected_request_never_gets_its_values_back(live, user, method, path, body, field,
                                                       received):
    # an error body lands in client logs, screens and proxies: a value sent in the wrong
    # place (an SSN, a name, a whole patient) must not come back in it, even cut short
    with live.client(user) as client:
        if isinstance(body, str):
            response = client.request(method, path, content=body.encode(),
                                      headers={"content-type": "application/json"})
        else:
            response = client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert "123-45-6789" not in response.text
    assert "SSN" not in response.text
    errors = response.json()["errors"]
    assert [(e["field"], e["received"]) for e in errors] == [(field, received)]
    assert errors[0]["message"].startswith(field if "." in field else f"body.{field}"
                                           if field != "body" else "body")
    assert errors[0]["expected"]


@pytest.mark.parametrize(("model", "body", "field", "received"), [
    ("bc", {"patient": {"mean radius": SSN}}, "patient.mean radius", "text"),
    ("bc", {"patient": {"guardian": SSN}}, "patient.guardian", "text"),  # not a feature
    ("bc", {"patients": [{}, {"mean radius": [SSN]}]}, "patients[1].mean radius", "a list"),
    ("vitals", {"patient": {"sex": SSN}}, "patient.sex", "text"),  # a category never seen
    ("vitals", {"patient": {"temperature": 12345.6789}}, "patient.temperature", "a number"),
])
def test_a_rejected_patient_value_never_comes_back(live, model, body, field, received):
    # the checks of the patient's own fields answer 422s too: they name the field, what is
    # expected and the fix, and the kind of value received, never the value
    with live.client("alice") as client:
        responses = [client.post(f"/v1/models/{model}/{route}", json=body)
                     for route in ("predict", "explain") if "patients" not in body
                     or route == "predict"]
    for response in responses:
        assert response.status_code == 422, response.text
        for secret in ("123-45-6789", "SSN", "12345"):
            assert secret not in response.text
        (error,) = response.json()["errors"]
        assert (error["field"], error["received"]) == (field, received)
        assert error["message"].startswith(f"field '{field}' ")
        assert error["expected"]


@pytest.mark.parametrize(("value", "side"), [
    (113.0000001, "above"), (85.99999999999999, "below"), (1e308, "above"),
    (-1.5e-300, "below"), (114, "above"),
])
def test_a_value_outside_the_valid_range_says_which_side_not_the_value(live, value, side):
    with live.client("alice") as client:
        response = client.post("/v1/models/vitals/predict",
                               json={"patient": {"temperature": value}})
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["message"] == (
        f"field 'patient.temperature' is {side} its valid range [86, 113] [degF]: check the "
        "value and its unit")
    assert error["received"] == "a number"


def test_a_field_given_twice_is_422(live, bc_patients):
    patient = json.dumps(bc_patients[0])[:-1] + ', "mean radius": 30}'
    response = _post(live, f'{{"patients": [{json.dumps(bc_patients[1])}, {patient}]}}')
    assert response.status_code == 422
    assert response.json()["errors"] == [{
        "field": "patients[1].mean radius", "expected": "each field once", "received": None,
        "message": "field 'patients[1].mean radius' is given more than once: send it once (a "
                   "JSON parser keeps only the last)"}]
    assert _audit_entry(live, response)["outcome"] == "failure: 422"
    # a string holding '":' sends the body to the exact check, which finds no repeat
    spaced = dict(bc_patients[0], **{"mean radius": None})
    text = json.dumps({"patient": spaced, "explain": False}, separators=(",", " : "))
    assert _post(live, text).status_code == 200


@pytest.fixture(scope="module")
def named(runs, tmp_path_factory, start_service):
    """A service whose model's study names an id column and a sensitive column."""
    from permed.serve import Settings
    from permed.study import Study
    from permed.workflow import TrainConfig, train_run

    tmp = tmp_path_factory.mktemp("named")
    cohort = pd.read_csv(runs["vitals"].parent / "vitals.csv").head(200)
    cohort.insert(0, "mrn", [f"P{i:04d}" for i in range(len(cohort))])
    cohort.to_csv(tmp / "vitals.csv", index=False)
    run = train_run(tmp / "vitals.csv", Study(task="diagnose", target="admitted", id="mrn",
                                               sensitive=["sex"]),
                    TrainConfig(models=["logistic"], cv=3, n_boot=100), tmp / "run")
    service = start_service(Settings(runs={"vitals": run}, data_dir=tmp / "data",
                                     database_url=None, rate_limit=0),
                            {"alice": "clinician", "ada": "admin"})
    yield service
    service.stop()


def test_columns_the_study_named_are_accepted_and_ignored(named):
    patient = {"age": 9, "heart_rate": 100, "resp_rate": 22, "temperature": 101.0,
               "spo2": 95.0, "weight": 70.0}
    with named.client("alice") as client:
        plain = client.post("/v1/models/vitals/predict", json={"patient": patient}).json()
        given = client.post("/v1/models/vitals/predict", json={
            "patient": {**patient, "sex": "F", "admitted": 1}}).json()
        unknown = client.post("/v1/models/vitals/predict", json={
            "patient": {**patient, "sexe": "F"}})
        identified = client.post("/v1/models/vitals/predict", json={
            "patient": {**patient, "mrn": "P0042"}}).json()
        logged = client.get("/v1/predictions").json()
    assert given["results"][0]["answer"] == plain["results"][0]["answer"]
    assert given["results"][0]["flags"]["missing_features"] == []
    # sex was neither scored nor kept: the same input digest, no value in the log
    digests = {e["id"]: e["input_digest"] for e in logged}
    assert digests[given["results"][0]["prediction_id"]] == \
        digests[plain["results"][0]["prediction_id"]]
    assert "sex" not in json.dumps(logged)
    # the id column is passed through to the answer, as permed predict writes it
    assert identified["results"][0]["answer"] == {"mrn": "P0042",
                                                  **plain["results"][0]["answer"]}
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["message"] == (
        "field 'patient.sexe' is not a feature of this model: remove it (features: age, "
        "heart_rate, resp_rate, temperature, spo2, weight)")
    assert _audit_entry(named, unknown)["outcome"] == "failure: 422"
