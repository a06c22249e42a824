"""The service is generic over the task: a risk run (GBSG2, Cox) served like a diagnose one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from permed.serve._schemas import PredictResponse
from permed.study import Study
from permed.workflow import TrainConfig, train_run


@pytest.fixture(scope="module")
def risk_service(tmp_path_factory, start_service):
    from permed.ingest import export_dataset
    from permed.serve import Settings

    tmp = tmp_path_factory.mktemp("risk")
    data = export_dataset("gbsg2", tmp / "gbsg2.csv")
    frame = pd.read_csv(data)
    frame.insert(0, "mrn", [f"MRN{70000 + i}" for i in range(len(frame))])
    frame.to_csv(data, index=False)
    run = train_run(data, Study(task="risk", time="time", event="cens", id="mrn"),
                    TrainConfig(models=["coxph"], cv=3, n_boot=100), tmp / "gbsg")
    service = start_service(Settings(runs={"gbsg": run}, data_dir=tmp, database_url=None,
                                     rate_limit=0), {"alice": "clinician"})
    yield service, frame.drop(columns=["time", "cens"])
    service.stop()


def test_a_risk_model_answers_with_its_curve(risk_service):
    service, patients = risk_service
    with service.client("alice") as client:
        body = client.post("/v1/models/gbsg/predict",
                           json={"patient": patients.iloc[0].to_dict()}).json()
    assert body["model"]["task"] == "risk"
    assert body["model"]["engine"] == "native"
    (result,) = body["results"]
    horizons = [k for k in result["answer"] if k.startswith("risk_at_")]
    assert len(horizons) == 3
    assert result["answer"]["risk_group"] in ("low", "intermediate", "high")
    assert result["summary"].startswith(f"{result['answer']['risk_group']} risk; risk by time ")
    survival = np.asarray(result["survival_curve"]["survival"])
    assert np.all((survival >= 0) & (survival <= 1))
    assert np.all(np.diff(survival) <= 1e-12)
    assert result["uncertainty"]["note"] == "this risk model gives no per-patient interval"


def test_the_patient_id_is_answered_but_never_stored(risk_service):
    service, patients = risk_service
    patient = patients.iloc[5].to_dict()
    with service.client("alice") as client:
        (result,) = client.post("/v1/models/gbsg/predict",
                                json={"patient": patient, "explain": False}).json()["results"]
        stored = client.get(f"/v1/predictions/{result['prediction_id']}").json()
    assert result["answer"]["mrn"] == patient["mrn"] == "MRN70005"
    assert "mrn" not in stored["answer"]
    assert stored["answer"]["risk_score"] == pytest.approx(result["answer"]["risk_score"])
    database = Path(service.app.state.storage.url.split("///", 1)[1]).read_bytes()
    assert b"MRN70005" not in database


def test_an_unusual_or_empty_risk_patient_is_referred(risk_service):
    service, patients = risk_service
    unusual = {**patients.iloc[0].to_dict(), "pnodes": 500}
    with service.client("alice") as client:
        results = client.post("/v1/models/gbsg/predict", json={
            "patients": [unusual, {}, patients.iloc[1].to_dict()], "explain": False}
            ).json()["results"]
    flags = [r["flags"] for r in results]
    assert [f["refer_to_clinician"] for f in flags] == [True, True, False]
    assert flags[0]["refer_reason"] == "outside the training range: pnodes"
    assert flags[1]["refer_reason"] == ("8 of 8 features missing (filled in from the "
                                        "development patients)")
    assert results[1]["summary"].endswith("; refer to clinician")


def test_a_run_without_fhir_mapping_is_not_offered_to_cds_hooks(risk_service):
    service, _ = risk_service
    with service.client() as client:
        assert client.get("/cds-services").json() == {"services": []}


def test_a_risk_answer_names_the_factors_of_its_absolute_risk(risk_service):
    service, patients = risk_service
    with service.client("alice") as client:
        body = client.post("/v1/models/gbsg/predict",
                           json={"patient": patients.iloc[3].to_dict(), "explain": True}).json()
    assert PredictResponse.model_validate(body).model_dump(mode="json") == body
    (result,) = body["results"]
    explanation = result["explanation"]
    assert explanation is not None, result.get("explanation_note")
    risks = [v for k, v in result["answer"].items() if k.startswith("risk_at_")]
    assert explanation["scale"] == "risk"
    assert explanation["value"] == pytest.approx(sorted(risks)[len(risks) // 2], abs=1e-6)
    assert explanation["text"].startswith(explanation["factors"][0]["text"])
    factors = explanation["factors"]
    assert factors
    assert {f["feature"] for f in factors} <= set(patients.columns)


def test_native_scoring_hands_its_table_on_unchanged(risk_service):
    """The explainer reuses the table the native path scored: it must be the patients' table
    as built afresh, untouched by ``predict_frame``; the curves come from the same scoring
    and are the model's own."""
    from permed.serve._service import validate_patients

    service, patients = risk_service
    served = service.app.state.models["gbsg"]
    typed, _ = validate_patients(served, patients.head(3).to_dict("records"), batch=True)
    scored = served.scorer.score(typed)
    fresh = served.scorer.frame(typed, numbers=True)
    assert scored.transformed is None
    pd.testing.assert_frame_equal(scored.table, fresh)
    native = served.model.predict_frame(fresh)
    pd.testing.assert_frame_equal(pd.DataFrame(scored.answers)[list(native.columns)], native,
                                  check_dtype=False)
    pd.testing.assert_frame_equal(scored.curves, served.model.survival_curves(fresh))
