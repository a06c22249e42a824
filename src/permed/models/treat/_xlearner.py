"""X-learner: imputed effects, regressed and blended by the propensity (EconML's ``XLearner``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from econml.metalearners import XLearner as _EconXLearner
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from permed.models.treat._base import Floats, _TreatEstimator
from permed.models.treat._tlearner import _set_seed

__all__ = ["XLearner"]


class XLearner(_TreatEstimator):
    """Künzel et al.'s X-learner.

    Per-arm outcome models first (as the T-learner); each patient's effect is then imputed
    from the other arm's model, regressed on the features by ``effect_model`` in both arms,
    and the two regressions are blended with the propensity. It borrows strength from the
    larger arm, which helps when arms are unbalanced.

    Parameters
    ----------
    outcome_model : scikit-learn regressor
        First-stage model, cloned per arm (required, as in EconML).
    effect_model : scikit-learn regressor, optional
        Second-stage model of the imputed effects (default: a clone of ``outcome_model``).
    propensity_model : scikit-learn classifier, optional
        Blending weights (default: L2 logistic regression; pass
        ``sklearn.dummy.DummyClassifier(strategy="prior")`` for a randomized trial).
    higher_is_better, reference, n_bootstrap, random_state, n_jobs
        As in :class:`TLearner`.

    Attributes
    ----------
    arms_ : ndarray
    estimator_ : econml.metalearners.XLearner
    bootstrap_estimators_ : list
    """

    def __init__(self, outcome_model: Any, *, effect_model: Any = None,
                 propensity_model: Any = None, higher_is_better: bool = True,
                 reference: Any = None, n_bootstrap: int = 50,
                 random_state: int | None = None, n_jobs: int = 1) -> None:
        self.outcome_model = outcome_model
        self.effect_model = effect_model
        self.propensity_model = propensity_model
        self.higher_is_better = higher_is_better
        self.reference = reference
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _fit_one(self, X: Floats, y: Floats, codes: np.ndarray, seed: int) -> Any:
        effect = self.outcome_model if self.effect_model is None else self.effect_model
        propensity = (LogisticRegression(max_iter=2000) if self.propensity_model is None
                      else self.propensity_model)
        models = [clone(m) for m in (self.outcome_model, effect, propensity)]
        for model in models:
            _set_seed(model, seed)
        outcome, effect, propensity = models
        return _EconXLearner(models=outcome, cate_models=effect,
                             propensity_model=propensity).fit(y, codes, X=X)

    def _outcomes(self, fitted: Any, X: Floats) -> Floats:
        baseline = fitted.models[0].predict(X)
        effects = np.asarray(fitted.const_marginal_effect(X)).reshape(len(X), -1)
        return np.column_stack([baseline, baseline[:, None] + effects])
