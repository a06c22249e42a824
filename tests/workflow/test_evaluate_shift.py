"""A cohort recorded unlike the development data (permed evaluate and permed predict): a
feature the site does not record, warned about with the numbers, the figures unchanged."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from permed.study import Study
from permed.workflow import TrainConfig, evaluate_run, predict_run, train_run
from permed.workflow._apply import ShiftWarning


def _cohort(n: int, seed: int) -> pd.DataFrame:
    """Synthetic patients: an id, two numeric and one categorical feature, a sensitive column
    that is not a feature, and a binary target."""
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 10, n).round()
    chol = rng.normal(220, 40, n).round()
    pain = rng.choice(["1", "2", "3", "4"], n)
    logit = 0.1 * (age - 60) + 0.02 * (chol - 220) + (pain == "4") * 1.5 - 0.5
    disease = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"patient_id": [f"P{seed}-{i:04d}" for i in range(n)], "age": age,
                         "chol": chol, "pain": pain, "sex": rng.choice(["F", "M"], n),
                         "disease": disease})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A binary run on 240 patients; 'chol' is missing for 10% of them (24 patients)."""
    tmp = tmp_path_factory.mktemp("shift")
    frame = _cohort(240, 0)
    frame.loc[::10, "chol"] = np.nan
    frame.to_csv(tmp / "development.csv", index=False)
    trained = train_run(tmp / "development.csv",
                        Study(task="diagnose", target="disease", id="patient_id",
                              sensitive=["sex"]),
                        TrainConfig(models=["logistic"], n_boot=100, cv=3), tmp / "run")
    return tmp, trained


def _evaluate(run, frame: pd.DataFrame, name: str) -> tuple[dict, list[str], str]:
    tmp, trained = run
    frame.to_csv(tmp / f"{name}.csv", index=False)
    out = evaluate_run(trained, tmp / f"{name}.csv", tmp / f"ev_{name}", n_boot=100)
    return (json.loads((out / "metrics.json").read_text()),
            json.loads((out / "manifest.json").read_text())["warnings"],
            (out / "report.html").read_text())


def test_a_feature_the_site_does_not_record_is_named_with_both_shares(run):
    frame = _cohort(150, 1).assign(age=np.nan)
    metrics, warnings, html = _evaluate(run, frame, "no_age")
    message = ("column 'age' is empty for all 150 patients, against 0% missing in development: "
               "its values were filled in from the development patients, so the probabilities "
               "and figures are those of a model without 'age'; record 'age' at this site, or "
               "train a model without it")
    assert message in warnings
    assert message.replace("'", "&#39;") in html
    assert metrics["data"]["test_rows"] == 150  # a warning: every patient is still evaluated


def test_a_feature_missing_50_points_more_often_than_in_development_is_named(run):
    frame = _cohort(150, 2)
    frame.loc[:89, "chol"] = np.nan  # 60% against 10%: named
    frame.loc[100:144, "pain"] = np.nan  # 30% against 0%: under the 50-point excess
    _, warnings, _ = _evaluate(run, frame, "chol_missing")
    assert [w for w in warnings if w.startswith("column ")] == [
        "column 'chol' is missing for 90 of 150 patients (60%), against 10% missing in "
        "development: its values were filled in from the development patients, so for them "
        "the probabilities and figures are those of a model without 'chol'; record 'chol' at "
        "this site, or train a model without it"]


def test_predict_warns_of_an_unrecorded_feature_and_scores_as_before(run):
    tmp, trained = run
    frame = _cohort(40, 3).drop(columns="disease").assign(age=np.nan)
    frame.to_csv(tmp / "new.csv", index=False)
    with pytest.warns(ShiftWarning, match=(
            r"^column 'age' is empty for all 40 patients, against 0% missing in development: "
            r"its values were filled in from the development patients, so the predictions are "
            r"those of a model without 'age'; record 'age' at this site, or train a model "
            r"without it$")):
        scored = predict_run(trained, tmp / "new.csv")
    told: list[str] = []
    assert predict_run(trained, tmp / "new.csv", warn=told.append).equals(scored)
    assert len(told) == 1
    told.clear()  # the development data themselves: nothing to tell
    predict_run(trained, tmp / "development.csv", warn=told.append)
    assert told == []


def test_streamed_predict_warns_of_an_unrecorded_feature_from_its_first_partition(run):
    from permed.workflow._batch import predict_batched

    tmp, trained = run
    frame = _cohort(40, 3).drop(columns="disease").assign(age=np.nan)
    frame.to_csv(tmp / "new_streamed.csv", index=False)
    told: list[str] = []
    predict_batched(trained, tmp / "new_streamed.csv", tmp / "streamed.parquet", batch_size=25,
                    warn=told.append)
    assert told == ["in the first 25 rows: column 'age' is empty for all 25 patients, against "
                    "0% missing in development: its values were filled in from the development "
                    "patients, so the predictions are those of a model without 'age'; record "
                    "'age' at this site, or train a model without it"]
    told.clear()
    predict_batched(trained, tmp / "new_streamed.csv", tmp / "streamed.parquet", batch_size=100,
                    warn=told.append)
    assert told[0].startswith("column 'age' is empty for all 40 patients")


def test_a_sensitive_column_the_cohort_lacks_is_warned_and_not_called_undeclared(run):
    metrics, warnings, html = _evaluate(run, _cohort(150, 4).drop(columns="sex"), "no_sex")
    assert ("sensitive column 'sex' is not in the cohort: no fairness audit at this site; add "
            "the column to audit it") in warnings
    assert metrics["fairness"] == {"attributes": {}, "not_in_cohort": ["sex"],
                                   "note": "the sensitive column(s) 'sex' are not in the cohort"}
    assert "No sensitive attribute was declared" not in html  # the TRIPOD row said it too
    assert ("The sensitive attribute sex was declared, but its column is not in this cohort, so "
            "fairness between patient groups was not audited here.") in html
    assert ("The sensitive attribute sex was declared for the development run, but this cohort "
            "has no such column, so performance was not compared between patient groups here. "
            "Add the column to the cohort and run permed evaluate again to audit it.") in html


def test_duplicated_ids_are_named_with_their_rows(run):
    frame = _cohort(150, 5)
    frame.loc[[7, 30], "patient_id"] = frame.loc[3, "patient_id"]
    frame.loc[99, "patient_id"] = frame.loc[98, "patient_id"]
    metrics, warnings, _ = _evaluate(run, frame, "dup_ids")
    assert ("id column 'patient_id' has 2 duplicated ids (rows 4, 8 and 31 share one; rows 99 "
            "and 100 another): each row is evaluated as a patient of its own, so a patient "
            "recorded twice counts twice in the figures; remove the repeated rows (or correct "
            "the ids) and evaluate again") in warnings
    assert metrics["data"]["test_rows"] == 150


def test_a_column_in_another_unit_or_coding_is_named_with_the_development_range(run):
    tmp, trained = run
    schema = json.loads((trained / "model" / "schema.json").read_text())
    age = next(f for f in schema["features"] if f["name"] == "age")
    frame = _cohort(150, 6)
    frame["age"] = frame["age"].clip(age["min"], age["max"]) * 12  # in months
    frame["pain"] = frame["pain"].map({"1": "typical", "2": "atypical", "3": "non-anginal",
                                       "4": "none"})
    _, warnings, _ = _evaluate(run, frame, "months")
    midpoint = (age["min"] + age["max"]) / 2
    median = frame["age"].median()
    assert [w for w in warnings if w.startswith("column ")] == [
        f"column 'age': 150 of 150 values (100%) lie outside the development range "
        f"{age['min']:.4g}-{age['max']:.4g}; their median {median:.4g} is about "
        f"{median / midpoint:.2g} times the development midpoint {midpoint:.4g}: a different "
        "unit? Convert 'age' to the development unit and run again; as they are, the "
        "probabilities are extrapolated",
        "column 'pain': none of its 150 values is a category seen in development (development: "
        "1, 2, 3, 4; this cohort: atypical, non-anginal, none, typical): a different coding? "
        "Recode 'pain' to the development categories and run again; as they are, the model "
        "reads every one as an unknown category"]
    told: list[str] = []
    predict_run(trained, tmp / "months.csv", warn=told.append)
    assert told == [w.replace("the probabilities are", "the predictions are")
                    for w in warnings if w.startswith("column ")]


def test_patients_beyond_the_development_range_are_not_asked_about_the_unit(run):
    tmp, trained = run
    schema = json.loads((trained / "model" / "schema.json").read_text())
    top = next(f for f in schema["features"] if f["name"] == "age")["max"]
    frame = _cohort(150, 7).assign(age=lambda f: top + 1 + np.arange(150) % 10)  # older
    _, warnings, _ = _evaluate(run, frame, "older")
    [named] = [w for w in warnings if w.startswith("column ")]
    assert named.startswith("column 'age': 150 of 150 values (100%) lie outside the "
                            "development range ")
    assert named.endswith("these patients lie beyond those the model was developed on, so "
                          "their probabilities are extrapolated; check that 'age' is recorded "
                          "in the development unit")
    assert "a different unit?" not in named


def test_the_prediction_sets_are_assessed_on_the_cohort(run):
    tmp, trained = run
    frame = _cohort(150, 8)
    metrics, _, html = _evaluate(run, frame, "sets")
    scored = predict_run(trained, tmp / "sets.csv")  # the sets permed predict gives
    covered = [y in s.split("|") for y, s in zip(frame["disease"], scored["prediction_set"],
                                                  strict=True)]
    k, n, z = sum(covered), len(covered), 1.959963984540054
    centre = (k / n + z**2 / (2 * n)) / (1 + z**2 / n)  # Wilson score interval, by hand
    half = z / (1 + z**2 / n) * np.sqrt(k / n * (1 - k / n) / n + z**2 / (4 * n**2))
    sets = metrics["uncertainty"]
    assert sets["test_coverage"] == pytest.approx(
        {"value": k / n, "ci_low": centre - half, "ci_high": centre + half}, abs=1e-9)
    assert (sets["covered"], sets["patients"], sets["coverage_target"]) == (k, n, 0.95)
    assert sets["mean_set_size"] == pytest.approx(
        scored["prediction_set"].str.count(r"\|").mean() + 1, abs=1e-12)
    assert sets["share_referred"] == pytest.approx(scored["refer_to_clinician"].mean(),
                                                   abs=1e-12)
    development = json.loads((trained / "metrics.json").read_text())["uncertainty"]
    assert sets["development_test_coverage"] == development["test_coverage"]
    assert "The prediction sets were not assessed" not in html
    assert "Coverage on the test patients (95% CI)" in html


def test_sets_covering_fewer_patients_than_stated_are_warned_about(run):
    frame = _cohort(150, 9)
    frame["disease"] = frame["disease"].map({"yes": "no", "no": "yes"})  # another outcome
    metrics, warnings, _ = _evaluate(run, frame, "sets_flipped")
    coverage = metrics["uncertainty"]["test_coverage"]
    assert coverage["ci_high"] < 0.95
    assert [w for w in warnings if w.startswith("the prediction sets")] == [
        f"the prediction sets hold the true class of {metrics['uncertainty']['covered']} of 150 "
        f"patients ({coverage['value']:.1%}, 95% CI {coverage['ci_low']:.1%}-"
        f"{coverage['ci_high']:.1%}), below their stated 95% coverage: at this site a set "
        "misses the true class more often than stated, and fewer patients are referred than "
        "should be; read them with this coverage, or retrain with this site's patients"]
