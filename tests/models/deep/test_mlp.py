"""MLPClassifier and resolve_device: accuracy, reproducibility, the scikit-learn contract."""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch", reason="permed's deep models need the 'deep' extra")

import joblib  # noqa: E402 - after the skip: the estimator module imports torch
from numpy.testing import assert_allclose, assert_array_equal  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_iris  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from permed.exceptions import PermedError  # noqa: E402
from permed.models.deep import MLPClassifier, resolve_device  # noqa: E402


def _split(loader):
    X, y = loader(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


def _small_problem(labels=(0, 1), n_rows=60, seed=0):
    """Two well separated Gaussian blobs, labelled with ``labels``."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 2, size=n_rows)
    X = rng.normal(size=(n_rows, 3)) + 3.0 * classes[:, None]
    return X, np.asarray(labels)[classes]


@pytest.mark.parametrize(
    ("loader", "params"),
    [
        # binary, with the defaults (10 epochs, early stopping)
        (load_breast_cancer, {}),
        # multiclass: 10% of iris's 112 training rows is a 12-row validation split, too noisy
        # to stop on reliably, so train for a fixed 100 epochs instead
        (load_iris, {"max_epochs": 100, "early_stopping": False}),
    ],
    ids=["breast_cancer-binary", "iris-multiclass"],
)
def test_test_accuracy_above_0_9(loader, params):
    X_train, X_test, y_train, y_test = _split(loader)
    model = MLPClassifier(random_state=0, device="cpu", **params).fit(X_train, y_train)

    proba = model.predict_proba(X_test)
    accuracy = np.mean(model.predict(X_test) == y_test)

    assert accuracy > 0.9
    assert proba.dtype == np.float64
    assert proba.shape == (len(y_test), len(np.unique(y_train)))
    assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)


def test_same_random_state_gives_identical_probabilities():
    X_train, X_test, y_train, _ = _split(load_breast_cancer)

    first = MLPClassifier(random_state=3, device="cpu").fit(X_train, y_train)
    second = MLPClassifier(random_state=3, device="cpu").fit(X_train, y_train)
    other = MLPClassifier(random_state=4, device="cpu").fit(X_train, y_train)

    assert_array_equal(first.predict_proba(X_test), second.predict_proba(X_test))
    assert first.loss_curve_ == second.loss_curve_
    assert not np.array_equal(first.predict_proba(X_test), other.predict_proba(X_test))


def test_fit_leaves_global_torch_state_alone():
    X, y = _small_problem()
    rng_state = torch.get_rng_state()
    n_threads = torch.get_num_threads()

    MLPClassifier(random_state=0, device="cpu").fit(X, y)

    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.get_num_threads() == n_threads


@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_predict_before_fit_raises_not_fitted_error(method):
    X, _ = _small_problem()

    with pytest.raises(NotFittedError, match="This MLPClassifier instance is not fitted yet"):
        getattr(MLPClassifier(), method)(X)


@pytest.mark.parametrize(
    "labels",
    [("benign", "malignant"), ("no", "yes"), (-1, 1), (0.0, 2.0), ("b", "a")],
    ids=["str", "str-2", "int", "float", "str-unsorted"],
)
def test_labels_round_trip(labels):
    X, y = _small_problem(labels=labels)

    model = MLPClassifier(max_epochs=30, random_state=0, device="cpu").fit(X, y)
    predicted = model.predict(X)

    assert_array_equal(model.classes_, np.sort(np.asarray(labels)))
    assert predicted.dtype == y.dtype
    assert set(predicted) <= set(y.tolist())
    assert np.mean(predicted == y) > 0.9


def test_pickle_round_trip_gives_identical_probabilities(tmp_path):
    X_train, X_test, y_train, _ = _split(load_iris)
    model = MLPClassifier(random_state=0).fit(X_train, y_train)
    path = tmp_path / "mlp.joblib"

    joblib.dump(model, path)
    loaded = joblib.load(path)

    assert next(loaded.network_.parameters()).device.type == "cpu"
    assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
    assert_array_equal(loaded.predict(X_test), model.predict(X_test))


def test_early_stopping_keeps_best_epoch():
    X_train, _, y_train, _ = _split(load_breast_cancer)

    model = MLPClassifier(max_epochs=200, patience=3, random_state=0, device="cpu")
    model.fit(X_train, y_train)

    curve = model.validation_loss_curve_
    assert model.n_epochs_ < 200
    assert len(curve) == len(model.loss_curve_) == model.n_epochs_
    assert model.best_validation_loss_ == min(curve)
    # training stopped exactly `patience` epochs after the best one
    assert int(np.argmin(curve)) == model.n_epochs_ - 1 - 3


@pytest.mark.parametrize(
    ("n_rows", "params"),
    [(12, {}), (200, {"early_stopping": False})],
    ids=["too-few-rows", "switched-off"],
)
def test_without_validation_split_trains_every_epoch(n_rows, params):
    X, y = _small_problem(n_rows=n_rows)

    model = MLPClassifier(max_epochs=7, random_state=0, device="cpu", **params).fit(X, y)

    assert model.n_epochs_ == 7
    assert model.validation_loss_curve_ is None
    assert model.best_validation_loss_ is None


def test_dataframe_columns_are_remembered():
    X, y = _small_problem()
    frame = pd.DataFrame(X, columns=["age", "bmi", "sbp"])
    model = MLPClassifier(random_state=0, device="cpu").fit(frame, y)

    assert_array_equal(model.feature_names_in_, ["age", "bmi", "sbp"])
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing"):
        model.predict(frame.rename(columns={"sbp": "dbp"}))


def test_single_class_is_refused():
    X, _ = _small_problem()

    with pytest.raises(PermedError, match=r"y has 1 class \('yes'\): MLPClassifier needs at"):
        MLPClassifier().fit(X, np.full(len(X), "yes"))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"hidden_layer_sizes": (64, 0)}, r"hidden_layer_sizes=\(64, 0\) must be a sequence"),
        ({"hidden_layer_sizes": "64"}, r"hidden_layer_sizes='64' must be a sequence"),
        ({"learning_rate": 0.0}, r"learning_rate=0.0 must be a finite number above 0.0"),
        ({"batch_size": 0}, r"batch_size=0 must be a positive integer"),
        ({"max_epochs": 2.5}, r"max_epochs=2.5 must be a positive integer"),
        ({"validation_fraction": 1.0}, r"validation_fraction=1.0 must be below 1"),
        ({"weight_decay": -1.0}, r"weight_decay=-1.0 must be a finite number at least 0.0"),
        ({"device": "tpu"}, r"device='tpu' is not supported"),
    ],
)
def test_bad_parameters_are_refused_at_fit(params, match):
    X, y = _small_problem()

    with pytest.raises(PermedError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_resolve_device_names_the_allowed_values():
    with pytest.raises(
        PermedError, match=r"^device='tpu' is not supported: use one of 'auto', 'cpu', 'cuda'$"
    ):
        resolve_device("tpu")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("cpu", "cpu"), ("auto", "cuda" if torch.cuda.is_available() else "cpu")],
)
def test_resolve_device(name, expected):
    assert resolve_device(name) == torch.device(expected)


def test_auto_keeps_networks_that_train_faster_on_the_cpu_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the rule, not the GPU
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("auto", prefer_cpu=True) == torch.device("cpu")
    assert resolve_device("cuda", prefer_cpu=True) == torch.device("cuda")  # asked for: given


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_cuda_without_gpu_says_what_to_use():
    with pytest.raises(PermedError, match="torch finds no CUDA device: use device='auto'"):
        resolve_device("cuda")


@pytest.mark.parametrize(
    ("hidden_layer_sizes", "expected"),
    [((64, 32, 16), [(3, 64), (64, 32), (32, 16), (16, 2)]), (8, [(3, 8), (8, 2)]), ((), [(3, 2)])],
    ids=["default", "int", "empty"],
)
def test_hidden_layer_sizes_shape_the_network(hidden_layer_sizes, expected):
    X, y = _small_problem()

    model = MLPClassifier(hidden_layer_sizes=hidden_layer_sizes, max_epochs=2, device="cpu")
    model.fit(X, y)

    linears = [layer for layer in model.network_ if isinstance(layer, torch.nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == expected
    assert model.predict_proba(X).shape == (len(X), 2)
