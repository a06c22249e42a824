"""T-learner: one outcome model per arm (EconML's ``TLearner``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from econml.metalearners import TLearner as _EconTLearner
from sklearn.base import clone

from permed.models.treat._base import Floats, _TreatEstimator

__all__ = ["TLearner"]


class TLearner(_TreatEstimator):
    """Effects as differences between per-arm outcome models.

    Each arm gets its own clone of ``outcome_model``, fitted on that arm's patients; the
    expected outcome under arm ``k`` is model ``k``'s prediction. Simple and unbiased when each
    arm is large, but every arm's noise goes into the effect.

    Parameters
    ----------
    outcome_model : scikit-learn regressor
        Base model, cloned for each arm (required: a meta-estimator takes its base learner, as
        in EconML; ``permed.models.treat.make_model("t_learner", ...)`` builds permed's default).
    higher_is_better : bool, default=True
        Direction of a good outcome, for :meth:`recommend`.
    reference : arm label, optional
        The arm effects are measured against (default: the first label in sorted order).
    n_bootstrap : int, default=50
        Refits on arm-stratified bootstrap resamples for the intervals (0: no intervals).
    random_state : int, optional
    n_jobs : int, default=1
        Parallel bootstrap refits.

    Attributes
    ----------
    arms_ : ndarray
        The arms, reference first.
    estimator_ : econml.metalearners.TLearner
    bootstrap_estimators_ : list

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2)); t = rng.integers(0, 2, 200)
    >>> y = X[:, 0] + t * (1 + X[:, 1]) + rng.normal(scale=0.1, size=200)
    >>> model = TLearner(LinearRegression(), n_bootstrap=20, random_state=0).fit(X, y, t)
    >>> model.effect(np.array([[0.0, 1.0]])).round(1)
    array([[2.]])
    """

    def __init__(self, outcome_model: Any, *, higher_is_better: bool = True,
                 reference: Any = None, n_bootstrap: int = 50,
                 random_state: int | None = None, n_jobs: int = 1) -> None:
        self.outcome_model = outcome_model
        self.higher_is_better = higher_is_better
        self.reference = reference
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _fit_one(self, X: Floats, y: Floats, codes: np.ndarray, seed: int) -> Any:
        model = clone(self.outcome_model)
        _set_seed(model, seed)
        return _EconTLearner(models=model).fit(y, codes, X=X)

    def _outcomes(self, fitted: Any, X: Floats) -> Floats:
        return np.column_stack([m.predict(X) for m in fitted.models])


def _set_seed(model: Any, seed: int) -> None:
    """Seed every ``random_state`` parameter of a (possibly nested) scikit-learn model."""
    params = {k: seed for k in model.get_params() if k.endswith("random_state")}
    if params:
        model.set_params(**params)
