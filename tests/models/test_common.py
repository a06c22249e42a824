"""Checks run over every permed estimator: scikit-learn's own suite and permed.testing's."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.datasets import make_classification
from sklearn.utils.estimator_checks import check_estimator

import permed.models
from permed.models.diagnose import available_models, make_model
from permed.testing import assert_valid_proba


def _permed_estimators() -> list[type]:
    found = {}
    for module in pkgutil.walk_packages(permed.models.__path__, "permed.models."):
        try:
            loaded = importlib.import_module(module.name)
        except ImportError:  # an optional extra that is not installed
            continue
        for name, cls in inspect.getmembers(loaded, inspect.isclass):
            if (issubclass(cls, BaseEstimator) and cls.__module__.startswith("permed")
                    and not name.startswith("_") and not inspect.isabstract(cls)):
                found[f"{cls.__module__}.{name}"] = cls
    return [found[k] for k in sorted(found)]


def test_estimators_are_discovered():
    assert _permed_estimators(), "no permed estimator found under permed.models"


@pytest.mark.parametrize("cls", _permed_estimators(), ids=lambda c: c.__name__)
def test_scikit_learn_estimator_checks(cls):
    results = check_estimator(cls(), on_fail=None, on_skip=None)
    assert [r["check_name"] for r in results if r["status"] == "failed"] == []


@pytest.mark.parametrize("name", available_models())
@pytest.mark.parametrize("n_classes", [2, 3])
def test_diagnose_families_give_valid_probabilities(name, n_classes):
    X, y = make_classification(120, 6, n_informative=4, n_classes=n_classes, class_sep=2.0,
                               random_state=0)
    proba = make_model(name, seed=0, device="cpu").fit(X, y).predict_proba(X)
    assert_valid_proba(proba, 120, n_classes)
    assert np.mean(proba.argmax(axis=1) == y) > 0.7
