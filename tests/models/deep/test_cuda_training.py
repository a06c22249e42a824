"""Every deep model trained on a CUDA GPU: it trains there, learns as well as on the CPU, and
the fitted model predicts on a machine without a GPU (train on a GPU box, serve on a CPU one).

Skipped without a CUDA device (CI has none); run on a GPU machine with
``pytest tests/models/deep/test_cuda_training.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from permed.testing import assert_valid_proba, assert_valid_survival

torch = pytest.importorskip("torch", reason="permed's deep models need the 'deep' extra")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: the GPU training paths")

from permed.evaluate.survival import harrell_c  # noqa: E402
from permed.models.deep import (  # noqa: E402
    CNNClassifier,
    DeepSurv,
    FTTransformerClassifier,
    FTTransformerSurvival,
    MLPClassifier,
)
from permed.models.deep._fusion import FusionClassifier  # noqa: E402
from permed.models.deep._sequence import EventGRUClassifier  # noqa: E402
from permed.models.risk import survival_y  # noqa: E402
from permed.preprocess._events import EventTokenizer  # noqa: E402

FT = {"d_token": 16, "n_layers": 1, "n_heads": 2, "random_state": 0}


def _table(n: int = 800, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes separated along the first two of 6 columns."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 6))
    X[:, 0] += 1.2 * y
    X[:, 1] -= 0.8 * y
    return X, y


def _survival(n: int = 800, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exponential event times whose log hazard is 0.8 x0 - 0.5 x1, about 30% censored."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    event_time = rng.exponential(np.exp(-(0.8 * X[:, 0] - 0.5 * X[:, 1])))
    censor_time = rng.exponential(2.0, n)
    return X, survival_y(np.minimum(event_time, censor_time), event_time <= censor_time)


def _events(n: int, seed: int) -> pd.DataFrame:
    """Event sequences whose label is whether DX:42 occurs (5% of labels flipped)."""
    rng = np.random.default_rng(seed)
    codes = [f"RX:drug{k}" for k in range(29)]
    rows = []
    for _ in range(n):
        tokens = list(rng.choice(codes, int(rng.integers(3, 16))))
        if rng.random() < 0.4:
            tokens[int(rng.integers(0, len(tokens)))] = "DX:42"
        rows.append({"events": " ".join(tokens),
                     "y": int("DX:42" in tokens) ^ int(rng.random() < 0.05)})
    return pd.DataFrame(rows)


def _squares(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise images; class 1 has a bright square in its top-left corner."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, 1, size, size), dtype=np.float32) * 0.3
    y = np.arange(n) % 2
    X[y == 1, :, : size // 2, : size // 2] += 0.7
    return X, y


def _fit_on_gpu(model, *fit_args, **fit_kwargs):
    """Fit ``model`` (its ``device`` set to cuda) and check the GPU did the training."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    model.fit(*fit_args, **fit_kwargs)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() > 0, "nothing was put on the GPU"
    network = model.network_
    assert {p.device.type for p in network.parameters()} == {"cpu"}, \
        "a fitted model must predict on a machine without a GPU"
    return model


def _predicts_without_gpu(model, X, method: str, tmp_path: Path) -> np.ndarray:
    """``model``'s ``method`` on ``X`` in a fresh interpreter that sees no GPU."""
    joblib.dump((model, X), tmp_path / "model.joblib")
    script = ("import sys, joblib, numpy, torch; assert not torch.cuda.is_available(); "
              f"model, X = joblib.load(sys.argv[1]); numpy.save(sys.argv[2], model.{method}(X))")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.joblib"),
                    str(tmp_path / "out.npy")], check=True, timeout=300,
                   env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    return np.load(tmp_path / "out.npy")


@pytest.mark.parametrize("make", [
    lambda device: MLPClassifier(max_epochs=60, random_state=0, device=device),
    lambda device: FTTransformerClassifier(max_epochs=30, device=device, **FT),
], ids=["mlp", "ft_transformer"])
def test_table_classifiers_learn_on_the_gpu_as_on_the_cpu(make, tmp_path):
    X, y = _table()
    gpu = _fit_on_gpu(make("cuda"), X[:600], y[:600])
    cpu = make("cpu").fit(X[:600], y[:600])
    proba = gpu.predict_proba(X[600:])
    assert_valid_proba(proba, 200, 2)
    auc_gpu = roc_auc_score(y[600:], proba[:, 1])
    auc_cpu = roc_auc_score(y[600:], cpu.predict_proba(X[600:])[:, 1])
    assert auc_gpu > 0.8
    assert abs(auc_gpu - auc_cpu) < 0.03, (auc_gpu, auc_cpu)
    np.testing.assert_allclose(_predicts_without_gpu(gpu, X[600:], "predict_proba", tmp_path),
                               proba, rtol=0, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda device: DeepSurv(max_epochs=60, random_state=0, device=device),
    lambda device: FTTransformerSurvival(max_epochs=30, device=device, **FT),
], ids=["deepsurv", "ft_transformer"])
def test_survival_models_learn_on_the_gpu_as_on_the_cpu(make, tmp_path):
    X, y = _survival()
    gpu = _fit_on_gpu(make("cuda"), X[:600], y[:600])
    cpu = make("cpu").fit(X[:600], y[:600])
    time, event = y["time"][600:], y["event"][600:]
    c_gpu = harrell_c(time, event, gpu.predict(X[600:]))
    c_cpu = harrell_c(time, event, cpu.predict(X[600:]))
    assert c_gpu > 0.65
    assert abs(c_gpu - c_cpu) < 0.03, (c_gpu, c_cpu)
    times = np.quantile(y["time"], [0.2, 0.5, 0.8])
    assert_valid_survival(gpu.predict_survival_function(X[600:], times), 200, 3)
    np.testing.assert_allclose(_predicts_without_gpu(gpu, X[600:], "predict", tmp_path),
                               gpu.predict(X[600:]), rtol=1e-6, atol=1e-6)


def test_event_sequence_gru_learns_on_the_gpu(tmp_path):
    frame = _events(400, seed=1)
    tokenizer = EventTokenizer(max_length=20, min_count=2).fit(frame[["events"]][:300])
    ids = tokenizer.transform(frame[["events"]])
    model = EventGRUClassifier(event_columns=20, max_epochs=30, device="cuda", random_state=0)
    _fit_on_gpu(model, ids[:300], frame["y"][:300])
    proba = model.predict_proba(ids[300:])
    assert_valid_proba(proba, 100, 2)
    assert roc_auc_score(frame["y"][300:], proba[:, 1]) > 0.8
    np.testing.assert_allclose(_predicts_without_gpu(model, ids[300:], "predict_proba", tmp_path),
                               proba, rtol=0, atol=1e-6)


def test_cnn_trains_with_mixed_precision_on_the_gpu_and_predicts_without_it(tmp_path):
    X, y = _squares(160)
    model = CNNClassifier((1, 16, 16), max_epochs=15, device="cuda", random_state=0)
    _fit_on_gpu(model, X[:120], y[:120])
    assert model.device_.startswith("cuda")
    assert model.amp_
    proba = model.predict_proba(X[120:])
    assert roc_auc_score(y[120:], proba[:, 1]) > 0.9
    np.testing.assert_allclose(_predicts_without_gpu(model, X[120:], "predict_proba", tmp_path),
                               proba, rtol=0, atol=1e-5)


def test_fusion_of_table_note_and_image_trains_on_the_gpu(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 150)
    X = {"table": rng.normal(size=(300, 4)) + 0.8 * y[:, None],
         "note": rng.normal(size=(300, 6)) + 0.5 * y[:, None],
         "image": rng.random((300, 1, 12, 12)) + 0.3 * y[:, None, None, None]}
    shapes = {"table": (4,), "note": (6,), "image": (1, 12, 12)}
    train = {k: v[::2] for k, v in X.items()}
    test = {k: v[1::2] for k, v in X.items()}
    model = FusionClassifier(shapes, max_epochs=20, device="cuda", random_state=0)
    _fit_on_gpu(model, train, y[::2])
    assert model.device_.startswith("cuda")
    proba = model.predict_proba(test)
    assert_valid_proba(proba, 150, 2)
    assert roc_auc_score(y[1::2], proba[:, 1]) > 0.85
    np.testing.assert_allclose(_predicts_without_gpu(model, test, "predict_proba", tmp_path),
                               proba, rtol=0, atol=1e-5)


def test_auto_device_keeps_fully_connected_networks_on_the_cpu_and_transformers_on_the_gpu():
    X, y = _table(2000)
    transformer = _fit_on_gpu(FTTransformerClassifier(max_epochs=2, device="auto", **FT), X, y)
    assert transformer.device_.startswith("cuda")
    for model in (MLPClassifier(max_epochs=3, random_state=0, device="auto").fit(X, y),
                  DeepSurv(max_epochs=3, random_state=0, device="auto").fit(*_survival(400))):
        assert model.device_ == "cpu"


@pytest.mark.parametrize("fit", [
    lambda: MLPClassifier(max_epochs=2, random_state=0, device="cuda").fit(*_table(200)),
    lambda: DeepSurv(max_epochs=2, random_state=0, device="cuda").fit(*_survival(200)),
    lambda: FTTransformerClassifier(max_epochs=2, device="cuda", **FT).fit(*_table(200)),
    lambda: CNNClassifier((1, 16, 16), max_epochs=2, device="cuda",
                          random_state=0).fit(*_squares(40)),
    lambda: EventGRUClassifier(event_columns=20, max_epochs=2, device="cuda", random_state=0).fit(
        EventTokenizer(max_length=20).fit_transform(_events(100, 0)[["events"]]),
        _events(100, 0)["y"]),
    lambda: FusionClassifier({"table": (4,)}, max_epochs=2, device="cuda", random_state=0).fit(
        {"table": _table(100)[0][:, :4]}, _table(100)[1]),
], ids=["mlp", "deepsurv", "ft_transformer", "cnn", "gru", "fusion"])
def test_training_on_the_gpu_leaves_the_global_cuda_generator_alone(fit):
    torch.cuda.manual_seed_all(123)
    before = torch.cuda.get_rng_state()
    fit()
    assert torch.equal(torch.cuda.get_rng_state(), before)
