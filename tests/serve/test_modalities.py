"""Runs of other modalities behind the live service: clinical notes and X-ray images."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest

from permed.bundle import load_bundle
from permed.ingest.multimodal import multimodal_cohort
from permed.study import Study
from permed.testing import shared_data
from permed.workflow import TrainConfig, train_run

pytest.importorskip("monai")


@pytest.fixture(scope="module")
def modality_service(tmp_path_factory, start_service):
    from permed.ingest.images import export_npz_images
    from permed.serve import Settings

    tmp = tmp_path_factory.mktemp("modalities")
    frame = pd.read_csv(shared_data("clinical_text/Symptom2Disease.csv"))
    chosen = sorted(frame["label"].unique())[:4]
    notes = (frame[frame["label"].isin(chosen)].groupby("label").head(25)
             .rename(columns={"label": "disease"})[["disease", "text"]])
    notes.to_csv(tmp / "notes.csv", index=False)
    notes_run = train_run(tmp / "notes.csv", Study(task="diagnose", target="disease",
                                                   notes=["text"]),
                          TrainConfig(models=["logistic"], cv=3, n_boot=100), tmp / "notes")
    xrays = tmp / "xrays"
    export_npz_images(shared_data("medmnist/pneumoniamnist.npz"), xrays, limit=40)
    image_run = train_run(xrays, Study(task="diagnose", target="label", images="image_path"),
                          TrainConfig(models=["cnn"], n_boot=100), tmp / "cxr")
    cohort = multimodal_cohort(120, tmp / "mm", seed=0,
                               npz=shared_data("medmnist/pneumoniamnist.npz"))
    fusion_run = train_run(cohort, Study.from_toml(cohort.parent / "multimodal.toml"),
                           TrainConfig(models=["fusion"], n_boot=100), tmp / "fusion")
    runs = {"notes": notes_run, "cxr": image_run, "fusion": fusion_run}
    service = start_service(Settings(runs=runs, data_dir=tmp,
                                      database_url=None, rate_limit=0, max_batch=5,
                                      max_body_bytes=200_000), {"alice": "clinician"})
    yield service, notes, xrays
    service.stop()


@pytest.fixture(scope="module")
def fusion_patients(modality_service):
    service, _, xrays = modality_service
    cohort = xrays.parent / "mm" / "cohort.parquet"
    return pd.read_parquet(cohort), cohort.parent


def _data_url(path, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(path.read_bytes()).decode()}"


def test_a_note_is_read_and_answered(modality_service):
    service, notes, _ = modality_service
    row = notes.iloc[0]
    with service.client("alice") as client:
        response = client.post("/v1/models/notes/predict", json={"patient": {"text": row["text"]}})
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["answer"]["predicted"] in set(notes["disease"])
    probabilities = [v for k, v in result["answer"].items() if k.startswith("prob_")]
    assert len(probabilities) == 4
    assert abs(sum(probabilities) - 1) < 1e-6


def test_an_image_sent_inline_gets_the_answer_of_the_same_file_scored_in_batch(
        modality_service):
    service, _, xrays = modality_service
    table = pd.read_csv(xrays / "labels.csv")
    image = xrays / table["image_path"][0]
    with service.client("alice") as client:
        response = client.post("/v1/models/cxr/predict",
                               json={"patient": {"image_path": _data_url(image)}})
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    answer = result["answer"]
    assert answer["image_path"] == f"inline image/png, {image.stat().st_size} bytes"
    assert answer["image_error"] == ""
    model, _ = load_bundle(xrays.parent / "cxr")
    expected = model.predict_frame(pd.DataFrame({"image_path": [str(image)]}))
    assert abs(answer["prob_1"] - expected["prob_1"][0]) < 1e-6


@pytest.mark.parametrize(("value", "why"), [
    ("/etc/passwd", "the service never opens files by path"),
    ("data:image/png;base64,@@@", "not valid base64"),
    ("data:text/plain;base64,aGVsbG8=", "media type 'text/plain'"),
])
def test_an_image_field_that_is_not_an_inline_image_is_refused(modality_service, value, why):
    service, _, _ = modality_service
    with service.client("alice") as client:
        response = client.post("/v1/models/cxr/predict", json={"patient": {"image_path": value}})
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "patient.image_path"
    assert why in error["message"]


def test_the_web_page_sends_a_note_and_an_uploaded_image(modality_service, chromium_page):
    service, notes, xrays = modality_service
    expect = pytest.importorskip("playwright.sync_api").expect
    image = xrays / pd.read_csv(xrays / "labels.csv")["image_path"][0]
    with chromium_page(service.url + "/") as page:
        page.fill("#api-key", service.keys["alice"])
        page.click("#sign-in")
        page.wait_for_selector("#workspace", state="visible")
        page.select_option("#model", "notes")
        page.wait_for_selector("textarea#f-text")
        page.fill("#f-text", notes["text"].iloc[0])
        page.click("#predict")
        page.wait_for_selector("#result", state="visible")
        assert page.text_content("#result-summary").startswith("disease = ")

        page.select_option("#model", "cxr")
        page.wait_for_selector("input#f-image_path[type=file]")
        page.set_input_files("#f-image_path", str(image))
        page.wait_for_selector("#f-image_path[data-url^='data:image/png;base64,']",
                               state="attached")
        page.click("#predict")
        expect(page.locator("#result-summary")).to_have_text(re.compile("^label = "))
        assert page.problems == []


def test_a_fusion_model_answers_with_or_without_an_image(modality_service, fusion_patients):
    service, _, _ = modality_service
    cohort, folder = fusion_patients
    row = cohort[(cohort["image_path"] != "") & (cohort["note"] != "")].iloc[0]
    patient = row.drop(["patient_id", "pneumonia"]).to_dict()
    patient["image_path"] = _data_url(folder / row["image_path"])
    without_image = {**patient, "image_path": None}
    with service.client("alice") as client:
        answers = [client.post("/v1/models/fusion/predict", json={"patient": p})
                   for p in (patient, without_image)]
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    (full,), (partial,) = (a.json()["results"] for a in answers)
    assert full["answer"]["modalities"] == "table+note+image"
    assert partial["answer"]["modalities"] == "table+note"
    for result in (full, partial):
        assert abs(result["answer"]["prob_yes"] + result["answer"]["prob_no"] - 1) < 1e-6
