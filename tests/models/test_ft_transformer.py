"""FT-Transformer classifier and survival model: outputs, learning, seeds, parameters, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch", reason="permed's deep models need the 'deep' extra")

from sklearn.metrics import roc_auc_score  # noqa: E402 - after the skip: torch is imported

from permed.exceptions import PermedError  # noqa: E402
from permed.models.deep import FTTransformerClassifier, FTTransformerSurvival  # noqa: E402
from permed.models.risk import survival_y  # noqa: E402
from permed.testing import (  # noqa: E402
    assert_valid_absolute_risk,
    assert_valid_proba,
    assert_valid_survival,
    run_permed,
    shared_data,
)

# small and quick: a few seconds per fit on a busy 2-core machine
FAST = {"d_token": 16, "n_layers": 1, "n_heads": 2, "device": "cpu", "random_state": 0}


def _classification(n=400, seed=0, n_classes=2):
    """Classes separated along the first two of 5 columns (a synthetic truth)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    X = rng.normal(size=(n, 5))
    X[:, 0] += 1.5 * y
    X[:, 1] -= 1.0 * y
    return X, y


def _survival(n=400, seed=0):
    """Exponential times with log hazard x0 - 0.7 x1, about 30% censored."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    time = rng.exponential(np.exp(-(X[:, 0] - 0.7 * X[:, 1])))
    censor = rng.exponential(3.0, n)
    return X, survival_y(np.minimum(time, censor), time <= censor)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifier_learns_a_separable_signal_with_valid_probabilities(n_classes):
    X, y = _classification(n_classes=n_classes)
    model = FTTransformerClassifier(max_epochs=15, **FAST).fit(X[:300], y[:300])
    proba = model.predict_proba(X[300:])
    assert_valid_proba(proba, 100, n_classes)
    assert proba.dtype == np.float64
    auroc = roc_auc_score(y[300:], proba if n_classes > 2 else proba[:, 1], multi_class="ovr")
    assert auroc > 0.8
    assert set(model.predict(X[300:])) <= set(y)


def test_survival_model_learns_a_log_hazard_with_valid_curves():
    X, y = _survival()
    model = FTTransformerSurvival(max_epochs=30, **FAST).fit(X[:300], y[:300])
    times = np.quantile(y["time"], [0.1, 0.3, 0.5, 0.8])
    survival = model.predict_survival_function(X[300:], times)
    assert_valid_survival(survival, 100, 4)
    assert_valid_absolute_risk(1.0 - survival)
    assert model.predict(X[300:]).shape == (100,)
    assert model.score(X[300:], y[300:]) > 0.7  # Harrell's C on held-out rows
    assert model.baseline_cumulative_hazard_.shape == model.baseline_times_.shape


@pytest.mark.parametrize("cls", [FTTransformerClassifier, FTTransformerSurvival])
def test_same_seed_same_outputs_and_global_torch_state_untouched(cls):
    X, y = (_classification(120)) if cls is FTTransformerClassifier else _survival(120)
    rng_state, n_threads = torch.get_rng_state(), torch.get_num_threads()
    first = cls(max_epochs=3, **FAST).fit(X, y)
    second = cls(max_epochs=3, **FAST).fit(X, y)
    other = cls(max_epochs=3, **{**FAST, "random_state": 1}).fit(X, y)
    method = "predict_proba" if cls is FTTransformerClassifier else "predict"
    np.testing.assert_array_equal(getattr(first, method)(X), getattr(second, method)(X))
    assert not np.array_equal(getattr(first, method)(X), getattr(other, method)(X))
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.get_num_threads() == n_threads


def test_tokens_have_the_asked_width_and_early_stopping_keeps_the_best_epoch():
    X, y = _classification(300)
    model = FTTransformerClassifier(max_epochs=40, patience=2, **FAST).fit(X, y)
    assert model.network_.tokenizer.weight.shape == (5, 16)
    assert len(model.network_.blocks) == 1
    curve = model.validation_loss_curve_
    assert len(curve) == model.n_epochs_ == len(model.loss_curve_)
    assert model.best_validation_loss_ == min(curve)


@pytest.mark.parametrize(("params", "match"), [
    ({"d_token": 30, "n_heads": 4},
     r"^d_token=30 must be a multiple of n_heads=4: each attention head reads d_token / "
     r"n_heads values, e.g. d_token=32 with n_heads=4$"),
    ({"n_layers": 0}, r"^n_layers=0 must be a positive integer$"),
    ({"ffn_dropout": 1.0}, r"^ffn_dropout=1.0 must be a number in \[0, 1\), e.g. 0.1$"),
    ({"learning_rate": -1.0}, r"^learning_rate=-1.0 must be a finite number above 0.0$"),
    ({"validation_fraction": 1.0}, r"^validation_fraction=1.0 must be below 1"),
    ({"device": "tpu"}, r"^device='tpu' is not supported"),
])
@pytest.mark.parametrize("cls", [FTTransformerClassifier, FTTransformerSurvival])
def test_bad_parameters_are_refused_with_the_fix(cls, params, match):
    X, y = _classification(40) if cls is FTTransformerClassifier else _survival(40)
    with pytest.raises(PermedError, match=match):
        cls(**params).fit(X, y)


def test_classifier_refuses_a_single_class():
    X, _ = _classification(40)
    with pytest.raises(PermedError, match=r"y has 1 class \('yes'\): FTTransformerClassifier"):
        FTTransformerClassifier().fit(X, np.full(40, "yes"))


def _cleveland_slice(tmp_path):
    frame = pd.read_csv(shared_data("uci_heart_cleveland/processed.cleveland.tsv"), sep="\t",
                        na_values=["?"])
    frame["disease"] = np.where(frame.pop("diagnosis") > 0, "yes", "no")
    path = tmp_path / "cleveland.csv"
    # 6 of the 13 features: the permutation explanation of a transformer costs per feature
    frame[["age", "sex", "chest_pain_type", "max_HR", "vessels_coloured_fluoroscopy",
           "thalessemia", "disease"]].head(150).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_cli_trains_and_predicts_a_diagnose_ft_transformer(tmp_path):
    data = _cleveland_slice(tmp_path)
    result = run_permed("train", data, "--task", "diagnose", "--target", "disease", "--models",
                        "ft_transformer", "--cv", "2", "--bootstrap", "100", "--out",
                        tmp_path / "run", "--quiet")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["selected_model"] == "ft_transformer"
    assert metrics["test"]["auroc"]["value"] > 0.6  # 30 test patients: a loose bound
    # the network is exported with its preprocessing (checked against torch within 1e-5)
    assert (tmp_path / "run" / "model" / "model.onnx").is_file()
    new = pd.read_csv(data).drop(columns="disease").head(5)
    new.to_csv(tmp_path / "new.csv", index=False)
    predicted = run_permed("predict", tmp_path / "run", tmp_path / "new.csv", "--out",
                           tmp_path / "p.csv")
    assert predicted.returncode == 0, predicted.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == 5


@pytest.mark.slow
def test_cli_trains_a_risk_ft_transformer(tmp_path):
    assert run_permed("datasets", "export", "gbsg2", tmp_path / "gbsg.csv").returncode == 0
    pd.read_csv(tmp_path / "gbsg.csv").head(200).to_csv(tmp_path / "slice.csv", index=False)
    result = run_permed("train", tmp_path / "slice.csv", "--task", "risk", "--time", "time",
                        "--event", "cens", "--models", "ft_transformer", "--cv", "2",
                        "--bootstrap", "100", "--out", tmp_path / "run", "--quiet")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["selected_model"] == "ft_transformer"
    assert 0.5 < metrics["test"]["c_index"]["value"] <= 1.0
