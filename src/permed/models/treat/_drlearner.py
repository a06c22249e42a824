"""DR-learner: doubly-robust pseudo-outcomes regressed on the features (EconML's ``DRLearner``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from econml.dr import DRLearner as _EconDRLearner
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.linear_model import LogisticRegression

from permed.models.treat._base import Floats, _TreatEstimator
from permed.models.treat._tlearner import _set_seed

__all__ = ["DRLearner"]

# Propensities are clipped to [_MIN_PROPENSITY, 1 - _MIN_PROPENSITY] in the pseudo-outcomes:
# one patient with a propensity of 1e-4 would otherwise weigh as much as ten thousand others.
_MIN_PROPENSITY = 0.01


class DRLearner(_TreatEstimator):
    """Kennedy's DR-learner with cross-fitting.

    Per arm, an augmented inverse-propensity-weighted (AIPW) pseudo-outcome is built from
    cross-fitted outcome and propensity models; ``final_model`` regresses the difference of
    pseudo-outcomes between each arm and the reference on the features. The outcome nuisance
    is one model per arm (a T-learner), not EconML's default single model with the arm as a
    feature, which a linear or shallow model would fit with the same effect for everyone.

    Parameters
    ----------
    outcome_model : scikit-learn regressor
        Nuisance outcome model, cloned per arm (required, as in EconML).
    propensity_model : scikit-learn classifier, optional
        Nuisance propensity model (default: L2 logistic regression).
    final_model : scikit-learn regressor, optional
        Regression of the pseudo-outcome differences (default: a clone of ``outcome_model``).
    cv : int, default=3
        Cross-fitting folds of the nuisance models.
    higher_is_better, reference, n_bootstrap, random_state, n_jobs
        As in :class:`~permed.models.treat.TLearner`.

    Attributes
    ----------
    arms_ : ndarray
    estimator_ : econml.dr.DRLearner
    bootstrap_estimators_ : list
    """

    def __init__(self, outcome_model: Any, *, propensity_model: Any = None,
                 final_model: Any = None, cv: int = 3, higher_is_better: bool = True,
                 reference: Any = None, n_bootstrap: int = 50,
                 random_state: int | None = None, n_jobs: int = 1) -> None:
        self.outcome_model = outcome_model
        self.propensity_model = propensity_model
        self.final_model = final_model
        self.cv = cv
        self.higher_is_better = higher_is_better
        self.reference = reference
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _fit_one(self, X: Floats, y: Floats, codes: np.ndarray, seed: int) -> Any:
        outcome = _PerArmRegressor(clone(self.outcome_model), n_arms=len(self.arms_))
        propensity = clone(LogisticRegression(max_iter=2000) if self.propensity_model is None
                           else self.propensity_model)
        final = clone(self.outcome_model if self.final_model is None else self.final_model)
        for model in (outcome.base, propensity, final):
            _set_seed(model, seed)
        learner = _EconDRLearner(model_propensity=propensity, model_regression=outcome,
                                 model_final=final, cv=self.cv, min_propensity=_MIN_PROPENSITY,
                                 random_state=seed)
        return learner.fit(y, codes, X=X)

    def _outcomes(self, fitted: Any, X: Floats) -> Floats:
        n_effects = len(self.arms_) - 1
        design = np.hstack([X, np.zeros((len(X), n_effects))])
        baseline = np.mean([m.predict(design) for m in fitted.models_regression[0]], axis=0)
        effects = np.asarray(fitted.const_marginal_effect(X)).reshape(len(X), -1)
        return np.column_stack([baseline, baseline[:, None] + effects])


class _PerArmRegressor(RegressorMixin, BaseEstimator):
    """One clone of ``base`` per arm, for EconML's ``[X, one-hot arm]`` nuisance design.

    The last ``n_arms - 1`` columns are the one-hot arm (all zero = the reference arm).
    """

    def __init__(self, base: Any, n_arms: int = 2) -> None:
        self.base = base
        self.n_arms = n_arms

    def _split(self, X: Floats) -> tuple[Floats, np.ndarray]:
        X = np.asarray(X, dtype=float)
        onehot = X[:, X.shape[1] - (self.n_arms - 1):]
        arm = np.where(onehot.any(axis=1), onehot.argmax(axis=1) + 1, 0)
        return X[:, : X.shape[1] - (self.n_arms - 1)], arm

    def fit(self, X: Floats, y: Floats, sample_weight: Floats | None = None) -> _PerArmRegressor:
        features, arm = self._split(X)
        y = np.asarray(y, dtype=float)
        self.models_ = []
        for k in range(self.n_arms):
            rows = arm == k
            model = clone(self.base)
            if sample_weight is None:
                model.fit(features[rows], y[rows])
            else:
                model.fit(features[rows], y[rows], sample_weight=np.asarray(sample_weight)[rows])
            self.models_.append(model)
        return self

    def predict(self, X: Floats) -> Floats:
        features, arm = self._split(X)
        out = np.empty(len(features))
        for k, model in enumerate(self.models_):
            rows = arm == k
            if rows.any():
                out[rows] = model.predict(features[rows])
        return out
