"""permed train/predict on a folder of X-rays (a PneumoniaMNIST slice), and bad image files."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from permed.cli.main import app
from permed.exceptions import DataError, PermedError
from permed.ingest.images import ImageReadError, export_npz_images
from permed.study import Study
from permed.testing import run_permed, shared_data
from permed.workflow import TrainConfig, train_run

pytest.importorskip("monai")


@pytest.fixture(scope="module")
def xrays(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xrays")
    export_npz_images(shared_data("medmnist/pneumoniamnist.npz"), folder, limit=40)
    return folder


def test_train_report_and_predict_from_a_folder(xrays, tmp_path):
    run = tmp_path / "cxr"
    result = CliRunner().invoke(app, [
        "train", str(xrays), "--task", "diagnose", "--images", "image_path", "--target",
        "label", "--models", "cnn", "--out", str(run), "--bootstrap", "100", "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "diagnose"
    assert metrics["selected_model"] == "cnn"
    assert metrics["data"] | {"development_rows": 32, "test_rows": 8} == metrics["data"]
    assert set(metrics["test"]) >= {"auroc", "accuracy", "brier"}
    assert set(metrics["test"]["auroc"]) == {"value", "ci_low", "ci_high"}
    images = metrics["images"]
    assert images["read"] == 40
    assert images["skipped"] == []
    assert images["size"] == [28, 28]
    assert images["onnx"]["file"] == "model/network.onnx"
    assert images["onnx"]["max_difference_vs_torch"] <= 1e-4
    assert images["saliency"]
    assert all((run / name).read_bytes().startswith(b"\x89PNG")
                                      for name in images["saliency"])
    bundle = json.loads((run / "model" / "bundle.json").read_text())
    assert "network.onnx" in bundle["files"]  # signed with the rest of the bundle
    report = (run / "report.html").read_text()
    assert 'id="images"' in report
    assert "Grad-CAM" in report
    predictions = pd.read_csv(run / "predictions.csv")
    assert list(predictions.columns) == ["row", "image_path", "y_true", "prob_0", "prob_1",
                                         "predicted"]

    scored = tmp_path / "scored.csv"
    result = CliRunner().invoke(app, ["predict", str(run), str(xrays), "--out", str(scored),
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(scored, keep_default_na=False)
    assert len(scored) == 40
    assert (scored["image_error"] == "").all()
    assert ((scored["prob_0"] + scored["prob_1"]) - 1).abs().max() < 1e-6

    # streamed in partitions, from another folder: the table's relative paths still resolve
    streamed = tmp_path / "streamed.parquet"
    result = CliRunner().invoke(app, ["predict", str(run), str(xrays / "labels.csv"), "--out",
                                      str(streamed), "--batch-size", "16", "--quiet"])
    assert result.exit_code == 0, result.output
    streamed = pd.read_parquet(streamed)
    assert (streamed["image_error"].fillna("") == "").all()
    assert (streamed["prob_1"] - scored["prob_1"]).abs().max() < 1e-6

    # external validation of the image model on a labelled table
    result = CliRunner().invoke(app, ["evaluate", str(run), str(xrays / "labels.csv"), "--out",
                                      str(tmp_path / "external"), "--bootstrap", "100",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    external = json.loads((tmp_path / "external" / "metrics.json").read_text())
    assert external["data"]["test_rows"] == 40
    assert external["data"]["unscored_rows"] == 0
    assert 0.0 <= external["test"]["auroc"]["value"] <= 1.0


def _with_a_corrupt_image(xrays, tmp_path):
    frame = pd.read_csv(xrays / "labels.csv")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG this is not an image")
    frame["image_path"] = [str(xrays / p) for p in frame["image_path"]]
    frame.loc[3, "image_path"] = str(tmp_path / "broken.png")
    table = tmp_path / "cohort.csv"
    frame.to_csv(table, index=False)
    return table


def test_a_corrupt_image_stops_training_by_default(xrays, tmp_path):
    table = _with_a_corrupt_image(xrays, tmp_path)
    study = Study(task="diagnose", target="label", images="image_path")
    with pytest.raises(ImageReadError, match=re.escape(
            f"image file '{tmp_path / 'broken.png'}' could not be read as PNG/JPEG: ")):
        train_run(table, study, TrainConfig(n_boot=100, image_settings={"max_epochs": 1}),
                  tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_every_corrupt_image_is_named_in_one_error(xrays, tmp_path):
    # training stopped at the first corrupt file: a second one was found only on the next run
    table = _with_a_corrupt_image(xrays, tmp_path)
    frame = pd.read_csv(table)
    (tmp_path / "empty.png").write_bytes(b"")
    frame.loc[7, "image_path"] = str(tmp_path / "empty.png")
    frame.to_csv(table, index=False)
    study = Study(task="diagnose", target="label", images="image_path")
    with pytest.raises(ImageReadError, match=re.escape(
            f"2 image files cannot be read; the first: image file '{tmp_path / 'broken.png'}' "
            "could not be read as PNG/JPEG")) as caught:
        train_run(table, study, TrainConfig(n_boot=100, image_settings={"max_epochs": 1}),
                  tmp_path / "run")
    assert str(caught.value).endswith("the others: 'empty.png'")


def test_on_bad_file_skip_leaves_the_image_out(xrays, tmp_path):
    table = _with_a_corrupt_image(xrays, tmp_path)
    study = Study(task="diagnose", target="label", images="image_path", on_bad_file="skip")
    run = train_run(table, study, TrainConfig(n_boot=100, image_settings={"max_epochs": 1}),
                    tmp_path / "run")
    images = json.loads((run / "metrics.json").read_text())["images"]
    assert images["read"] == 39
    (skipped,) = images["skipped"]
    assert skipped.startswith(f"image file '{tmp_path / 'broken.png'}' could not be read")
    # the manifest lists it with the other warnings (it had only been printed)
    warnings = json.loads((run / "manifest.json").read_text())["warnings"]
    assert f"image left out: {skipped}" in warnings

    # a run trained to stop at a bad file scores a batch around one with --on-bad-file skip
    strict = train_run(xrays, Study(task="diagnose", target="label", images="image_path"),
                       TrainConfig(n_boot=100, image_settings={"max_epochs": 1}),
                       tmp_path / "strict")
    result = run_permed("predict", strict, table)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "broken.png" in result.stderr
    assert "or pass --on-bad-file skip" in " ".join(result.stderr.split())
    scored = tmp_path / "scored.csv"
    result = CliRunner().invoke(app, ["predict", str(strict), str(table), "--out", str(scored),
                                      "--on-bad-file", "skip"])
    assert result.exit_code == 0, result.output
    assert "1 of 40 images could not be read" in " ".join(result.output.split())
    scored = pd.read_csv(scored, keep_default_na=False)
    assert len(scored) == 40
    assert scored.loc[3, "prob_1"] == ""
    assert scored.loc[3, "image_error"].startswith("image file")
    assert (scored.drop(index=3)["image_error"] == "").all()


def test_missing_files_are_reported_before_training(xrays, tmp_path):
    frame = pd.read_csv(xrays / "labels.csv")
    frame.loc[[0, 5], "image_path"] = ["gone.png", "notes.txt"]
    frame.to_csv(xrays / "bad.csv", index=False)
    study = Study(task="diagnose", target="label", images="image_path")
    try:
        with pytest.raises(DataError, match=re.escape(
                "image column 'image_path' names 2 unusable files (row 1: "
                f"'{(xrays / 'gone.png').resolve()}' does not exist; row 6: "
                f"'{(xrays / 'notes.txt').resolve()}' suffix '.txt' is not an image format): "
                "fix them, or pass --on-bad-file skip to leave them out")):
            train_run(xrays / "bad.csv", study, TrainConfig(n_boot=100), tmp_path / "run")
    finally:
        (xrays / "bad.csv").unlink()


def test_image_study_refuses_tabular_models(xrays, tmp_path):
    study = Study(task="diagnose", target="label", images="image_path")
    with pytest.raises(PermedError, match="--models lightgbm: an image study \\(--images\\) "
                                          "trains one image model; use one of cnn, cnn_densenet"):
        train_run(xrays, study, TrainConfig(models=["lightgbm"]), tmp_path / "run")
