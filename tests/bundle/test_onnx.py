"""ONNX export of diagnose pipelines: scored within 1e-5 of the native model, or not used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permed.bundle._onnx import ONNX_FILE, TOLERANCE, compare, export_onnx, load_onnx
from permed.explain import background_sample
from permed.study import FittedSchema, Study
from permed.uncertainty import ProbabilityCalibrator
from permed.workflow._cv import build_pipeline
from permed.workflow._fitted import DiagnoseModel

# small forests: the conversion, not the model, is under test
PARAMS = {"logistic": {}, "lightgbm": {"n_estimators": 40}, "random_forest": {"n_estimators": 30},
          "mlp": {"max_epochs": 5}, "ft_transformer": {"max_epochs": 2},
          "dp_mlp": {"max_epochs": 2}}
TORCH = ("mlp", "ft_transformer", "dp_mlp")
KINDS = {"age": "numeric", "chol": "numeric", "sex": "categorical", "smoker": "categorical"}


def _model(name: str, clip: bool) -> DiagnoseModel:
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"age": rng.normal(60, 10, n).round(), "chol": rng.normal(220, 40, n),
                          "sex": rng.choice(["F", "M"], n),
                          "smoker": rng.choice(["never", "former", "current"], n)})
    frame.loc[::7, "chol"] = np.nan  # a missing-value indicator column
    frame.loc[::11, "smoker"] = None  # a missing category
    y = (rng.random(n) < 1 / (1 + np.exp(-0.08 * (frame["age"] - 60)))).astype(int)
    schema = FittedSchema.from_frame(frame, KINDS, Study(task="diagnose"), ["0", "1"])
    pipeline = build_pipeline(name, schema, 0, "cpu", clip, PARAMS[name])
    pipeline.fit(schema.coerce(frame), y)
    calibrator = ProbabilityCalibrator("none").fit(pipeline.predict_proba(schema.coerce(frame)), y)
    model = DiagnoseModel(name, schema, pipeline, calibrator, 0.5)
    model.background = background_sample(schema.coerce(frame), 100, 0)
    return model


@pytest.mark.parametrize("name", ["logistic", "lightgbm", "random_forest", *TORCH])
@pytest.mark.parametrize("clip", [False, True])
def test_exported_pipeline_scores_like_the_native_one(name, clip, tmp_path):
    if name in TORCH:
        pytest.importorskip("opacus" if name == "dp_mlp" else "torch")  # the dp, deep extras
    model = _model(name, clip)
    assert export_onnx(model, tmp_path) == tmp_path / ONNX_FILE
    from permed.bundle._onnx import _open

    onnx_model = _open((tmp_path / ONNX_FILE).read_bytes(), model)
    assert compare(onnx_model, model) < TOLERANCE
    # one patient at a time, as the service scores (a torch graph is traced, not converted)
    rows = model.background.iloc[:3]
    native = model.pipeline.predict_proba(rows)
    alone = np.vstack([onnx_model.run_frame(rows.iloc[[i]], features=False)[0]
                       for i in range(len(rows))])
    np.testing.assert_allclose(alone, native, atol=TOLERANCE, rtol=0)


def test_patients_values_are_fed_as_their_table(tmp_path):
    model = _model("lightgbm", False)
    export_onnx(model, tmp_path)
    from permed.bundle._onnx import _open

    onnx_model = _open((tmp_path / ONNX_FILE).read_bytes(), model)
    table = pd.DataFrame({"age": [61.0, None, 48.0], "chol": [None, 250.5, 199.0],
                          "sex": ["M", "F", None], "smoker": [None, "never", "current"]})
    columns = {name: table[name].astype(object).where(table[name].notna(), None).tolist()
               for name in KINDS}
    fed, expected = onnx_model.feed(columns), onnx_model.feed_frame(model.schema.coerce(table))
    assert fed.keys() == expected.keys()
    for name, values in expected.items():
        assert fed[name].shape == values.shape == (3, 1)
        assert fed[name].dtype == values.dtype
        np.testing.assert_array_equal(fed[name], values)  # NaN where missing, "" for a category
    proba, _ = onnx_model.run(columns)
    np.testing.assert_allclose(proba, model.pipeline.predict_proba(model.schema.coerce(table)),
                               atol=TOLERANCE, rtol=0)


def test_the_service_scores_a_torch_mlp_with_onnx_runtime(tmp_path):
    pytest.importorskip("torch")
    from permed.bundle._onnx import _open
    from permed.serve._scoring import Scorer

    model = _model("mlp", False)
    export_onnx(model, tmp_path)
    onnx_model = _open((tmp_path / ONNX_FILE).read_bytes(), model)
    scorer = Scorer(model, onnx_model)  # checks its answers against predict_frame's
    assert (scorer.engine, scorer.note) == ("onnx", "")
    assert "content" not in repr(onnx_model)  # the serialized graph stays out of logs


def test_a_model_without_a_converter_is_not_exported(tmp_path):
    from permed.models.diagnose._scorecard import ScorecardClassifier

    model = _model("logistic", False)
    model.pipeline.steps[-1] = ("model", ScorecardClassifier())
    assert export_onnx(model, tmp_path) is None
    assert not (tmp_path / ONNX_FILE).exists()


def test_a_run_without_onnx_scores_natively(tmp_path):
    from permed.bundle import save_bundle

    model = _model("logistic", False)
    save_bundle(model, model.schema, tmp_path / "model")
    assert load_onnx(tmp_path, model) == (
        None, "no model.onnx in the bundle (this model family does not export)")


def test_an_onnx_file_that_disagrees_is_not_used(tmp_path):
    from permed.bundle import save_bundle

    model = _model("logistic", False)
    other = _model("random_forest", False)
    export_onnx(other, tmp_path / "model")  # a signed, valid graph of another model
    save_bundle(model, model.schema, tmp_path / "model")
    onnx_model, note = load_onnx(tmp_path, model)
    assert onnx_model is None
    assert note.startswith("model.onnx differs from the native model by ")
    assert note.endswith(f"(> {TOLERANCE:g}) on the check rows: scoring natively")
