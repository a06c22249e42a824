"""Ridge Cox model with cubic-spline terms for the continuous predictors."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import SplineTransformer

from permed.exceptions import PermedError
from permed.models.risk._base import _SurvivalEstimator, check_positive
from permed.models.risk._cox import PenalizedCox
from permed.models.risk._outcome import survival_y

__all__ = ["SplineCox"]


class SplineCox(_SurvivalEstimator):
    """Cox proportional-hazards model with cubic B-spline terms for continuous predictors.

    Each column with more than ``linear_up_to`` distinct values in ``fit`` is replaced by a
    cubic B-spline basis with knots at its quantiles, so that its log hazard ratio may bend (a
    U-shaped effect of age, a threshold in a laboratory value: Harrell, *Regression Modeling
    Strategies*, section 2.4); the other columns (binary, one-hot levels, missing-value
    indicators, a few-valued score) enter linearly. The expanded matrix is fitted by
    :class:`PenalizedCox` (standardized, ridge penalty ``alpha``, Efron ties, Breslow
    baseline). The knots are learned in ``fit``, so inside cross-validation each fold places
    its own. Beyond the range seen in ``fit``, a predictor's effect stays at its value at the
    nearest boundary.

    Parameters
    ----------
    alpha : float, default=1.0
        Ridge penalty on the standardized coefficients of the expanded matrix.
    n_knots : int, default=4
        Knots per continuous column (at its 0, 1/(n_knots-1), ..., 1 quantiles; tied
        quantiles are merged); a column gets ``n_knots + 2`` basis functions.
    linear_up_to : int, default=10
        A column with at most this many distinct values enters linearly.
    n_iter : int, default=100
        Most Newton-Raphson iterations.
    tol : float, default=1e-9
        Convergence tolerance on the relative change of the penalized partial likelihood.

    Attributes
    ----------
    spline_columns_ : ndarray of int
        The columns expanded into a spline basis.
    linear_columns_ : ndarray of int
        The columns kept as they are.
    splines_ : list of SplineTransformer
        One fitted basis per column of ``spline_columns_``.
    cox_ : PenalizedCox
        The Cox model on ``[X[:, linear_columns_], basis of each spline column]``.
    event_times_ : ndarray
        Distinct event times seen in ``fit``.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from permed.models.risk import SplineCox, survival_y
    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([rng.normal(size=300), rng.integers(0, 2, 300)])
    >>> y = survival_y(rng.exponential(np.exp(-X[:, 0] ** 2)), rng.random(300) < 0.7)
    >>> model = SplineCox().fit(X, y)
    >>> model.spline_columns_.tolist(), model.linear_columns_.tolist()
    ([0], [1])
    >>> model.predict_survival_function(X[:2], times=[0.5, 1.0]).shape
    (2, 2)
    """

    def __init__(self, alpha: float = 1.0, n_knots: int = 4, linear_up_to: int = 10,
                 n_iter: int = 100, tol: float = 1e-9) -> None:
        self.alpha = alpha
        self.n_knots = n_knots
        self.linear_up_to = linear_up_to
        self.n_iter = n_iter
        self.tol = tol

    def _check_params(self) -> None:
        check_positive("alpha", self.alpha, allow_zero=True)
        check_positive("n_knots", self.n_knots, integer=True)
        check_positive("linear_up_to", self.linear_up_to, integer=True)
        check_positive("n_iter", self.n_iter, integer=True)
        check_positive("tol", self.tol)
        if self.n_knots < 2:
            raise PermedError(f"n_knots={self.n_knots!r} must be 2 or more (a spline needs a "
                              "first and a last knot)")

    def _fit(self, X: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        distinct = np.array([len(np.unique(column)) for column in X.T], dtype=int)
        wide = distinct > self.linear_up_to
        self.spline_columns_ = np.flatnonzero(wide)
        self.linear_columns_ = np.flatnonzero(~wide)
        self.splines_ = [self._basis(X[:, j]) for j in self.spline_columns_]
        self.cox_ = PenalizedCox(alpha=self.alpha, n_iter=self.n_iter, tol=self.tol).fit(
            self._expand(X), survival_y(time, event))

    def _basis(self, column: np.ndarray) -> SplineTransformer:
        # explicit knots: scikit-learn's knots="quantile" keeps tied quantiles (a column that
        # is 0 for most patients), which collapses the basis
        knots = np.unique(np.quantile(column, np.linspace(0.0, 1.0, int(self.n_knots))))
        return SplineTransformer(degree=3, knots=knots[:, None]).fit(column[:, None])

    def _expand(self, X: np.ndarray) -> np.ndarray:
        parts = [X[:, self.linear_columns_]]
        parts += [spline.transform(X[:, [j]])
                  for j, spline in zip(self.spline_columns_, self.splines_, strict=True)]
        return np.hstack(parts)

    def _risk(self, X: np.ndarray) -> np.ndarray:
        return self.cox_._risk(self._expand(X))

    def _survival(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.cox_._survival(self._expand(X))
