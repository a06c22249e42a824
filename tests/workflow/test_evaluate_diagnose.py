"""External validation of a diagnose run (permed evaluate): the rows it leaves out, the
warnings it records and prints, and predictions.csv in train's format."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from permed.exceptions import DataError
from permed.study import Study
from permed.workflow import TrainConfig, evaluate_run, train_run

FAST = {"models": ["logistic"], "n_boot": 100, "cv": 3}


def _cohort(n: int, seed: int) -> pd.DataFrame:
    """Synthetic patients with an id, a numeric, a categorical and a sensitive column, a binary
    target and a three-class grade."""
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 10, n).round()
    pain = rng.choice(["1", "2", "3", "4"], n)
    logit = 0.1 * (age - 60) + (pain == "4") * 1.5 - 0.5
    disease = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    grade = np.where(age < 55, "low", np.where(age < 65, "mid", "high"))
    return pd.DataFrame({"patient_id": [f"P{seed}-{i:04d}" for i in range(n)], "age": age,
                         "pain": pain, "sex": rng.choice(["F", "M"], n), "disease": disease,
                         "grade": grade})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A binary run (on disease) and a three-class run (on grade) of 240 patients."""
    tmp = tmp_path_factory.mktemp("evaluate")
    _cohort(240, 0).to_csv(tmp / "development.csv", index=False)
    binary = train_run(tmp / "development.csv",
                       Study(task="diagnose", target="disease", id="patient_id",
                             drop=["grade"], sensitive=["sex"]),
                       TrainConfig(**FAST), tmp / "binary")
    multi = train_run(tmp / "development.csv",
                      Study(task="diagnose", target="grade", id="patient_id",
                            drop=["disease"]),
                      TrainConfig(**FAST), tmp / "multi")
    return tmp, binary, multi


def _evaluate(tmp, run, frame: pd.DataFrame, name: str):
    frame.to_csv(tmp / f"{name}.csv", index=False)
    out = evaluate_run(run, tmp / f"{name}.csv", tmp / f"ev_{name}", n_boot=100)
    return (json.loads((out / "metrics.json").read_text()),
            json.loads((out / "manifest.json").read_text())["warnings"],
            pd.read_csv(out / "predictions.csv"), (out / "report.html").read_text())


def test_rows_without_the_target_are_left_out_with_a_warning(runs):
    tmp, binary, _ = runs
    frame = _cohort(150, 1)
    frame.loc[[3, 40, 41, 99, 120], "disease"] = np.nan
    metrics, warnings, predictions, html = _evaluate(tmp, binary, frame, "target_missing")
    message = ("5 of 150 rows (3%) have no value in the target column 'disease' (rows 4, 41, "
               "42, 100, 121): they are left out, and the figures describe the 145 patients "
               "evaluated; record their outcome to include them")
    assert warnings[0] == message  # then only the calibration of this small cohort
    assert all(w.startswith("the model is miscalibrated") for w in warnings[1:])
    assert message.replace("'", "&#39;") in html
    assert metrics["data"] == {**metrics["data"], "rows": 150, "test_rows": 145,
                               "missing_target_rows": 5, "unscored_rows": 0}
    assert sum(metrics["target"]["counts"].values()) == 145
    # predictions.csv: row is the 0-based input row, the declared id is kept
    assert list(predictions.columns) == ["row", "patient_id", "y_true", "prob_no", "prob_yes",
                                         "predicted"]
    expected = frame.index.drop([3, 40, 41, 99, 120])
    assert predictions["row"].tolist() == expected.tolist()
    assert predictions["patient_id"].tolist() == frame.loc[expected, "patient_id"].tolist()
    assert predictions["y_true"].tolist() == frame.loc[expected, "disease"].tolist()


def test_unseen_categories_and_values_outside_the_range_are_warned_about(runs):
    tmp, binary, _ = runs
    frame = _cohort(150, 2)
    frame.loc[:9, "pain"] = "5"  # never seen in training
    frame.loc[10:12, "age"] = 130.0
    metrics, warnings, _, _ = _evaluate(tmp, binary, frame, "newcat")
    assert metrics["data"]["out_of_range_rows"] == 13
    assert warnings == [
        "13 of 150 patients (9%) have values outside the training range or categories unseen "
        "in training (pain (10), age (3)): their probabilities are extrapolated (see "
        "out_of_range in permed predict)"]
    assert metrics["external"]["development_data"] is False


def test_the_development_data_is_not_reported_as_an_external_cohort(runs):
    tmp, binary, _ = runs
    out = evaluate_run(binary, tmp / "development.csv", tmp / "ev_same", n_boot=100)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["fingerprint"] == metrics["external"]["development_fingerprint"]
    assert metrics["external"]["development_data"] is True
    warnings = json.loads((out / "manifest.json").read_text())["warnings"]
    assert warnings[0] == (
        f"'development.csv' is the data the run '{binary}' was developed on (the same file "
        "fingerprint), not an external cohort: the model was fitted, selected and calibrated "
        "on most of these patients, so these figures are optimistic; validate it on patients "
        "from another site or period")
    assert "not an external cohort" in (out / "report.html").read_text()


def test_an_absent_class_is_named_and_the_macro_averages_cover_the_others(runs):
    tmp, _, multi = runs
    frame = _cohort(300, 3)
    frame = frame[frame["grade"] != "high"].reset_index(drop=True)
    metrics, warnings, _, _ = _evaluate(tmp, multi, frame, "no_high")
    assert metrics["target"]["counts"]["high"] == 0
    assert (
        "this cohort has no patient with 'high': the one-vs-rest AUROC, AUPRC and sensitivity "
        "of that class cannot be computed, so the macro-averaged AUROC, AUPRC and sensitivity "
        "average the 2 classes present (low, mid), not all 3") in warnings
    # no small-test caution repeats it
    assert not [w for w in warnings if "holds 0 patients" in w]  # named once, above
    per_class = metrics["per_class"]
    assert per_class["high"]["auroc"]["value"] is None
    assert metrics["test"]["auroc"]["value"] == pytest.approx(
        np.mean([per_class[c]["auroc"]["value"] for c in ("low", "mid")]), abs=1e-12)


def test_a_cohort_of_one_class_is_refused(runs):
    tmp, binary, _ = runs
    frame = _cohort(60, 4).assign(disease="no")
    frame.to_csv(tmp / "one.csv", index=False)
    with pytest.raises(DataError, match=(
            r"^target column 'disease' holds one class only in this cohort \('no' for all 60 "
            r"patients with a value\): the model's discrimination cannot be measured on one "
            r"outcome; evaluate on a cohort with patients of at least two of its classes "
            r"\['no', 'yes'\]$")):
        evaluate_run(binary, tmp / "one.csv", tmp / "ev_one", n_boot=100)
    assert not (tmp / "ev_one").exists()
