"""The service's explainers, built once per model, give permed.explain's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris

from permed.explain._shap import background_sample
from permed.serve._explain import Explainer, _LightGBMContributions, explanation_payload
from permed.study import FittedSchema, Study
from permed.uncertainty import ProbabilityCalibrator
from permed.workflow._cv import build_pipeline
from permed.workflow._fitted import DiagnoseModel


def _lightgbm(loader, target: str) -> tuple[DiagnoseModel, object]:
    data = loader(as_frame=True)
    frame = data.data
    schema = FittedSchema.from_frame(frame, dict.fromkeys(frame.columns, "numeric"),
                                     Study(task="diagnose", target=target),
                                     [str(c) for c in data.target_names])
    features = schema.coerce(frame)
    y = data.target.to_numpy()
    pipeline = build_pipeline("lightgbm", schema, 0, "cpu", False).fit(features, y)
    calibrator = ProbabilityCalibrator("none").fit(pipeline.predict_proba(features), y)
    model = DiagnoseModel("lightgbm", schema, pipeline, calibrator, 0.5,
                          background=background_sample(features, 100, 0))
    return model, features


@pytest.mark.parametrize("scale", ["probability", "log-odds"])
def test_cached_explainers_are_used_and_give_the_library_numbers(scale):
    model, features = _lightgbm(load_breast_cancer, "diagnosis")
    explainer = Explainer(model)
    assert explainer.cached(scale)  # the check at load kept the fast explainer
    patients = features.iloc[[0, 7, len(features) - 1]].reset_index(drop=True)
    served = explainer.explain(patients, scale=scale)
    library = model.explain(patients, scale=scale)
    assert served.outputs == library.outputs
    np.testing.assert_allclose(served.values, library.values, atol=1e-6)
    np.testing.assert_allclose(served.base_values, library.base_values, atol=1e-6)


@pytest.mark.parametrize("scale", ["probability", "log-odds"])
def test_typed_patients_are_explained_as_their_table_without_building_it(scale):
    model, features = _lightgbm(load_breast_cancer, "diagnosis")
    explainer = Explainer(model)
    table = features.iloc[[3, 11]].astype(object).reset_index(drop=True)
    table.iloc[0, 2] = None  # a missing value stays None in the words
    patients = table.to_dict("records")
    transformed = model.pipeline[:-1].transform(model.schema.coerce(table))
    from_table = explainer.explain(table, scale)
    served = explainer.explain_patients(patients, transformed, scale)
    assert "data" not in vars(served)  # no table was built
    np.testing.assert_array_equal(served.values, from_table.values)
    np.testing.assert_array_equal(served.base_values, from_table.base_values)
    assert (served.outputs, served.scale, served.method, served.description) == (
        from_table.outputs, from_table.scale, from_table.method, from_table.description)
    assert served.features == from_table.features
    assert served.rows == [[patient[name] for name in served.features] for patient in patients]
    assert served.rows[0][2] is None  # the typed value; the table path reads NaN there
    for row in range(2):
        assert explanation_payload(served, row, {}) == explanation_payload(from_table, row, {})
    pd.testing.assert_frame_equal(served.data, table, check_column_type=False)  # when read


def test_multiclass_models_are_explained_as_the_library_chooses():
    model, _ = _lightgbm(load_iris, "species")
    explainer = Explainer(model)  # permed.explain uses permutation SHAP for these
    assert explainer.method == "permutation"
    assert not explainer.cached("probability")
    assert not explainer.cached("log-odds")


@pytest.mark.parametrize(("loader", "target"), [(load_breast_cancer, "diagnosis"),
                                               (load_iris, "species")])
def test_one_patient_goes_through_lightgbms_single_row_api_with_the_same_numbers(loader, target):
    model, features = _lightgbm(loader, target)
    booster = model.pipeline[-1].booster_
    contributions = _LightGBMContributions(booster)
    assert contributions._single is not None  # this LightGBM offers the single-row setup
    transformed = np.asarray(model.pipeline[:-1].transform(features), dtype=float)
    for i in (0, 1, len(transformed) // 2, len(transformed) - 1):
        values, base = contributions(transformed[i:i + 1])
        expected = booster.predict(transformed[i:i + 1], pred_contrib=True)
        expected = expected.reshape(1, -1, transformed.shape[1] + 1).transpose(0, 2, 1)
        np.testing.assert_array_equal(values, expected[:, :-1, :])
        np.testing.assert_array_equal(base, expected[:, -1, :])
    several, _ = contributions(transformed[:4])  # more patients: LightGBM's predict
    assert several.shape == (4, transformed.shape[1], values.shape[2])
    np.testing.assert_array_equal(several[0], contributions(transformed[:1])[0][0])


def _calibrated(calibration: str, name: str = "lightgbm") -> tuple[DiagnoseModel, pd.DataFrame]:
    """A model of a coded 0/1 target (as Cleveland's ``disease``), calibrated on held-out
    patients, as ``permed diagnose`` trains it."""
    data = load_breast_cancer(as_frame=True)
    frame = data.data
    schema = FittedSchema.from_frame(frame, dict.fromkeys(frame.columns, "numeric"),
                                     Study(task="diagnose", target="disease"), ["0", "1"])
    features = schema.coerce(frame)
    y = data.target.to_numpy()
    pipeline = build_pipeline(name, schema, 0, "cpu", False).fit(features.iloc[:400], y[:400])
    calibrator = ProbabilityCalibrator(calibration).fit(
        pipeline.predict_proba(features.iloc[400:]), y[400:])
    model = DiagnoseModel(name, schema, pipeline, calibrator, 0.5,
                          background=background_sample(features.iloc[:400], 100, 0))
    return model, features.iloc[400:].reset_index(drop=True)


@pytest.mark.parametrize("name", ["lightgbm", "logistic"])
def test_a_coded_class_is_named_with_its_target_as_predict_explain_names_it(name):
    model, patients = _calibrated("sigmoid", name)
    explainer = Explainer(model)
    assert explainer.cached("probability") == (name == "lightgbm")
    served = explainer.explain(patients.iloc[:2])
    assert served.outputs == model.explain(patients.iloc[:2]).outputs == ["disease = 1"]
    payload = explanation_payload(served, 0, {})
    assert payload["output"] == "disease = 1"
    assert all(" the probability of disease = 1 by " in f["text"] for f in payload["factors"])


@pytest.mark.parametrize("name", ["lightgbm", "logistic"])
@pytest.mark.parametrize("calibration", ["sigmoid", "isotonic"])
def test_the_explained_value_is_the_answers_calibrated_probability(name, calibration):
    model, patients = _calibrated(calibration, name)
    explainer = Explainer(model)
    raw = model.pipeline.predict_proba(patients)[:, 1]
    rows = patients[(raw > 0.02) & (raw < 0.98)].iloc[:6]  # where the calibration moves them
    answered = model.predict_frame(rows)["prob_1"].to_numpy()
    assert np.abs(answered - model.pipeline.predict_proba(rows)[:, 1]).max() > 0.02
    for i in range(len(rows)):
        payload = explanation_payload(explainer.explain(rows.iloc[[i]]), 0, {}, top=3)
        assert payload["value"] == pytest.approx(answered[i], abs=1e-6)
        assert payload["base_value"] + sum(f["contribution"] for f in payload["factors"]) + \
            payload["other"] == pytest.approx(payload["value"], abs=1e-12)
    assert payload["description"] == (
        "the model's calibrated probability of disease = 1 (prob_1), from 0 to 1; the "
        "sentences tell each factor in percentage points")


def test_calibration_keeps_each_factors_direction_and_rank_for_a_tree_model():
    model, patients = _calibrated("sigmoid")
    calibrated = Explainer(model).explain(patients.iloc[:5])
    model.calibrator = ProbabilityCalibrator("none").fit(np.eye(2), np.arange(2))
    raw = Explainer(model).explain(patients.iloc[:5])
    assert raw.description.startswith("the model's probability of disease = 1 (prob_1)")
    for i in range(5):
        before, after = raw.values[i, :, 0], calibrated.values[i, :, 0]
        np.testing.assert_array_equal(np.sign(after), np.sign(before))
        np.testing.assert_array_equal(np.argsort(-np.abs(after), kind="stable"),
                                      np.argsort(-np.abs(before), kind="stable"))


def test_the_log_odds_explained_are_those_of_the_calibrated_probability():
    model, patients = _calibrated("sigmoid")
    explainer = Explainer(model)
    assert explainer.cached("log-odds")
    p = model.predict_frame(patients)["prob_1"].to_numpy()
    inside = (p > 1e-6) & (p < 1 - 1e-6)  # log-odds are clipped at +-13.8, as the library's
    explanation = explainer.explain(patients[inside], scale="log-odds")
    p = p[inside]
    np.testing.assert_allclose(explanation.predicted()[:, 0], np.log(p / (1 - p)), atol=1e-6)
    assert explanation.description == ("the log-odds of the model's calibrated probability of "
                                       "disease = 1 (prob_1)")


@pytest.mark.parametrize("name", ["lightgbm", "logistic"])
def test_a_patient_is_explained_alike_alone_and_within_a_batch(name):
    model, patients = _calibrated("sigmoid", name)
    explainer = Explainer(model)
    alone = explainer.explain(patients.iloc[[7]])
    batch = explainer.explain(patients.iloc[[3, 7, 0, 21, 9]])
    np.testing.assert_allclose(batch.values[1], alone.values[0], rtol=0, atol=1e-12)
    assert explanation_payload(batch, 1, {})["text"] == explanation_payload(alone, 0, {})["text"]


def test_the_cached_tree_explainer_never_quotes_a_note():
    rng = np.random.default_rng(0)
    n = 200
    sick = rng.random(n) < 0.5
    frame = pd.DataFrame({
        "age": rng.normal(50, 10, n).round(),
        "note": np.where(sick, "itchy rash, seen with Lopez", "no complaint today, Smith")})
    schema = FittedSchema.from_frame(frame, {"age": "numeric", "note": "text"},
                                     Study(task="diagnose", target="sick", notes=["note"]),
                                     ["no", "yes"])
    features = schema.coerce(frame)
    pipeline = build_pipeline("lightgbm", schema, 0, "cpu", False).fit(features, sick)
    calibrator = ProbabilityCalibrator("none").fit(pipeline.predict_proba(features), sick)
    model = DiagnoseModel("lightgbm", schema, pipeline, calibrator, 0.5,
                          background=background_sample(features, 100, 0, text_columns=["note"]))
    explainer = Explainer(model)
    assert explainer.cached("probability")
    patients = frame.head(2).astype(object).to_dict("records")
    patients[1]["note"] = None
    transformed = model.pipeline[:-1].transform(model.schema.coerce(pd.DataFrame(patients)))
    for explanation in (explainer.explain(pd.DataFrame(patients)),
                        explainer.explain_patients(patients, transformed, "probability")):
        shown = [explanation_payload(explanation, i, {}, 3) for i in range(2)]
        assert "Lopez" not in str(shown)
        assert "Smith" not in str(shown)
        assert "(free text)" in str(shown[0])
