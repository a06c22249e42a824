"""The diagnose protocol end to end through the library (run directory contract)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from permed.bundle import load_bundle
from permed.exceptions import DataError, PermedError
from permed.study import Study
from permed.workflow import TrainConfig, predict_run, train_run
from permed.workflow._batch import predict_batched

FAST = {"models": ["logistic", "lightgbm"], "n_boot": 200, "cv": 3}


@pytest.fixture(scope="module")
def bc_run(tmp_path_factory):
    from permed.ingest import export_dataset

    tmp = tmp_path_factory.mktemp("bc")
    data = export_dataset("breast_cancer", tmp / "bc.csv")
    run = train_run(data, Study(task="diagnose", target="diagnosis"), TrainConfig(**FAST),
                    tmp / "run")
    return data, run, json.loads((run / "metrics.json").read_text())


def test_run_directory_holds_the_contract_files(bc_run):
    _, run, _ = bc_run
    assert sorted(p.name for p in run.iterdir()) == [
        "audit.log", "audit.log.head", "explanations.json", "manifest.json", "metrics.json",
        "model", "predictions.csv", "report.html", "row_digests.json"]
    assert not [p for p in run.parent.iterdir() if p.name.startswith(".")]


def test_metrics_follow_the_design_schema(bc_run):
    _, _, metrics = bc_run
    assert metrics["task"] == "diagnose"
    assert set(metrics["data"]) >= {"rows", "columns", "fingerprint"}
    assert metrics["data"]["fingerprint"].startswith("sha256:")
    assert metrics["selected_model"] in metrics["cv"]
    required = {"auroc", "auprc", "accuracy", "sensitivity", "specificity", "f1", "brier", "ece"}
    assert required <= set(metrics["test"])
    for entry in metrics["test"].values():
        if entry["value"] is not None:
            assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    for model in metrics["cv"].values():
        assert set(model["auroc"]) == {"mean", "std"}
    assert metrics["target"]["positive_class"] == "malignant"


def test_breast_cancer_reaches_the_published_ceiling(bc_run):
    # Published AUROC ~0.995 for logistic regression and boosted trees; acceptance >= 0.99.
    assert bc_run[2]["test"]["auroc"]["value"] >= 0.99


def test_predictions_cover_the_test_split_once(bc_run):
    _, run, metrics = bc_run
    predictions = pd.read_csv(run / "predictions.csv")
    assert len(predictions) == metrics["data"]["test_rows"] == 114
    assert predictions["row"].is_unique
    assert np.allclose(predictions[["prob_benign", "prob_malignant"]].sum(axis=1), 1.0)


def test_manifest_records_how_to_reproduce(bc_run):
    _, run, metrics = bc_run
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 42
    assert manifest["data"]["fingerprint"] == metrics["data"]["fingerprint"]
    assert manifest["config"]["models"] == ["logistic", "lightgbm"]
    assert {"numpy", "scikit-learn", "lightgbm"} <= set(manifest["packages"])


def test_same_seed_gives_the_same_results(bc_run, tmp_path):
    data, _, metrics = bc_run
    again = train_run(data, Study(task="diagnose", target="diagnosis"), TrainConfig(**FAST),
                      tmp_path / "again")
    repeat = json.loads((again / "metrics.json").read_text())
    assert repeat["test"] == metrics["test"]
    assert repeat["cv"] == metrics["cv"]


def test_predict_scores_every_row_and_flags_out_of_range(bc_run, tmp_path):
    data, run, _ = bc_run
    frame = pd.read_csv(data).drop(columns="diagnosis").head(20)
    frame.loc[3, "mean radius"] = 1000.0
    frame.to_csv(tmp_path / "new.csv", index=False)
    out = predict_run(run, tmp_path / "new.csv")
    assert len(out) == 20
    assert out.loc[3, "out_of_range_features"] == "mean radius"
    assert out["out_of_range"].sum() == 1
    model, _ = load_bundle(run)
    threshold = model.threshold
    assert ((out["prob_malignant"] >= threshold) == (out["predicted"] == "malignant")).all()


def test_multiclass_target(tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.data.assign(species=iris.target_names[iris.target])
    frame.to_csv(tmp_path / "iris.csv", index=False)
    run = train_run(tmp_path / "iris.csv", Study(task="diagnose", target="species"),
                    TrainConfig(**FAST), tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["auroc"]["value"] > 0.95
    assert set(metrics["per_class"]) == {"setosa", "versicolor", "virginica"}
    assert metrics["threshold"]["value"] is None
    predictions = pd.read_csv(run / "predictions.csv")
    assert {"prob_setosa", "prob_versicolor", "prob_virginica"} <= set(predictions)


@pytest.mark.parametrize(("options", "flags"), [
    ({"target_sensitivity": 0.9}, "--target-sensitivity applies"),
    ({"positive_class": "setosa", "target_sensitivity": 0.9},
     "--positive-class and --target-sensitivity apply"),
])
def test_binary_only_options_are_refused_for_more_classes(tmp_path, options, flags):
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    iris.data.assign(species=iris.target_names[iris.target]).to_csv(tmp_path / "iris.csv",
                                                                       index=False)
    with pytest.raises(PermedError) as caught:
        train_run(tmp_path / "iris.csv", Study(task="diagnose", target="species"),
                  TrainConfig(**FAST, **options), tmp_path / "run")
    assert str(caught.value) == (
        f"{flags} to a target with two classes; this one has 3 (setosa, versicolor, "
        "virginica), and each patient gets the most probable class: leave them out, or train "
        "one class against the rest (a column that is 1 for that class, 0 otherwise)")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("classes", "warned"), [
    (["disease", "no disease"], True), (["malade", "sain"], True), (["Healthy", "ill"], False),
    (["sick", "healthy"], False), (["benign", "malignant"], False), (["no", "yes"], False),
    (["negative", "positive"], False), (["0", "1"], False), (["control", "normal"], False),
])
def test_a_positive_class_named_like_no_disease_is_warned_about(classes, warned):
    from permed.workflow._diagnose import positive_class_warning

    found = positive_class_warning(sorted(classes), TrainConfig())
    assert (found is not None) == warned
    assert positive_class_warning(sorted(classes), TrainConfig(positive_class=classes[0])) is None


def test_the_positive_class_warning_reaches_the_manifest(tmp_path):
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.data.iloc[:, :5].assign(
        diagnosis=np.where(data.target == 0, "cancer", "no cancer"))
    frame.to_csv(tmp_path / "bc.csv", index=False)
    run = train_run(tmp_path / "bc.csv", Study(task="diagnose", target="diagnosis"),
                    TrainConfig(**FAST), tmp_path / "run")
    warnings = json.loads((run / "manifest.json").read_text())["warnings"]
    assert ("the positive class is 'no cancer' (the last in sorted order), which reads as the "
            "absence of disease: sensitivity, PPV and the threshold are about finding 'no "
            "cancer' patients; pass --positive-class 'cancer' to make 'cancer' the positive "
            "class") in warnings


def test_the_studys_missing_markers_are_read_as_missing_in_training_and_scoring(tmp_path):
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.data.iloc[:, :4].astype(object).assign(diagnosis=data.target)
    frame.iloc[[3, 10], 0] = "n/a"
    frame.iloc[5, 1] = "-"
    frame.to_csv(tmp_path / "bc.csv", index=False)
    study = Study(task="diagnose", target="diagnosis", missing=["n/a", "-"])
    run = train_run(tmp_path / "bc.csv", study, TrainConfig(**FAST), tmp_path / "run")
    schema = json.loads((run / "model" / "schema.json").read_text())
    assert schema["missing"] == ["n/a", "-"]
    radius = next(f for f in schema["features"] if f["name"] == "mean radius")
    assert radius["kind"] == "numeric"
    new = frame.drop(columns="diagnosis").head(8)
    new.to_csv(tmp_path / "new.csv", index=False)
    new.astype(str).to_parquet(tmp_path / "new.parquet")  # a text column, as exported
    for path in (tmp_path / "new.csv", tmp_path / "new.parquet"):
        scored = predict_run(run, path)
        assert len(scored) == 8
        assert scored["prob_1"].between(0, 1).all()
        # streamed scoring reads partitions with the same markers
        assert predict_batched(run, path, tmp_path / "streamed.parquet", batch_size=3) == 8
    with pytest.raises(DataError, match=r"is text \(row 6; '-', which marks a missing value\)"):
        train_run(tmp_path / "bc.csv", Study(task="diagnose", target="diagnosis",
                                             missing=["n/a"]),
                  TrainConfig(**FAST), tmp_path / "without")


def test_target_sensitivity_sets_the_threshold(bc_run, tmp_path):
    data, _, metrics = bc_run
    run = train_run(data, Study(task="diagnose", target="diagnosis"),
                    TrainConfig(**FAST, target_sensitivity=0.99), tmp_path / "sens")
    tuned = json.loads((run / "metrics.json").read_text())
    assert tuned["threshold"]["rule"] == "target_sensitivity"
    assert tuned["threshold"]["value"] <= metrics["threshold"]["value"]


def test_tuning_within_a_budget_records_trials(bc_run, tmp_path):
    data, _, _ = bc_run
    run = train_run(data, Study(task="diagnose", target="diagnosis"),
                    TrainConfig(models=["logistic"], n_boot=200, cv=3, budget=3),
                    tmp_path / "tuned")
    metrics = json.loads((run / "metrics.json").read_text())
    details = metrics["cv_details"]["logistic"]
    assert details["tuning_trials"] >= 1
    tuning = details["tuning"]  # the verdict follows the rule from the figures it records
    replaced = tuning["cv_gain"] - tuning["selection_optimism"] > tuning["threshold"]
    assert tuning["replaced_defaults"] is replaced
    assert set(details["params"]) == ({"C"} if replaced else set())
    assert "Tibshirani" in metrics["selection"]["tuning"]


def test_a_failed_run_leaves_no_directory(tmp_path, small_cohort):
    small_cohort["chol"] = np.nan
    small_cohort.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="column 'chol' is entirely missing"):
        train_run(tmp_path / "bad.csv", Study(task="diagnose", target="disease",
                                              id="patient_id"), TrainConfig(**FAST),
                  tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_unknown_model_is_refused(tmp_path, small_cohort):
    small_cohort.to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(PermedError, match="--models: unknown diagnose model 'xgboost'; "
                       "available: logistic, .*; and fusion .*with --images, cnn or cnn_densenet"):
        train_run(tmp_path / "c.csv", Study(task="diagnose", target="disease", id="patient_id"),
                  TrainConfig(models=["xgboost"]), tmp_path / "run")


def test_a_large_cohort_gets_fewer_folds_and_the_large_cohort_lightgbm(tmp_path, monkeypatch):
    from permed.ingest import export_dataset
    from permed.models.diagnose import DIAGNOSE_MODELS

    monkeypatch.setattr("permed.workflow._large.LARGE_COHORT_ROWS", 300)
    data = export_dataset("breast_cancer", tmp_path / "bc.csv")
    run = train_run(data, Study(task="diagnose", target="diagnosis"),
                    TrainConfig(models=["lightgbm"], n_boot=100, cv=5), tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    large = DIAGNOSE_MODELS["lightgbm"].large_cohort
    assert metrics["selection"]["folds"] == 3
    assert metrics["cv_details"]["lightgbm"]["params"] == large
    assert "large_cohort_settings" in metrics["selection"]
    model, _ = load_bundle(run)
    assert model.pipeline[-1].get_params()["n_estimators"] == large["n_estimators"]
