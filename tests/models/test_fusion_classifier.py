"""FusionClassifier: masking of missing modalities, seeding, shapes and input errors."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from permed.exceptions import PermedError
from permed.testing import assert_valid_proba

pytest.importorskip("torch")

from permed.models.deep._fusion import FusionClassifier, FusionInputs  # noqa: E402

SHAPES = {"table": (4,), "note": (6,), "image": (1, 12, 12)}


def _data(n: int = 80, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    X = {"table": rng.normal(size=(n, 4)) + 0.8 * y[:, None],
         "note": rng.normal(size=(n, 6)) + 0.5 * y[:, None],
         "image": rng.random((n, 1, 12, 12)) + 0.3 * y[:, None, None, None]}
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = _data()
    present = {"table": np.ones(80, bool), "note": np.arange(80) % 5 != 0,
               "image": np.arange(80) % 4 != 0}
    model = FusionClassifier(SHAPES, max_epochs=3, device="cpu", random_state=0)
    return model.fit(X, y, present=present), X, y


@pytest.mark.parametrize("modality", ["note", "image"])
def test_a_missing_modality_ignores_whatever_is_in_its_slot(fitted, modality):
    model, X, _ = fitted
    present = {modality: np.zeros(len(X["table"]), bool)}
    garbage = dict(X)
    garbage[modality] = np.full_like(X[modality], np.nan)
    garbage[modality][::2] = 1e6
    expected = model.predict_proba(X, present=present)
    np.testing.assert_array_equal(model.predict_proba(garbage, present=present), expected)
    # and the modality does matter when present
    assert np.abs(model.predict_proba(X) - expected).max() > 1e-6


def test_rows_without_finite_values_count_as_missing(fitted):
    model, X, _ = fitted
    inputs = FusionInputs.from_arrays({**X, "image": np.full_like(X["image"], np.nan)})
    assert not inputs.present["image"].any()
    np.testing.assert_array_equal(model.predict_proba(inputs),
                                  model.predict_proba(FusionInputs.from_arrays(X).without("image")))


def test_probabilities_are_valid_and_training_is_recorded(fitted):
    model, X, y = fitted
    assert_valid_proba(model.predict_proba(X), len(y), 2)
    assert model.modalities_ == ["table", "note", "image"]
    assert model.n_epochs_ == len(model.history_) <= 3
    assert set(model.history_[0]) >= {"train_loss", "validation_loss", "seconds"}
    assert len(model.validation_rows_) == 12  # 15% of 80
    assert set(model.predict(X)) <= {0, 1}


def test_same_seed_same_model():
    X, y = _data(40)
    shapes = {"table": (4,), "note": (6,)}
    first = FusionClassifier(shapes, max_epochs=2, device="cpu", random_state=3).fit(X, y)
    again = FusionClassifier(shapes, max_epochs=2, device="cpu", random_state=3).fit(X, y)
    np.testing.assert_allclose(first.predict_proba(X), again.predict_proba(X), atol=1e-6)


def test_a_single_modality_model_trains():
    X, y = _data(40)
    model = FusionClassifier({"table": (4,)}, max_epochs=2, device="cpu", random_state=0)
    assert_valid_proba(model.fit({"table": X["table"]}, y).predict_proba(X), 40, 2)


@pytest.mark.parametrize(("modalities", "X", "message"), [
    ({"genes": (3,)}, {}, re.escape("modalities={'genes': (3,)} must map some of table, note, "
                                    "image to an input shape, e.g. {'table': (12,), 'image': "
                                    "(1, 28, 28)}")),
    ({"image": (12, 12)}, {}, r"modalities\['image'\]=\(12, 12\) must be \(channels, height, "
                              r"width\) or \(channels, depth, height, width\)"),
    ({"table": (5,)}, None, r"X\['table'\] has rows of shape \(4,\); the model takes \(5,\)"),
    ({"table": (4,), "image": (1, 12, 12)}, {"table": np.zeros((4, 4))},
     "X has no 'image' array; the model takes table, image"),
])
def test_bad_inputs_say_what_to_fix(modalities, X, message):
    data, y = _data(4)
    with pytest.raises(PermedError, match=message):
        FusionClassifier(modalities, device="cpu").fit(data if X is None else X, y)


def test_one_class_is_refused():
    X, _ = _data(10)
    with pytest.raises(PermedError, match="y has 1 class .*FusionClassifier needs at least 2"):
        FusionClassifier({"table": (4,)}, device="cpu").fit({"table": X["table"]},
                                                             np.zeros(10))


def test_modality_dropout_keeps_at_least_one_present_modality():
    import torch

    from permed.models.deep._fusion import _Trainer

    trainer = SimpleNamespace(params=SimpleNamespace(modality_dropout=0.9))
    mask = torch.ones((500, 3))
    mask[:, 2] = 0  # nobody has the third modality: dropout cannot make it present
    dropped = _Trainer._dropped(trainer, mask, np.random.RandomState(0))
    assert (dropped.sum(dim=1) >= 1).all()
    assert (dropped <= mask).all()
    assert (dropped.sum(dim=1) == 1).float().mean() > 0.8  # p = 0.9: mostly one left
