"""Counterfactuals: only actionable features change, within their ranges, and the prediction
really crosses the threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permed.bundle import load_bundle
from permed.exceptions import PermedError, StudyError
from permed.explain import FeatureMoves, counterfactual, search_counterfactuals
from permed.study import ColumnSpec


@pytest.fixture(scope="module")
def cohort_model(trust_run):
    run, frame = trust_run
    model, _ = load_bundle(run)
    return model, frame


def _high_risk(model, frame: pd.DataFrame) -> pd.DataFrame:
    p = model.predict_proba(frame)[:, 1]
    return frame.iloc[[int(np.argmax(p))]]


def test_a_counterfactual_changes_only_actionable_features_within_range_and_crosses(
        cohort_model):
    model, frame = cohort_model
    patient = _high_risk(model, frame)
    search = counterfactual(model, patient)
    assert model.actionable == {"chol": "decrease", "sbp": None, "smoker": None}
    assert search.score >= model.threshold
    assert search.goal == f"probability of disease = 1 below {model.threshold:.3f}"
    assert search.found, search.note
    specs = {f.name: f for f in model.schema.features}
    for cf in search.found:
        changed = {c.feature for c in cf.changes}
        assert changed <= {"chol", "sbp", "smoker"}
        kept = [c for c in cf.patient.columns if c not in changed]
        assert cf.patient[kept].reset_index(drop=True).equals(
            model.schema.coerce(patient)[kept].reset_index(drop=True))
        for change in cf.changes:
            spec = specs[change.feature]
            if spec.kind == "numeric":
                low = max(spec.min, spec.valid_range[0]) if spec.valid_range else spec.min
                high = min(spec.max, spec.valid_range[1]) if spec.valid_range else spec.max
                assert low <= change.after <= high
            else:
                assert change.after in spec.categories
            if change.feature == "chol":
                assert change.after < change.before  # monotone = "decrease"
        # the model's own prediction for the changed patient crosses the threshold
        assert model.predict_proba(cf.patient)[0, 1] < model.threshold
        assert cf.score == pytest.approx(model.predict_proba(cf.patient)[0, 1])
    distances = [cf.distance for cf in search.found]
    assert distances == sorted(distances)


def test_a_low_risk_patient_is_moved_up_and_the_text_says_how(cohort_model):
    model, frame = cohort_model
    p = model.predict_proba(frame)[:, 1]
    below = np.flatnonzero(p < model.threshold)
    patient = frame.iloc[[int(below[np.argsort(p[below])[len(below) // 2]])]]
    search = counterfactual(model, patient, ["sbp", "smoker"], max_changes=2)
    assert search.goal.startswith("probability of disease = 1 at or above")
    for cf in search.found:
        assert model.predict_proba(cf.patient)[0, 1] >= model.threshold
    assert search.to_dict()["counterfactuals"][0]["text"] == search.best.text()


def test_no_reachable_goal_gives_a_note_not_an_error(cohort_model):
    model, frame = cohort_model
    patient = _high_risk(model, frame)
    search = counterfactual(model, patient, ["smoker"], max_changes=1)
    if not search.found:
        assert search.note == (f"no change of at most 1 of smoker within the allowed ranges "
                               f"reaches a {search.goal}")


def test_search_works_for_any_score_and_goal():
    patient = pd.DataFrame({"x": [5.0], "y": [5.0], "z": [9.0]})

    def risk(frame: pd.DataFrame) -> np.ndarray:
        return (frame["x"] + frame["y"]).to_numpy()

    moves = [FeatureMoves("x", np.linspace(0, 10, 21), 10.0, decimals=2),
             FeatureMoves("y", np.linspace(4, 10, 13), 10.0, decimals=2)]
    found = search_counterfactuals(risk, patient, moves, lambda r: r <= 8.0)
    assert found[0].changes[0].feature == "x"
    assert found[0].changes[0].after == pytest.approx(3.0, abs=0.05)
    assert all(cf.patient["z"].iloc[0] == 9.0 for cf in found)


def test_bad_requests_are_refused_with_the_fix(cohort_model):
    model, frame = cohort_model
    patient = frame.iloc[[0]]
    with pytest.raises(PermedError, match=r"actionable feature\(s\) \['ldl'\] are not features "
                                          "of this model"):
        counterfactual(model, patient, ["ldl"])
    with pytest.raises(PermedError, match="column 'smoker' is categorical: a monotone "
                                          "constraint \\('increase'\\) needs a numeric column"):
        counterfactual(model, patient, ["smoker"], monotone={"smoker": "increase"})
    with pytest.raises(PermedError, match="a counterfactual is for one patient: got 2 rows"):
        counterfactual(model, frame.iloc[:2])
    with pytest.raises(StudyError, match="monotone = 'down' is not known; expected one of "
                                         "increase, decrease"):
        ColumnSpec(monotone="down")
