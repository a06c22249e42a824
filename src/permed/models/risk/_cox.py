"""Penalized Cox proportional-hazards model (scikit-survival), in permed's risk vocabulary."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from sksurv.linear_model import CoxPHSurvivalAnalysis

from permed.models.risk._base import _SurvivalEstimator, breslow_survival, check_positive
from permed.models.risk._outcome import survival_y

__all__ = ["PenalizedCox"]


class PenalizedCox(_SurvivalEstimator):
    """Cox proportional-hazards model with a ridge (L2) penalty.

    Features are standardized, then ``sksurv.linear_model.CoxPHSurvivalAnalysis`` maximizes
    the partial likelihood (Efron's handling of tied times) minus
    ``alpha / 2 * ||coef||^2``; the baseline hazard is Breslow's estimator. The penalty keeps
    the fit finite with collinear or one-hot encoded features, where the plain Cox model
    diverges.

    ``y`` is ``sksurv.util.Surv.from_arrays(event, time)``; a plain 1-D array is read as event
    times with nobody censored (what scikit-learn's estimator checks pass).

    Parameters
    ----------
    alpha : float, default=1.0
        Ridge penalty on the standardized coefficients (0 = unpenalized Cox).
    n_iter : int, default=100
        Most Newton-Raphson iterations.
    tol : float, default=1e-9
        Convergence tolerance on the relative change of the penalized partial likelihood.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Log hazard ratio per standard deviation of each feature.
    scaler_ : StandardScaler
    event_times_ : ndarray
        Distinct event times seen in ``fit``.
    baseline_times_, baseline_cumulative_hazard_ : ndarray
        Breslow's cumulative baseline hazard (at standardized features equal to 0).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from permed.models.risk import PenalizedCox, survival_y
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = survival_y(rng.exponential(np.exp(-X[:, 0])), rng.random(200) < 0.7)
    >>> model = PenalizedCox().fit(X, y)
    >>> model.predict_survival_function(X[:2], times=[0.5, 1.0]).shape
    (2, 2)
    """

    def __init__(self, alpha: float = 1.0, n_iter: int = 100, tol: float = 1e-9) -> None:
        self.alpha = alpha
        self.n_iter = n_iter
        self.tol = tol

    def _check_params(self) -> None:
        check_positive("alpha", self.alpha, allow_zero=True)
        check_positive("n_iter", self.n_iter, integer=True)
        check_positive("tol", self.tol)

    def _fit(self, X: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        self.scaler_ = StandardScaler().fit(X)
        model = CoxPHSurvivalAnalysis(alpha=self.alpha, ties="efron", n_iter=self.n_iter,
                                      tol=self.tol)
        with warnings.catch_warnings():
            # a slow convergence on tiny or degenerate data is still a usable ridge fit
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(self.scaler_.transform(X), survival_y(time, event))
        self.coef_ = np.asarray(model.coef_, dtype=np.float64)
        baseline = model.cum_baseline_hazard_
        self.baseline_times_ = np.asarray(baseline.x, dtype=np.float64)
        self.baseline_cumulative_hazard_ = np.asarray(baseline.y, dtype=np.float64)

    def _risk(self, X: np.ndarray) -> np.ndarray:
        return self.scaler_.transform(X) @ self.coef_

    def _survival(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return breslow_survival(self.baseline_times_, self.baseline_cumulative_hazard_,
                                self._risk(X))
