"""Gradient-boosted Cox model: LightGBM trees on the partial likelihood."""

from __future__ import annotations

import numpy as np
from lightgbm import LGBMRegressor
from sksurv.linear_model.coxph import BreslowEstimator

from permed.models.risk._base import _SurvivalEstimator, breslow_survival, check_positive

__all__ = ["SurvivalBoosting", "cox_gradient"]


def cox_gradient(signed_time: np.ndarray, log_hazard: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian diagonal of Cox's negative log partial likelihood (Breslow ties).

    A LightGBM objective: ``signed_time`` is the follow-up time, positive for an event and
    negative for a censored patient (the convention of XGBoost's ``survival:cox``).

    Parameters
    ----------
    signed_time : ndarray of shape (n,)
    log_hazard : ndarray of shape (n,)
        Current raw scores.

    Returns
    -------
    grad, hess : ndarray of shape (n,)

    Notes
    -----
    With ``w = exp(eta)``, risk-set sums ``S(t) = sum over t_k >= t of w_k`` and ``d(t)``
    events at ``t``: ``grad_k = w_k A(t_k) - delta_k`` and ``hess_k = w_k A(t_k) - w_k^2
    B(t_k)``, where ``A(t) = sum over event times s <= t of d(s)/S(s)`` and ``B`` the same with
    ``S(s)^2``. Computed in O(n log n) with cumulative sums over the distinct times.
    """
    time = np.abs(signed_time)
    event = (signed_time > 0).astype(np.float64)
    weight = np.exp(log_hazard - log_hazard.max())  # the common factor cancels out
    unique, index = np.unique(time, return_inverse=True)
    at_risk = np.cumsum(np.bincount(index, weights=weight, minlength=len(unique))[::-1])[::-1]
    deaths = np.bincount(index, weights=event, minlength=len(unique))
    first = np.cumsum(deaths / at_risk)[index]
    second = np.cumsum(deaths / at_risk**2)[index]
    grad = weight * first - event
    hess = np.maximum(weight * first - weight**2 * second, 1e-16)
    return grad, hess


def _cox_objective(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return cox_gradient(np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, np.float64))


class SurvivalBoosting(_SurvivalEstimator):
    """Gradient-boosted Cox proportional-hazards model with LightGBM trees.

    LightGBM grows trees on the gradient and Hessian of Cox's negative log partial likelihood
    (:func:`cox_gradient`); the sum of the trees is the log hazard ratio, and the baseline
    hazard is Breslow's estimator on the training scores, so survival curves are
    ``exp(-H0(t) * exp(score))``.

    scikit-survival's ``GradientBoostingSurvivalAnalysis`` fits the same model with
    scikit-learn trees, but its Cox gradient costs O(n^2) per tree: on 5,700 SUPPORT patients
    one fit of 100 trees took 60 s against under 2 s here.

    ``y`` is ``sksurv.util.Surv.from_arrays(event, time)``; a plain 1-D array is read as event
    times with nobody censored (what scikit-learn's estimator checks pass).

    Parameters
    ----------
    n_estimators : int, default=200
    learning_rate : float, default=0.03
    num_leaves : int, default=7
    min_child_samples : int, default=20
    subsample : float, default=0.8
        Share of patients drawn for each tree.
    colsample_bytree : float, default=0.8
    reg_lambda : float, default=1.0
        L2 penalty on the leaf values.
    n_jobs : int, default=1
    random_state : int, RandomState instance or None, default=None

    Attributes
    ----------
    booster_ : lightgbm.LGBMRegressor
    baseline_times_, baseline_cumulative_hazard_ : ndarray
        Breslow's cumulative baseline hazard.
    event_times_ : ndarray
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from permed.models.risk import SurvivalBoosting, survival_y
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3))
    >>> y = survival_y(rng.exponential(np.exp(-X[:, 0])), rng.random(300) < 0.7)
    >>> SurvivalBoosting(random_state=0).fit(X, y).score(X, y) > 0.6
    True
    """

    def __init__(self, n_estimators: int = 200, learning_rate: float = 0.03,
                 num_leaves: int = 7, min_child_samples: int = 20, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, reg_lambda: float = 1.0, n_jobs: int = 1,
                 random_state=None) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _check_params(self) -> None:
        check_positive("n_estimators", self.n_estimators, integer=True)
        check_positive("learning_rate", self.learning_rate)
        check_positive("num_leaves", self.num_leaves, integer=True)
        check_positive("reg_lambda", self.reg_lambda, allow_zero=True)

    def _fit(self, X: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        seed = self.random_state
        if isinstance(seed, np.random.RandomState):
            seed = int(seed.randint(np.iinfo(np.int32).max))
        self.booster_ = LGBMRegressor(
            objective=_cox_objective, n_estimators=self.n_estimators,
            learning_rate=self.learning_rate, num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples, subsample=self.subsample,
            subsample_freq=1 if self.subsample < 1 else 0,
            colsample_bytree=self.colsample_bytree, reg_lambda=self.reg_lambda,
            min_child_weight=1e-6, n_jobs=self.n_jobs, random_state=seed, verbose=-1,
            # small tables: keep features LightGBM cannot split yet (else it stops with a fatal
            # "no feature" error) and grow constant trees instead
            feature_pre_filter=False)
        signed = np.where(event, time, -time)
        # a censored time of exactly 0 has no sign to carry: it is at risk for no event anyway
        signed[(~event) & (time == 0)] = -np.finfo(np.float64).tiny
        self.booster_.fit(X, signed)
        baseline = BreslowEstimator().fit(self._risk(X), event, time)
        self.baseline_times_ = np.asarray(baseline.cum_baseline_hazard_.x, dtype=np.float64)
        self.baseline_cumulative_hazard_ = np.asarray(baseline.cum_baseline_hazard_.y,
                                                      dtype=np.float64)

    def _risk(self, X: np.ndarray) -> np.ndarray:
        return self.booster_.predict(X)

    def _survival(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return breslow_survival(self.baseline_times_, self.baseline_cumulative_hazard_,
                                self._risk(X))
