"""What every permed risk estimator shares: the outcome, input checks and the risk vocabulary.

``predict`` returns a risk score (higher = earlier event) and ``predict_survival_function``
the survival probability at chosen times. Subclasses only learn (``_fit``), score
(``_risk``) and give their survival curves on their own time grid (``_survival``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data
from sksurv.metrics import concordance_index_censored

from permed.exceptions import PermedError
from permed.models.risk._outcome import split_survival_y

__all__ = ["breslow_survival", "check_positive", "step_values"]


def step_values(grid: np.ndarray, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Evaluate right-continuous step functions at ``times``.

    Parameters
    ----------
    grid : ndarray of shape (m,)
        Increasing times where the functions jump.
    values : ndarray of shape (n, m)
        Value of each function from ``grid[j]`` until the next jump.
    times : ndarray of shape (k,)
        Where to evaluate.

    Returns
    -------
    ndarray of shape (n, k)
        The values at ``times``; 1 (no event yet) before the first jump.
    """
    position = np.searchsorted(grid, times, side="right") - 1
    out = np.ones((values.shape[0], len(times)))
    known = position >= 0
    out[:, known] = values[:, position[known]]
    return out


# Most survival-curve values held at once by predict_survival_function (32 MB of float64).
CURVE_CELLS = 4_000_000


def curve_chunks(n_rows: int, n_times: int) -> list[slice]:
    """Row slices whose survival curves at ``n_times`` times fit in ``CURVE_CELLS`` values."""
    step = max(1, CURVE_CELLS // max(1, n_times))
    return [slice(start, start + step) for start in range(0, n_rows, step)]


class _SurvivalEstimator(BaseEstimator):
    """Base of permed's survival estimators (see the module docstring).

    ``y`` is a structured survival outcome (``sksurv.util.Surv.from_arrays(event, time)``); a
    plain 1-D array is read as times of observed events, which is what scikit-learn's
    estimator checks pass (hence the ``positive_only`` target tag: times are positive).
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.positive_only = True
        tags.target_tags.single_output = True
        return tags

    def fit(self, X: Any, y: Any) -> _SurvivalEstimator:
        """Learn from features and a survival outcome.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features without missing values.
        y : structured array or array-like of shape (n_samples,)
            ``sksurv.util.Surv.from_arrays(event, time)``, or a 1-D array of event times
            (nobody censored).

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        ValueError
            If ``X`` or ``y`` cannot be used (missing values, negative times, no event, fewer
            than 2 samples, lengths that differ).
        """
        self._check_params()
        time, event = split_survival_y(y)
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        if len(time) != X.shape[0]:
            raise PermedError(f"X has {X.shape[0]} rows but y has {len(time)}: pass the outcome "
                              "of the same patients")
        self.event_times_ = np.unique(time[event])
        self._fit(X, time, event)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Risk score of each patient: higher means an earlier event is expected.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Only the order is meaningful across patients (use
            :meth:`predict_survival_function` for absolute risk).
        """
        check_is_fitted(self, "event_times_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.asarray(self._risk(X), dtype=np.float64)

    def predict_survival_function(self, X: Any, times: Any = None) -> np.ndarray:
        """Probability of being event-free at each of ``times``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        times : array-like of shape (n_times,), optional
            Non-negative times; default: the distinct event times seen in ``fit``
            (``event_times_``).

        Returns
        -------
        ndarray of shape (n_samples, n_times)
            Survival probabilities in [0, 1], non-increasing along each row when ``times``
            increase. The absolute risk by time ``t`` is ``1 - S(t)``.
        """
        check_is_fitted(self, "event_times_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        times = self.event_times_ if times is None else np.asarray(times, dtype=np.float64)
        if times.ndim != 1 or not np.all(np.isfinite(times)) or np.any(times < 0):
            raise PermedError("times must be a 1-D array of non-negative finite times")
        # the full curves are (rows x event times): scored in chunks of rows, so that an
        # explanation scoring 250,000 perturbed rows stays at tens of MB, not gigabytes
        out = np.empty((X.shape[0], len(times)))
        for rows in curve_chunks(X.shape[0], len(self.event_times_)):
            grid, values = self._survival(X[rows])
            out[rows] = step_values(grid, values, times)
        return np.clip(out, 0.0, 1.0, out=out)

    def score(self, X: Any, y: Any) -> float:
        """Harrell's concordance index of ``predict(X)`` (scikit-survival's implementation).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : structured array or array-like of shape (n_samples,)
            As in :meth:`fit`.

        Returns
        -------
        float
            0.5 is chance, 1 a perfect ranking.
        """
        time, event = split_survival_y(y)
        return float(concordance_index_censored(event, time, self.predict(X))[0])

    def _check_params(self) -> None:
        """Refuse out-of-range parameters (subclasses override)."""

    @abstractmethod
    def _fit(self, X: np.ndarray, time: np.ndarray, event: np.ndarray) -> None: ...

    @abstractmethod
    def _risk(self, X: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _survival(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(grid of shape (m,), survival of shape (n, m)) as right-continuous steps."""


def breslow_survival(baseline_times: np.ndarray, baseline_hazard: np.ndarray,
                     log_hazard: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Survival curves of a proportional-hazards model: ``exp(-H0(t) * exp(eta))``."""
    with np.errstate(over="ignore"):
        scale = np.exp(np.clip(log_hazard, -50.0, 50.0))
    return baseline_times, np.exp(-np.outer(scale, baseline_hazard))


def check_positive(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False,
                   allow_none: bool = False) -> None:
    """Refuse a parameter that is not a (positive) number."""
    if value is None and allow_none:
        return
    number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool)
    ok = number and np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        kind = "integer" if integer else "number"
        bound = "0 or more" if allow_zero else "above 0"
        raise PermedError(f"{name}={value!r} must be a finite {kind} {bound}")
