"""Batch scoring through ONNX Runtime: the native table within 1e-5, native when no graph."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from permed.bundle import save_bundle
from permed.bundle._onnx import ONNX_FILE, export_onnx
from permed.explain import background_sample
from permed.study import FittedSchema, Study
from permed.uncertainty import ConformalSets, OutOfDistribution, ProbabilityCalibrator
from permed.workflow import _batch as batch
from permed.workflow._cv import build_pipeline
from permed.workflow._fitted import DiagnoseModel

KINDS = {"age": "numeric", "chol": "numeric", "sex": "categorical", "smoker": "categorical"}


def _cohort(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"age": rng.normal(60, 10, n).round(), "chol": rng.normal(220, 40, n),
                          "sex": rng.choice(["F", "M"], n),
                          "smoker": rng.choice(["never", "former", "current"], n)})
    frame.loc[::7, "chol"] = np.nan
    frame.loc[::11, "smoker"] = None
    y = (rng.random(n) < 1 / (1 + np.exp(-0.08 * (frame["age"] - 60)))).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def onnx_run(tmp_path_factory):
    """A LightGBM run directory with model.onnx, conformal sets and the OOD detector."""
    frame, y = _cohort(600, 0)
    schema = FittedSchema.from_frame(frame, KINDS, Study(task="diagnose"), ["0", "1"])
    pipeline = build_pipeline("lightgbm", schema, 0, "cpu", True, {"n_estimators": 40})
    features = schema.coerce(frame)
    pipeline.fit(features, y)
    raw = pipeline.predict_proba(features)
    model = DiagnoseModel("lightgbm", schema, pipeline,
                          ProbabilityCalibrator("sigmoid").fit(raw, y), 0.4)
    model.conformal = ConformalSets(0.9).fit(raw, y)
    model.ood = OutOfDistribution(0.05).fit(pipeline[:-1].transform(features),
                                            features[schema.numeric])
    model.background = background_sample(features, 100, 0)
    run = tmp_path_factory.mktemp("onnx_run")
    assert export_onnx(model, run / "model") is not None
    save_bundle(model, schema, run / "model")
    new, _ = _cohort(2000, 1)
    new.loc[5, "age"] = 140.0  # outside the training range
    data = run / "new.parquet"
    new.to_parquet(data, index=False)
    return run, model, data


def test_onnx_batch_scores_equal_native_scores(onnx_run, tmp_path):
    run, model, data = onnx_run
    scorer, note = batch.batch_scorer(run, model)
    assert isinstance(scorer, batch.OnnxScorer), note
    assert batch.predict_batched(run, data, tmp_path / "onnx.parquet", batch_size=300) == 2000
    batch.predict_batched(run, data, tmp_path / "native.parquet", batch_size=300, onnx=False)
    fast, native = pd.read_parquet(tmp_path / "onnx.parquet"), pd.read_parquet(
        tmp_path / "native.parquet")
    np.testing.assert_allclose(fast[["prob_0", "prob_1"]], native[["prob_0", "prob_1"]],
                               rtol=0, atol=1e-5)
    same = ["predicted", "out_of_range", "out_of_range_features", "prediction_set",
            "out_of_distribution", "refer_to_clinician", "refer_reason"]
    pd.testing.assert_frame_equal(fast[same], native[same])
    assert native["out_of_range"].iloc[5]
    assert native["refer_to_clinician"].any()


def test_a_bundle_without_onnx_scores_natively(onnx_run, tmp_path):
    run, model, _ = onnx_run
    copy = tmp_path / "run"
    save_bundle(model, model.schema, copy / "model")
    scorer, note = batch.batch_scorer(copy, model)
    assert scorer is model
    assert note == "native: no model.onnx in the bundle (this model family does not export)"
    assert not (copy / "model" / ONNX_FILE).exists()


def test_onnx_scorer_travels_to_workers(onnx_run):
    run, model, data = onnx_run
    scorer, _ = batch.batch_scorer(run, model, threads=1)
    frame = pd.read_parquet(data).head(50)
    moved = pickle.loads(pickle.dumps(scorer))
    pd.testing.assert_frame_equal(moved.predict_frame(frame), scorer.predict_frame(frame))


def test_vectorized_referral_reasons_match_the_row_loop(onnx_run):
    _, model, data = onnx_run
    frame = pd.read_parquet(data)
    proba = model.predict_proba(frame)
    flagged = model.schema.out_of_range(frame)
    flags = model.abstention(frame, proba, flagged)
    sets = model.prediction_sets(proba)
    unusual = model.ood.flag(model.pipeline[:-1].transform(model.schema.coerce(frame)))
    reasons = model.ood.reasons(model.schema.coerce(frame)[model.schema.numeric])
    expected = []
    for i, members in enumerate(sets):
        why = []
        if members.count("|") >= 1:
            why.append(f"uncertain between {members.replace('|', ' and ')}")
        if flagged.iloc[i]:
            why.append(f"outside the training range: {flagged.iloc[i].replace(';', ', ')}")
        if unusual[i]:
            why.append(f"unusual combination of values ({reasons[i]})")
        expected.append("; ".join(why))
    assert list(flags["refer_reason"]) == expected
    assert list(flags["refer_to_clinician"]) == [bool(r) for r in expected]
    assert list(flags["prediction_set"]) == sets
    assert any("; " in r for r in expected)
