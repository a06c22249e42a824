"""Differentially private MLP (Opacus): the scikit-learn contract, epsilon reported and honoured."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.utils.estimator_checks import check_estimator

pytest.importorskip("opacus", reason="the dp extra (opacus) is not installed")

from permed.privacy import DPMLPClassifier  # noqa: E402
from permed.testing import assert_valid_proba  # noqa: E402

X, y = make_classification(300, 6, n_informative=4, class_sep=2.0, random_state=0)


def test_scikit_learn_estimator_checks():
    results = check_estimator(DPMLPClassifier(max_epochs=2), on_fail=None, on_skip=None)
    assert [r["check_name"] for r in results if r["status"] == "failed"] == []


def test_epsilon_is_reported_and_the_model_learns():
    model = DPMLPClassifier(max_epochs=5, random_state=0).fit(X, y)
    proba = model.predict_proba(X)
    assert_valid_proba(proba, 300, 2)
    assert np.mean(proba.argmax(axis=1) == y) > 0.8
    assert model.delta_ == pytest.approx(1e-5)
    assert 0 < model.epsilon_ < 50
    assert model.privacy_["epsilon"] == pytest.approx(model.epsilon_, abs=1e-4)
    assert model.privacy_["covers"] == "the network weights only"


def test_more_noise_spends_less_privacy():
    low = DPMLPClassifier(max_epochs=3, noise_multiplier=0.8, random_state=0).fit(X, y)
    high = DPMLPClassifier(max_epochs=3, noise_multiplier=2.0, random_state=0).fit(X, y)
    assert high.epsilon_ < low.epsilon_


def test_a_target_epsilon_is_not_exceeded():
    model = DPMLPClassifier(max_epochs=3, target_epsilon=1.0, random_state=0).fit(X, y)
    assert model.epsilon_ <= 1.0 + 1e-3
    assert model.privacy_["noise_multiplier"] > 1.0


def test_same_seed_same_model():
    first = DPMLPClassifier(max_epochs=2, random_state=3).fit(X, y).predict_proba(X)
    again = clone(DPMLPClassifier(max_epochs=2, random_state=3)).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, again)
