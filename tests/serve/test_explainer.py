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
