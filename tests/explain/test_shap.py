"""SHAP explanations on the original features: additivity, grouping, words."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pandas as pd
import pytest

from permed.exceptions import BundleError, PermedError
from permed.explain import (
    Factor,
    background_sample,
    explain_function,
    explain_pipeline,
    factor_text,
    patient_factors,
    source_features,
)
from permed.explain._shap import _coalitions, _permutation_shap
from permed.models.diagnose import available_models
from permed.study import FittedSchema, Study
from permed.testing import assert_additive_explanation
from permed.uncertainty import ProbabilityCalibrator
from permed.workflow._cv import build_pipeline
from permed.workflow._fitted import DiagnoseModel


def _schema(frame: pd.DataFrame, kinds: dict[str, str]) -> FittedSchema:
    return FittedSchema.from_frame(frame, kinds, Study(task="diagnose", target="diagnosis"),
                                   ["benign", "malignant"])


@pytest.fixture(scope="module")
def breast_cancer():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.data
    y = (data.target.to_numpy() == 0).astype(int)  # 1 = malignant
    schema = _schema(frame, dict.fromkeys(frame.columns, "numeric"))
    features = schema.coerce(frame)
    return schema, features.iloc[:455], y[:455], features.iloc[455:]


@pytest.fixture(scope="module")
def mixed():
    """Numeric and categorical with missing values (a level has an underscore), a 0/1 column."""
    rng = np.random.default_rng(1)
    n = 300
    frame = pd.DataFrame({
        "age": rng.normal(60, 10, n).round(),
        "chol": rng.normal(220, 40, n).round(),
        "smoker": rng.choice(["never", "ex_smoker", "current"], n).astype(object),
        "diabetic": rng.integers(0, 2, n).astype(float),
    })
    logit = 0.06 * (frame["age"] - 60) + 0.02 * (frame["chol"] - 220) + \
        1.2 * (frame["smoker"] == "current") + 0.8 * frame["diabetic"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).to_numpy().astype(int)
    frame.loc[rng.choice(n, 30, replace=False), "chol"] = np.nan
    frame.loc[rng.choice(n, 10, replace=False), "smoker"] = None  # a missing category
    kinds = {"age": "numeric", "chol": "numeric", "smoker": "categorical",
             "diabetic": "numeric"}
    schema = _schema(frame, kinds)
    features = schema.coerce(frame)
    return schema, features, y


@pytest.mark.parametrize(("name", "scale"), [("lightgbm", "probability"),
                                             ("lightgbm", "log-odds"),
                                             ("random_forest", "probability")])
def test_tree_shap_adds_up_to_the_model_output(breast_cancer, name, scale):
    schema, train, y, test = breast_cancer
    pipeline = build_pipeline(name, schema, 0, "cpu", False).fit(train, y)
    patient = test.iloc[[0]]
    explanation = explain_pipeline(pipeline, patient, background_sample(train, 100, 0),
                                   scale=scale)
    p = pipeline.predict_proba(patient)[0, 1]
    output = p if scale == "probability" else math.log(p / (1 - p))
    assert explanation.method == "tree"
    assert explanation.values.shape == (1, 30, 1)
    assert_additive_explanation(explanation, np.array([output]), atol=1e-6)


def test_lightgbm_values_on_a_split_threshold_still_add_up(breast_cancer):
    # measurements often equal a LightGBM threshold; SHAP's interventional TreeSHAP compares in
    # float32 and, unguarded, missed these 114 test patients' output by up to 0.0025
    schema, train, y, test = breast_cancer
    pipeline = build_pipeline("lightgbm", schema, 0, "cpu", False).fit(train, y)
    explanation = explain_pipeline(pipeline, test, background_sample(train, 100, 0))
    assert explanation.method == "tree"
    assert_additive_explanation(explanation, pipeline.predict_proba(test)[:, 1], atol=1e-6)


@pytest.mark.parametrize("name", available_models())
def test_every_model_family_is_explained_additively_per_original_feature(mixed, name):
    schema, features, y = mixed
    pipeline = build_pipeline(name, schema, 0, "cpu", False).fit(features, y)
    missing = features["smoker"].isna().to_numpy()
    patients = pd.concat([features.iloc[:6], features[missing].iloc[:2]])
    explanation = explain_pipeline(pipeline, patients, background_sample(features, 40, 0))
    assert explanation.features == ["age", "chol", "smoker", "diabetic"]
    assert explanation.values.shape == (8, 4, 1)
    assert_additive_explanation(explanation, pipeline.predict_proba(patients)[:, 1])
    assert explanation.method == {"lightgbm": "tree", "lightgbm_pn": "tree",
                                  "random_forest": "tree"}.get(name, "permutation")


def test_one_hot_and_missing_indicator_columns_are_summed_into_their_feature(mixed):
    schema, features, y = mixed
    pipeline = build_pipeline("logistic", schema, 0, "cpu", False).fit(features, y)
    owners = source_features(pipeline[0])
    assert owners.count("smoker") == 3  # 3 levels; a missing value is imputed, not a level
    assert owners.count("chol") == 2  # value + missing indicator
    background = background_sample(features, 60, 0)
    explanation = explain_pipeline(pipeline, features.iloc[:5], background, scale="log-odds")
    assert explanation.method == "linear"
    # linear SHAP per encoded column is coef * (x - mean of the background)
    encoded, reference = pipeline[0].transform(features.iloc[:5]), pipeline[0].transform(background)
    per_column = pipeline[-1].coef_[0] * (encoded - reference.mean(axis=0))
    for j, feature in enumerate(explanation.features):
        columns = [t for t, owner in enumerate(owners) if owner == feature]
        np.testing.assert_allclose(explanation.values[:, j, 0],
                                   per_column[:, columns].sum(axis=1), atol=1e-9)


def _exact_shapley(function, patient: pd.DataFrame, background: pd.DataFrame) -> np.ndarray:
    """Interventional Shapley values by enumerating every coalition (3 features)."""
    names = list(patient.columns)

    def value(coalition: tuple[str, ...]) -> float:
        mixed = background.copy()
        for column in coalition:
            mixed[column] = patient[column].iloc[0]
        return float(np.mean(function(mixed)))

    m, phi = len(names), np.zeros(len(names))
    for j, name in enumerate(names):
        others = [c for c in names if c != name]
        for size in range(m):
            for coalition in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                phi[j] += weight * (value((*coalition, name)) - value(coalition))
    return phi


def test_permutation_shap_matches_exact_shapley_values():
    rng = np.random.default_rng(0)
    background = pd.DataFrame(rng.normal(size=(30, 3)), columns=["a", "b", "c"])
    patient = pd.DataFrame({"a": [1.5], "b": [-2.0], "c": [0.7]})

    def interacting(frame: pd.DataFrame) -> np.ndarray:
        return (frame["a"] * frame["b"] + np.exp(frame["c"])).to_numpy()

    exact = _exact_shapley(interacting, patient, background)
    estimate = explain_function(interacting, patient, background, outputs=["y"], scale="units",
                                permutations=60, seed=0)
    np.testing.assert_allclose(estimate.values[0, :, 0], exact, atol=0.05)
    assert estimate.predicted()[0, 0] == pytest.approx(interacting(patient)[0], abs=1e-9)


def test_permutation_shap_of_a_linear_function_is_exact_with_one_permutation():
    rng = np.random.default_rng(0)
    background = pd.DataFrame(rng.normal(size=(20, 4)), columns=list("abcd"))
    patients = pd.DataFrame(rng.normal(size=(5, 4)), columns=list("abcd"))
    weights = np.array([2.0, -1.0, 0.5, 3.0])
    explanation = explain_function(lambda f: f.to_numpy() @ weights, patients, background,
                                   outputs=["y"], scale="units", permutations=1)
    expected = (patients.to_numpy() - background.mean().to_numpy()) * weights
    np.testing.assert_allclose(explanation.values[:, :, 0], expected, atol=1e-9)


def test_permutation_shap_scores_the_end_coalitions_once():
    """Every pass starts at the background alone and ends at the patient alone: those are
    scored once, and the values equal scoring every coalition on every background row."""
    rng = np.random.default_rng(1)
    background, patients = rng.normal(size=(7, 3)), rng.normal(size=(2, 3))
    plans = [_coalitions(rng, 3, 2) for _ in range(2)]  # 2 permutations: 4 passes, 4 steps
    masks, orders = np.stack([m for m, _ in plans]), np.stack([o for _, o in plans])
    scored = []

    def model(matrix: np.ndarray) -> np.ndarray:
        scored.append(len(matrix))
        return matrix[:, 0] * matrix[:, 1] + np.exp(matrix[:, 2])

    values, base = _permutation_shap(model, patients, background, masks, orders)
    assert scored == [7 + 2 + 2 * 4 * 2 * 7]  # background, patients, the 2 inner steps
    every = np.where(masks[:, :, :, None, :], patients[:, None, None, None, :],
                     background[None, None, None, :, :])
    value = model(every.reshape(-1, 3)).reshape(2, 4, 4, 7).mean(axis=3)
    gains = np.diff(value, axis=2)
    expected = np.zeros((2, 3))
    for i in range(2):
        for p in range(4):
            for s in range(3):
                expected[i, orders[i, p, s]] += gains[i, p, s] / 4
    np.testing.assert_allclose(values[:, :, 0], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(base[:, 0], value[:, 0, 0], rtol=0, atol=1e-12)


def test_permutation_shap_of_one_feature_is_its_whole_change():
    background = pd.DataFrame({"a": [0.0, 1.0, 2.0]})
    patients = pd.DataFrame({"a": [4.0, -1.0]})
    explanation = explain_function(lambda f: f["a"].to_numpy() ** 2, patients, background,
                                   outputs=["y"], scale="units")
    np.testing.assert_allclose(explanation.values[:, 0, 0], [16 - 5 / 3, 1 - 5 / 3])


def _model(schema: FittedSchema, features: pd.DataFrame, y: np.ndarray,
           name: str) -> DiagnoseModel:
    pipeline = build_pipeline(name, schema, 0, "cpu", False).fit(features, y)
    calibrator = ProbabilityCalibrator("none").fit(pipeline.predict_proba(features), y)
    return DiagnoseModel(name, schema, pipeline, calibrator, 0.5,
                         background=background_sample(features, 100, 0))


def test_patient_text_names_the_top_factors_with_direction_and_size(breast_cancer):
    schema, train, y, test = breast_cancer
    model = _model(schema, train, y, "lightgbm")
    explanation = model.explain(test.iloc[:3])
    table = model.explain_frame(test.iloc[:3])
    assert list(table.columns) == ["explanation", "top_factor_1", "top_factor_2",
                                   "top_factor_3", "explained_output"]
    assert table["explained_output"][0] == (
        "the model's probability of diagnosis = malignant (prob_malignant), from 0 to 1; the "
        "sentences tell each factor in percentage points")
    for i in range(3):
        contributions = explanation.values[i, :, 0]
        top = [explanation.features[j] for j in np.argsort(-np.abs(contributions))[:3]]
        assert [table[f"top_factor_{k}"][i] for k in (1, 2, 3)] == top
        sentences = table["explanation"][i].split("; ")
        assert len(sentences) == 3
        for feature, sentence in zip(top, sentences, strict=True):
            size = abs(contributions[explanation.features.index(feature)]) * 100
            assert re.fullmatch(rf"{feature} [-\d.e]+ (raises|lowers) the probability of "
                                rf"malignant by (\d+\.\d points|less than 0\.1 points)",
                                sentence), sentence
            assert f"{size:.1f} points" in sentence or size < 0.05


def test_factor_text_reads_like_a_sentence():
    assert factor_text(Factor("mean radius", 17.99, 0.041, "malignant", "probability")) == (
        "mean radius 17.99 raises the probability of malignant by 4.1 points")
    assert factor_text(Factor("thal", "7", -0.2, "disease = 1", "log-odds")) == (
        "thal = 7 lowers the log-odds of disease = 1 by 0.20")
    assert factor_text(Factor("sbp", 172.0, 0.041, "5-year risk", "risk"), unit="mmHg") == (
        "sbp 172 mmHg raises the 5-year risk by 4.1 points")
    assert factor_text(Factor("chol", np.nan, -0.0001, "malignant", "probability")) == (
        "chol missing lowers the probability of malignant by less than 0.1 points")


def test_multiclass_explanations_tell_the_most_probable_class():
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.data
    schema = FittedSchema.from_frame(frame, dict.fromkeys(frame.columns, "numeric"),
                                     Study(task="diagnose", target="species"),
                                     list(iris.target_names))
    features = schema.coerce(frame)
    model = _model(schema, features, iris.target.to_numpy(), "lightgbm")
    explanation = model.explain(features.iloc[[0, 149]])
    assert explanation.outputs == ["setosa", "versicolor", "virginica"]
    assert explanation.method == "permutation"
    np.testing.assert_allclose(explanation.predicted(),
                               model.pipeline.predict_proba(features.iloc[[0, 149]]), atol=1e-6)
    assert [f.output for f in patient_factors(explanation, 0)][0] == "setosa"
    assert [f.output for f in patient_factors(explanation, 1)][0] == "virginica"


def test_a_model_without_background_and_unknown_options_are_refused(breast_cancer):
    schema, train, y, test = breast_cancer
    model = _model(schema, train, y, "logistic")
    with pytest.raises(PermedError, match="explanation scale 'odds' is not known"):
        model.explain(test.iloc[:1], scale="odds")
    with pytest.raises(PermedError, match="explanation method 'tree' does not support a "
                                          "LogisticRegression on the probability scale"):
        model.explain(test.iloc[:1], method="tree")
    model.background = None
    with pytest.raises(BundleError, match="this model carries no explanation background"):
        model.explain(test.iloc[:1])


def test_a_patient_is_explained_alike_alone_and_in_any_batch(mixed):
    """Each patient's permutations come from the seed and their own values: not from their
    place in the batch, nor from the category levels the others bring."""
    _, features, _ = mixed

    def interacting(frame: pd.DataFrame) -> np.ndarray:
        current = (frame["smoker"] == "current").to_numpy()
        return (np.nan_to_num(frame["chol"].to_numpy()) / 100 * frame["age"].to_numpy() / 60
                * np.where(current, 2.0, 1.0) + frame["diabetic"].to_numpy() * current)

    background = features.iloc[100:150]
    patient = features.iloc[[4]]
    smokers = features["smoker"]
    other_level = features.index[smokers.notna() & (smokers != patient["smoker"].iloc[0])][0]
    alone = explain_function(interacting, patient, background, outputs=["y"], scale="units")
    batch = explain_function(interacting, features.iloc[[other_level, 4, 0, 4, 9]], background,
                             outputs=["y"], scale="units")
    np.testing.assert_array_equal(batch.values[1], alone.values[0])
    np.testing.assert_array_equal(batch.values[3], alone.values[0])  # twins alike
    other_seed = explain_function(interacting, patient, background, outputs=["y"],
                                  scale="units", seed=1)
    assert not np.array_equal(other_seed.values, alone.values)  # the seed still counts


@pytest.mark.parametrize("name", ["lightgbm", "logistic", "random_forest"])
@pytest.mark.parametrize("scale", ["probability", "log-odds"])
def test_a_calibrated_model_is_explained_on_the_probability_it_answers(mixed, name, scale):
    schema, features, y = mixed
    model = _model(schema, features.iloc[:200], y[:200], name)
    model.calibrator = ProbabilityCalibrator("sigmoid").fit(
        model.pipeline.predict_proba(features.iloc[200:]), y[200:])
    patients = features.iloc[200:230]
    explanation = model.explain(patients, scale=scale)
    p = model.predict_proba(patients)[:, 1]
    expected = p if scale == "probability" else np.log(p / (1 - p))
    np.testing.assert_allclose(explanation.predicted()[:, 0], expected, rtol=0, atol=1e-6)
    assert explanation.outputs == ["malignant"]
    assert "the model's calibrated probability of diagnosis = malignant (prob_malignant)" \
        in explanation.description
