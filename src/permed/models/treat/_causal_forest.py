"""Causal forest with confidence intervals (EconML's ``CausalForestDML``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from econml.dml import CausalForestDML
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from permed.models.treat._base import Floats, _TreatEstimator
from permed.models.treat._grf import predict_and_var
from permed.models.treat._tlearner import _set_seed

__all__ = ["CausalForest"]


class CausalForest(_TreatEstimator):
    """Generalized random forest on orthogonalized (residualized) outcomes and arms.

    The outcome and the arm indicators are residualized on the features with cross-fitted
    nuisance models; an honest forest then finds, around each patient, the neighbours whose
    residuals give the local effect (Athey, Tibshirani & Wager 2019). Intervals come from the
    forest's bootstrap of little bags, for any contrast of arms (no refits).

    The expected outcome under arm ``k`` is ``m(x) + sum_j (1[j = k] - e_j(x)) tau_j(x)``, with
    ``m`` the outcome nuisance (E[y | x]) and ``e`` the propensities; its interval carries the
    forest's uncertainty about the effects (taken as uncorrelated between arms, see
    ``_contrast``), not the (smaller) uncertainty of ``m``.

    Parameters
    ----------
    outcome_model : scikit-learn regressor
        Nuisance model of E[y | x] (required, as in EconML's meta-learners).
    propensity_model : scikit-learn classifier, optional
        Nuisance model of the arm (default: L2 logistic regression).
    n_estimators : int, default=500
        Trees (rounded up to a multiple of ``subforest_size`` = 4).
    min_samples_leaf : int, default=10
    max_samples : float, default=0.45
        Share of patients per tree (below 0.5, as the little bags need).
    cv : int, default=3
        Cross-fitting folds of the nuisance models.
    higher_is_better, reference, random_state, n_jobs
        As in :class:`~permed.models.treat.TLearner`.

    Attributes
    ----------
    arms_ : ndarray
    estimator_ : econml.dml.CausalForestDML
    """

    def __init__(self, outcome_model: Any, *, propensity_model: Any = None,
                 n_estimators: int = 500, min_samples_leaf: int = 10, max_samples: float = 0.45,
                 cv: int = 3, higher_is_better: bool = True, reference: Any = None,
                 random_state: int | None = None, n_jobs: int = 1) -> None:
        self.outcome_model = outcome_model
        self.propensity_model = propensity_model
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_samples = max_samples
        self.cv = cv
        self.higher_is_better = higher_is_better
        self.reference = reference
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _fit_one(self, X: Floats, y: Floats, codes: np.ndarray, seed: int) -> Any:
        outcome = clone(self.outcome_model)
        propensity = clone(LogisticRegression(max_iter=2000) if self.propensity_model is None
                           else self.propensity_model)
        for model in (outcome, propensity):
            _set_seed(model, seed)
        trees = int(np.ceil(self.n_estimators / 4) * 4)
        forest = CausalForestDML(model_y=outcome, model_t=propensity, discrete_treatment=True,
                                 cv=self.cv, n_estimators=trees,
                                 min_samples_leaf=self.min_samples_leaf,
                                 max_samples=self.max_samples, inference=True,
                                 random_state=seed, n_jobs=self.n_jobs)
        forest.fit(y, codes, X=X)
        # predictions for a few patients run faster on one thread than through joblib's pool
        # (ACTG 175: 0.8 s -> see benchmarks/treat.py for one patient's latency)
        for grf in getattr(forest.model_final_, "estimators_", [forest.model_final_]):
            grf.n_jobs = 1
        return forest

    def _nuisance(self, fitted: Any, X: Floats) -> tuple[Floats, Floats]:
        mean = np.mean([m.predict(X) for m in fitted.models_y[0]], axis=0)
        propensity = np.mean([m.predict_proba(X) for m in fitted.models_t[0]], axis=0)
        return mean, propensity

    def _outcomes(self, fitted: Any, X: Floats) -> Floats:
        mean, propensity = self._nuisance(fitted, X)
        effects = np.column_stack([np.zeros(len(X)), np.asarray(
            fitted.const_marginal_effect(X)).reshape(len(X), -1)])
        centred = effects - np.sum(propensity * effects, axis=1, keepdims=True)
        return mean[:, None] + centred

    def _contrast(self, X: Floats, weights: Floats) -> tuple[Floats, Floats]:
        mean, propensity = self._nuisance(self.estimator_, X)
        # One pass of the forest gives every effect and its variance. The little bags'
        # covariances between arms are not used: they are often not positive semi-definite
        # (42% of ACTG 175 patients with 500 trees, still 21% with 2,000), so the effects are
        # treated as uncorrelated. For a difference between two arms that share the reference
        # arm (positively correlated effects) that is conservative.
        theta, cov = predict_and_var(self.estimator_.model_final_, X)
        d = len(self.arms_) - 1
        theta = np.reshape(theta, (len(X), d))
        var = np.maximum(np.diagonal(np.reshape(cov, (len(X), d, d)), axis1=1, axis2=2), 0.0)
        effects = np.column_stack([np.zeros(len(X)), theta])
        outcomes = mean[:, None] + effects - np.sum(propensity * effects, axis=1, keepdims=True)
        point = np.einsum("mnk,nk->mn", weights, outcomes)
        # w . mu = sum(w) m(x) + (w - sum(w) e(x)) . tau
        projector = (weights - weights.sum(axis=2, keepdims=True) * propensity[None])[:, :, 1:]
        return point, np.sqrt(np.einsum("mni,ni->mn", projector ** 2, var))

    def _fit_bootstrap(self, X: Floats, y: Floats, codes: np.ndarray, seed: int) -> list[Any]:
        return []  # the forest's own little bags give the intervals
