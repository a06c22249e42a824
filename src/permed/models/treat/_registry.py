"""The treatment-effect estimators permed compares, and the base models they are built on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import SplineTransformer, StandardScaler

from permed.exceptions import PermedError
from permed.models._names import unknown_model
from permed.models.treat._base import _TreatEstimator
from permed.models.treat._causal_forest import CausalForest
from permed.models.treat._drlearner import DRLearner
from permed.models.treat._tlearner import TLearner
from permed.models.treat._xlearner import XLearner

__all__ = ["OUTCOME_MODELS", "PROPENSITY_MODELS", "TREAT_MODELS", "TreatFamily",
           "default_models", "make_model", "make_outcome_model", "make_propensity_model"]

_ALPHAS = np.logspace(-3, 4, 15)


def _ridge(seed: int) -> BaseEstimator:
    return make_pipeline(StandardScaler(), RidgeCV(alphas=_ALPHAS))


def _spline(seed: int) -> BaseEstimator:
    # additive cubic splines, linear beyond the training range: smooth non-linear effects of
    # each feature without the step functions of trees, penalized by cross-validated ridge
    return make_pipeline(StandardScaler(),
                         SplineTransformer(n_knots=5, degree=3, extrapolation="linear"),
                         RidgeCV(alphas=_ALPHAS))


def _lightgbm(seed: int) -> BaseEstimator:
    # the diagnose task's regularized settings (clinical-size cohorts), as a regressor
    return LGBMRegressor(n_estimators=300, learning_rate=0.03, num_leaves=7, min_child_samples=20,
                         subsample=0.8, subsample_freq=1, colsample_bytree=0.5, reg_lambda=5.0,
                         random_state=seed, n_jobs=1, verbose=-1)


OUTCOME_MODELS: dict[str, tuple[str, Callable[[int], BaseEstimator]]] = {
    "ridge": ("linear ridge regression (penalty by cross-validation)", _ridge),
    "spline": ("additive cubic splines with a ridge penalty", _spline),
    "lightgbm": ("LightGBM gradient-boosted trees (regularized)", _lightgbm),
}

PROPENSITY_MODELS: dict[str, tuple[str, Callable[[int], BaseEstimator]]] = {
    "logistic": ("L2-penalized logistic regression",
                 lambda seed: LogisticRegression(C=1.0, max_iter=5000)),
    "lightgbm": ("LightGBM classifier (regularized)",
                 lambda seed: LGBMClassifier(
                     n_estimators=200, learning_rate=0.03, num_leaves=7, min_child_samples=20,
                     subsample=0.8, subsample_freq=1, colsample_bytree=0.5, reg_lambda=5.0,
                     random_state=seed, n_jobs=1, verbose=-1)),
    "randomized": ("the arm shares (randomized assignment)",
                   lambda seed: DummyClassifier(strategy="prior")),
}


def make_outcome_model(name: str, seed: int = 0) -> BaseEstimator:
    """A fresh base regressor of one outcome family (``OUTCOME_MODELS``)."""
    return OUTCOME_MODELS[name][1](seed)


def make_propensity_model(name: str, seed: int = 0) -> BaseEstimator:
    """A fresh propensity classifier (``PROPENSITY_MODELS``)."""
    return PROPENSITY_MODELS[name][1](seed)


@dataclass(frozen=True)
class TreatFamily:
    """How to build one treatment-effect estimator from its base models."""

    name: str
    description: str
    build: Callable[[BaseEstimator, BaseEstimator, int], _TreatEstimator]


TREAT_MODELS: dict[str, TreatFamily] = {
    f.name: f
    for f in (
        TreatFamily("t_learner", "T-learner: one outcome model per arm",
                    lambda outcome, propensity, seed: TLearner(outcome, random_state=seed)),
        TreatFamily("x_learner", "X-learner: imputed effects blended by the propensity",
                    lambda outcome, propensity, seed: XLearner(
                        outcome, propensity_model=propensity, random_state=seed)),
        TreatFamily("dr_learner", "DR-learner: doubly-robust pseudo-outcomes, cross-fitted",
                    lambda outcome, propensity, seed: DRLearner(
                        outcome, propensity_model=propensity, random_state=seed)),
        TreatFamily("causal_forest", "causal forest (generalized random forest, EconML)",
                    lambda outcome, propensity, seed: CausalForest(
                        outcome, propensity_model=propensity, random_state=seed)),
    )
}


def default_models() -> list[str]:
    """The estimators compared when ``--models`` is not given."""
    return list(TREAT_MODELS)


def make_model(name: str, seed: int = 0, outcome: str = "lightgbm",
               propensity: str = "logistic", params: dict[str, Any] | None = None
               ) -> _TreatEstimator:
    """A fresh, unfitted treatment-effect estimator.

    Parameters
    ----------
    name : str
        A key of ``TREAT_MODELS``: ``t_learner``, ``x_learner``, ``dr_learner``,
        ``causal_forest``.
    seed : int
    outcome : str
        Base regressor family (``OUTCOME_MODELS``).
    propensity : str
        Propensity model (``PROPENSITY_MODELS``; ``randomized`` for known arm shares).
    params : dict, optional
        Estimator parameters to set (e.g. ``{"n_bootstrap": 0}``).

    Raises
    ------
    PermedError
        For an unknown name.
    """
    if name not in TREAT_MODELS:
        raise PermedError(unknown_model("treat", name, TREAT_MODELS))
    estimator = TREAT_MODELS[name].build(make_outcome_model(outcome, seed),
                                         make_propensity_model(propensity, seed), seed)
    valid = estimator.get_params()
    return estimator.set_params(**{k: v for k, v in (params or {}).items() if k in valid})
