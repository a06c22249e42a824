"""Checks run over every permed estimator: scikit-learn's own suite and permed.testing's."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.datasets import make_classification
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import check_estimator

import permed.models
from permed.models import risk, treat
from permed.models.diagnose import available_models, make_model
from permed.testing import (
    assert_effect_shapes,
    assert_valid_absolute_risk,
    assert_valid_proba,
    assert_valid_survival,
)


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


def _needs_arguments(cls: type) -> bool:
    """Meta-estimators that take their base model (treat, as in EconML) cannot be built bare."""
    return any(p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD
               and p.kind is not p.VAR_POSITIONAL and p.name != "self"
               for p in inspect.signature(cls.__init__).parameters.values())


@pytest.mark.parametrize("cls", [c for c in _permed_estimators() if not _needs_arguments(c)],
                         ids=lambda c: c.__name__)
def test_scikit_learn_estimator_checks(cls):
    results = check_estimator(cls(), on_fail=None, on_skip=None)
    assert [r["check_name"] for r in results if r["status"] == "failed"] == []


@pytest.mark.parametrize("name", available_models())
@pytest.mark.parametrize("n_classes", [2, 3])
def test_diagnose_families_give_valid_probabilities(name, n_classes):
    X, y = make_classification(120, 6, n_informative=4, n_classes=n_classes, class_sep=2.0,
                               random_state=0)
    model = make_model(name, seed=0, device="cpu")
    if n_classes > 2 and not get_tags(model).classifier_tags.multi_class:
        with pytest.raises(ValueError, match="Only binary classification is supported"):
            model.fit(X, y)
        return
    proba = model.fit(X, y).predict_proba(X)
    assert_valid_proba(proba, 120, n_classes)
    assert np.mean(proba.argmax(axis=1) == y) > 0.7


@pytest.mark.parametrize("name", risk.available_models())
def test_risk_families_give_valid_survival_curves(name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 5))
    time, censor = rng.exponential(np.exp(-X[:, 0])), rng.exponential(2.0, 150)
    y = risk.survival_y(np.minimum(time, censor), time <= censor)
    model = risk.make_model(name, seed=0, device="cpu").fit(X, y)
    survival = model.predict_survival_function(X, np.quantile(y["time"], [0.1, 0.3, 0.5, 0.9]))
    assert_valid_survival(survival, 150, 4)
    assert_valid_absolute_risk(1.0 - survival)
    assert model.score(X, y) > 0.6  # risk score: higher for earlier events


@pytest.mark.parametrize("name", list(treat.TREAT_MODELS))
@pytest.mark.parametrize("n_arms", [2, 3])
def test_treat_estimators_give_consistent_effects(name, n_arms):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 4))
    arm = np.asarray(["A", "B", "C"])[rng.integers(0, n_arms, 240)]
    y = X[:, 0] + (arm == "B") * (1 + X[:, 1]) + (arm == "C") * 2 + rng.normal(size=240)
    params = {"n_bootstrap": 10, "n_estimators": 100}
    model = treat.make_model(name, seed=0, outcome="ridge", params=params).fit(X, y, arm)
    assert_effect_shapes(model, X[:20], n_arms)
    assert list(model.arms_) == ["A", "B", "C"][:n_arms]
    assert np.corrcoef(model.effect(X)[:, 0], 1 + X[:, 1])[0, 1] > 0.8


def test_treat_estimators_need_their_base_model():
    with pytest.raises(TypeError, match="outcome_model"):
        treat.TLearner()
