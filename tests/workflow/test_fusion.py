"""permed train --models fusion on the semi-synthetic table + note + image cohort: ablation,
report section, predict on new patients, and the refusals."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from permed.cli.main import app
from permed.exceptions import DataError, PermedError
from permed.ingest.multimodal import multimodal_cohort
from permed.study import Study
from permed.testing import shared_data
from permed.workflow import TrainConfig, train_run

pytest.importorskip("torch")

MODALITIES = ("table", "note", "image")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mm")
    return multimodal_cohort(200, folder, seed=0,
                             npz=shared_data("medmnist/pneumoniamnist.npz"))


@pytest.fixture(scope="module")
def run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mm"
    result = CliRunner().invoke(app, [
        "train", str(cohort), "--study", str(cohort.parent / "multimodal.toml"), "--models",
        "fusion", "--out", str(out), "--bootstrap", "100", "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def test_the_cohort_is_semi_synthetic_with_missing_modalities(cohort):
    frame = pd.read_parquet(cohort)
    assert list(frame.columns) == ["patient_id", "age", "sex", "smoker", "temperature", "spo2",
                                   "crp", "wbc", "note", "image_path", "pneumonia"]
    assert len(frame) == 200
    assert set(frame["pneumonia"]) == {"yes", "no"}
    assert 10 <= (frame["note"] == "").sum() <= 50
    assert 10 <= (frame["image_path"] == "").sum() <= 50
    for path in frame["image_path"][frame["image_path"] != ""].head(3):
        assert (cohort.parent / path).is_file()


def test_train_writes_the_ablation(run):
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["selected_model"] == "fusion"
    fusion = metrics["fusion"]
    assert set(fusion["modalities"]) == set(MODALITIES)
    assert fusion["modalities"]["image"]["missing"] > 0
    assert fusion["modalities"]["note"]["missing"] > 0
    ablation = fusion["ablation"]
    assert ablation["metric"] == "auroc"
    assert ablation["test_rows"] == metrics["data"]["test_rows"] == 40
    for entry in [ablation["all"], *ablation["without"].values(), *ablation["single"].values()]:
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    assert set(ablation["without"]) == set(ablation["single"]) == set(MODALITIES)
    for m in MODALITIES:
        assert ablation["contribution"][m] == pytest.approx(
            ablation["all"]["value"] - ablation["without"][m]["value"], abs=1e-6)
    assert fusion["onnx"]["file"] is None  # not exported: the joblib bundle scores it


def test_fusion_beats_each_single_modality(run):
    ablation = json.loads((run / "metrics.json").read_text())["fusion"]["ablation"]
    best_single = max(entry["value"] for entry in ablation["single"].values())
    assert ablation["all"]["value"] > best_single + 0.05
    assert ablation["contribution"]["image"] > 0.05  # the strongest modality


def test_the_report_shows_the_modality_contributions(run):
    html = (run / "report.html").read_text()
    section = html[html.index('id="fusion"'):]
    assert "Modality contributions" in section
    assert "fusion without image" in section
    assert "note alone (own model)" in section
    assert "data:image/png;base64," in section


def test_predict_scores_new_patients_with_missing_modalities(run, cohort, tmp_path):
    new = pd.read_parquet(cohort).head(4)
    new.loc[0, "image_path"] = ""
    new.loc[1, "note"] = ""
    new["image_path"] = [str((cohort.parent / p).resolve()) if p else "" for p in
                         new["image_path"]]
    new.drop(columns="pneumonia").to_csv(tmp_path / "new.csv", index=False)
    result = CliRunner().invoke(app, ["predict", str(run), str(tmp_path / "new.csv"), "--out",
                                      str(tmp_path / "scored.csv")])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(tmp_path / "scored.csv", keep_default_na=False)
    assert list(scored["patient_id"]) == list(new["patient_id"])
    assert scored.loc[0, "modalities"] == "table+note"
    assert scored.loc[1, "modalities"] == "table+image"
    assert (scored["prob_yes"] + scored["prob_no"]).round(6).eq(1).all()
    assert set(scored["predicted"]) <= {"yes", "no"}


def test_fusion_needs_two_modalities(cohort, tmp_path):
    frame = pd.read_parquet(cohort).drop(columns=["note", "image_path"])
    frame.to_csv(tmp_path / "table.csv", index=False)
    study = Study(task="diagnose", target="pneumonia", id="patient_id")
    message = ("--models fusion combines at least two modalities among the table (feature "
               "columns), notes (--note COL) and images (--images COL); this study has only "
               "table: add --note or --images, or train another model (e.g. --models logistic)")
    with pytest.raises(PermedError, match=re.escape(message)):
        train_run(tmp_path / "table.csv", study, TrainConfig(models=["fusion"]), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_fusion_trains_alone(cohort, tmp_path):
    study = Study.from_toml(cohort.parent / "multimodal.toml")
    with pytest.raises(PermedError, match=re.escape(
            "--models fusion,logistic: fusion trains one model of its own; use --models fusion "
            "alone")):
        train_run(cohort, study, TrainConfig(models=["fusion", "logistic"]), tmp_path / "r")


def test_the_cohort_generator_refuses_too_many_rows(tmp_path):
    npz = shared_data("medmnist/pneumoniamnist.npz")
    with pytest.raises(DataError, match=re.escape(
            "--rows 100000 must be between 1 and 3166 (the images in the PneumoniaMNIST file)")):
        multimodal_cohort(100_000, tmp_path, npz=npz)


def test_validate_checks_the_cohort_as_fusion_training_will(cohort):
    # patients without an image are an error for an image model, masked for late fusion
    study = str(cohort.parent / "multimodal.toml")
    plain = CliRunner().invoke(app, ["validate", str(cohort), "--study", study])
    fusion = CliRunner().invoke(app, ["validate", str(cohort), "--study", study, "--models",
                                      "fusion"])
    assert plain.exit_code == 1
    assert re.search(r"error: image column 'image_path' has no path in \d+ rows .*a late-fusion "
                     r"model \(--models fusion\) keeps them, their image masked",
                     " ".join(plain.output.split()))
    assert fusion.exit_code == 0, fusion.output
    assert "0 error(s)" in fusion.output
    assert "note=text" in fusion.output


def test_datasets_multimodal_writes_the_cohort_and_its_study(tmp_path):
    npz = shared_data("medmnist/pneumoniamnist.npz")
    result = CliRunner().invoke(app, ["datasets", "multimodal", "--rows", "12", "--out",
                                      str(tmp_path / "mm"), "--npz", str(npz)])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(tmp_path / "mm" / "cohort.parquet")) == 12
    study = Study.from_toml(tmp_path / "mm" / "multimodal.toml")
    assert (study.images, study.notes, study.target) == ("image_path", ["note"], "pneumonia")


def test_the_documented_study_example_is_the_one_the_generator_writes():
    from pathlib import Path

    from permed.ingest.multimodal import MULTIMODAL_STUDY

    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "multimodal.toml"
    assert example.read_text() == MULTIMODAL_STUDY


def test_unknown_network_settings_are_refused():
    from permed.workflow._fusion import _network

    with pytest.raises(PermedError, match=re.escape(
            "image_settings ['architecture'] are not parameters of the fusion model; use some "
            "of auxiliary_weight, batch_size")):
        _network({"table": (3,)}, TrainConfig(image_settings={"architecture": "resnet"}))
