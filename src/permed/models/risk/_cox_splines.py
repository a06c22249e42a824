"""Ridge Cox model with restricted cubic-spline terms for the continuous predictors."""

from __future__ import annotations

import numpy as np

from permed.exceptions import PermedError
from permed.models.risk._base import _SurvivalEstimator, check_positive
from permed.models.risk._cox import PenalizedCox
from permed.models.risk._outcome import survival_y

__all__ = ["SplineCox"]

# Harrell's default knot quantiles for k knots (Regression Modeling Strategies, 2nd ed.,
# section 2.4.6, Table 2.3; rms::rcspline.eval): the outer knots at the 5th and 95th
# percentiles (10th and 90th for 3 knots), so that a handful of extreme patients do not
# place a knot of their own.
KNOT_QUANTILES = {
    3: (0.10, 0.50, 0.90),
    4: (0.05, 0.35, 0.65, 0.95),
    5: (0.05, 0.275, 0.50, 0.725, 0.95),
    6: (0.05, 0.23, 0.41, 0.59, 0.77, 0.95),
}


def restricted_cubic_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Harrell's restricted (natural) cubic spline basis of ``x`` with the given knots.

    Returns ``x`` and ``k - 2`` truncated-power terms for ``k`` knots ``t_1 < ... < t_k``,

    ``((x - t_j)_+^3 - (x - t_{k-1})_+^3 (t_k - t_j) / (t_k - t_{k-1})
    + (x - t_k)_+^3 (t_{k-1} - t_j) / (t_k - t_{k-1})) / (t_k - t_1)^2``, j = 1..k-2

    (Regression Modeling Strategies, section 2.4.5; the normalisation of rms::rcspline.eval).
    Every term is 0 below ``t_1`` and linear above ``t_k`` (its cubic and quadratic parts
    cancel), so any combination of them is linear beyond the outer knots, extrapolation
    included.

    Parameters
    ----------
    x : ndarray of shape (n,)
    knots : ndarray of shape (k,)
        Increasing, distinct, k >= 3.

    Returns
    -------
    ndarray of shape (n, k - 1)
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(knots, dtype=np.float64)
    last, before = t[-1], t[-2]
    scale = (last - t[0]) ** 2

    def cube(at: float) -> np.ndarray:
        return np.maximum(x - at, 0.0) ** 3

    terms = [(cube(t_j) - cube(before) * (last - t_j) / (last - before)
              + cube(last) * (before - t_j) / (last - before)) / scale for t_j in t[:-2]]
    return np.column_stack([x, *terms])


class SplineCox(_SurvivalEstimator):
    """Cox proportional-hazards model with restricted cubic-spline terms for continuous
    predictors.

    Each column with more than ``linear_up_to`` distinct values in ``fit`` is replaced by
    Harrell's restricted cubic spline basis (Regression Modeling Strategies, section 2.4.5):
    the column itself and ``n_knots - 2`` truncated-power terms, with knots at Harrell's
    default quantiles (5th to 95th percentile for 4 to 6 knots, 10th to 90th for 3), so that
    its log hazard ratio may bend between the outer knots (a U-shaped effect of age, a
    threshold in a laboratory value) and is linear beyond them. A column whose knots are not
    distinct (one value held by most patients) enters linearly, as do the other columns
    (binary, one-hot levels, missing-value indicators, a few-valued score). The expanded
    matrix is fitted by :class:`PenalizedCox` (standardized, ridge penalty ``alpha``,
    scikit-survival's ``CoxPHSurvivalAnalysis`` with Efron ties, Breslow baseline). The
    knots are learned in ``fit``, so inside cross-validation each fold places its own.

    Parameters
    ----------
    alpha : float, default=1.0
        Ridge penalty on the standardized coefficients of the expanded matrix.
    n_knots : int, default=4
        Knots per continuous column, 3 to 6; a column gets ``n_knots - 1`` terms.
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
    knots_ : list of ndarray
        The knots of each column of ``spline_columns_``.
    design_columns_ : ndarray of int
        For each column of the expanded matrix, the input column it comes from.
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
    >>> model.design_columns_.tolist()
    [1, 0, 0, 0]
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
        if int(self.n_knots) not in KNOT_QUANTILES:
            raise PermedError(f"n_knots={self.n_knots!r} must be 3, 4, 5 or 6 (the knot counts "
                              "Harrell gives default quantiles for)")

    def _fit(self, X: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        quantiles = KNOT_QUANTILES[int(self.n_knots)]
        knots = {}
        for j, column in enumerate(X.T):
            if len(np.unique(column)) > self.linear_up_to:
                at = np.quantile(column, quantiles)
                if np.all(np.diff(at) > 0):  # tied knots: one value dominates, stay linear
                    knots[j] = at
        self.spline_columns_ = np.array(sorted(knots), dtype=int)
        self.linear_columns_ = np.array([j for j in range(X.shape[1]) if j not in knots],
                                        dtype=int)
        self.knots_ = [knots[j] for j in self.spline_columns_]
        self.design_columns_ = np.concatenate([
            self.linear_columns_,
            *(np.full(len(k) - 1, j) for j, k in zip(self.spline_columns_, self.knots_,
                                                     strict=True))]).astype(int)
        self.cox_ = PenalizedCox(alpha=self.alpha, n_iter=self.n_iter, tol=self.tol).fit(
            self._expand(X), survival_y(time, event))

    def _expand(self, X: np.ndarray) -> np.ndarray:
        """The Cox model's design: the linear columns, then each spline column's basis."""
        parts = [X[:, self.linear_columns_]]
        parts += [restricted_cubic_basis(X[:, j], knots)
                  for j, knots in zip(self.spline_columns_, self.knots_, strict=True)]
        return np.hstack(parts)

    def _risk(self, X: np.ndarray) -> np.ndarray:
        return self.cox_._risk(self._expand(X))

    def _survival(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.cox_._survival(self._expand(X))
