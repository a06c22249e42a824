"""The CNN image classifier: contract, learning a synthetic signal, 3-D, ONNX, Grad-CAM."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from permed.exceptions import PermedError
from permed.testing import assert_valid_proba

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from permed.explain._saliency import grad_cam, saliency_png  # noqa: E402
from permed.models.deep import CNNClassifier  # noqa: E402
from permed.preprocess._augment import make_augmentation  # noqa: E402


def _squares(n: int, size: int, dims: int = 2, seed: int = 0):
    """Noise images; class 1 has a bright square in its top-left corner (a learnable truth)."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, 1, *([size] * dims)), dtype=np.float32) * 0.3
    y = np.arange(n) % 2
    for i in np.flatnonzero(y == 1):
        X[(i, 0, *([slice(0, size // 2)] * dims))] += 0.7
    return X, np.where(y == 1, "sick", "healthy")


@pytest.fixture(scope="module")
def fitted():
    X, y = _squares(100, 16)
    model = CNNClassifier((1, 16, 16), max_epochs=12, batch_size=16, device="cpu",
                          random_state=0).fit(X, y)
    return model, X, y


def test_learns_a_synthetic_signal_and_gives_valid_probabilities(fitted):
    model, X, y = fitted
    proba = model.predict_proba(X)
    assert_valid_proba(proba, len(X), 2)
    assert model.classes_.tolist() == ["healthy", "sick"]
    assert (model.predict(X) == y).mean() >= 0.9  # the bright square is easy to find
    assert model.n_epochs_ == len(model.history_)
    assert 1 <= model.best_epoch_ <= model.n_epochs_
    assert len(model.validation_rows_) == 10  # 10% of 100, stratified, for early stopping
    flat = model.predict_proba(X.reshape(len(X), -1))  # flattened rows are reshaped
    np.testing.assert_allclose(flat, proba)


def test_same_seed_same_model():
    X, y = _squares(24, 8)
    first = CNNClassifier((1, 8, 8), max_epochs=2, device="cpu", random_state=3).fit(X, y)
    second = CNNClassifier((1, 8, 8), max_epochs=2, device="cpu", random_state=3).fit(X, y)
    np.testing.assert_allclose(first.predict_proba(X), second.predict_proba(X), atol=1e-6)


def test_contract_clone_and_not_fitted():
    model = CNNClassifier((1, 8, 8), width=4)
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict_proba(np.zeros((1, 1, 8, 8), np.float32))


@pytest.mark.parametrize(("params", "message"), [
    ({"image_shape": (28, 28)}, r"image_shape=\(28, 28\) must be \(channels, height, width\) or "
                                r"\(channels, depth, height, width\), e.g. \(1, 28, 28\)"),
    ({"architecture": "vit"}, "architecture='vit' is not known; use one of resnet, densenet"),
    ({"max_epochs": 0}, "max_epochs=0 must be a positive integer"),
    ({"validation_fraction": 1.5}, r"validation_fraction=1.5 must be in \(0, 1\)"),
])
def test_bad_parameters_are_refused(params, message):
    X, y = _squares(12, 8)
    with pytest.raises(PermedError, match=message):
        CNNClassifier(**{"image_shape": (1, 8, 8), **params}).fit(X, y)


def test_wrong_image_shape_and_single_class():
    X, y = _squares(12, 8)
    with pytest.raises(PermedError, match=r"X has images of shape \(1, 8, 8\); the model takes "
                                          r"\(1, 16, 16\) \(image_shape\)"):
        CNNClassifier((1, 16, 16)).fit(X, y)
    with pytest.raises(PermedError, match=r"y has 1 class \('a'\): CNNClassifier needs at least "
                                          "2 classes"):
        CNNClassifier((1, 8, 8)).fit(X, np.full(12, "a"))


@pytest.mark.parametrize(("architecture", "size"), [("resnet", 8), ("densenet", 16)])
def test_three_dimensional_volumes(architecture, size):
    X, y = _squares(12, size, dims=3)  # DenseNet halves the size 4 times: 16 voxels at least
    model = CNNClassifier((1, size, size, size), architecture=architecture, width=4,
                          max_epochs=1, device="cpu", random_state=0).fit(X, y)
    assert_valid_proba(model.predict_proba(X), 12, 2)
    cam = grad_cam(model, X[0])
    assert cam.shape == (size, size, size)
    assert saliency_png(X[0], cam).startswith(b"\x89PNG")


def test_onnx_export_matches_torch(fitted):
    onnxruntime = pytest.importorskip("onnxruntime")
    model, X, _ = fitted
    content, difference = model.to_onnx(X[:8])
    assert difference <= 1e-4
    session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
    (proba,) = session.run(None, {"image": X[8:20]})  # a batch size not seen at export
    np.testing.assert_allclose(proba, model.predict_proba(X[8:20]), atol=1e-4)


def test_grad_cam_points_at_the_signal(fitted):
    model, X, y = fitted
    sick = np.flatnonzero(y == "sick")
    cams = np.stack([grad_cam(model, X[i], target=1) for i in sick])
    assert cams.shape == (len(sick), 16, 16)
    assert cams.min() >= 0.0
    assert cams.max() <= 1.0
    png = saliency_png(X[sick[0]], cams[0], title="sick (p = 0.9)")
    assert png.startswith(b"\x89PNG")


def test_augmentation_is_seeded_and_keeps_shape():
    batch = torch.rand(6, 1, 12, 12)
    first = make_augmentation(2, seed=1)(batch)
    assert first.shape == batch.shape
    torch.testing.assert_close(first, make_augmentation(2, seed=1)(batch))
    assert not torch.equal(first, batch)
    no_change = make_augmentation(2, seed=1, prob=0.0, flip=False)(batch)
    torch.testing.assert_close(no_change, batch, atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: GPU + AMP path")
def test_cuda_training_uses_mixed_precision():
    X, y = _squares(24, 8)
    model = CNNClassifier((1, 8, 8), max_epochs=1, device="auto", random_state=0).fit(X, y)
    assert model.device_.startswith("cuda")
    assert model.amp_
    assert_valid_proba(model.predict_proba(X), 24, 2)  # scored on the CPU
