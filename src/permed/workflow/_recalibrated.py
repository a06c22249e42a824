"""The recalibrated model of ``permed recalibrate``: a trained run's model, its answers updated
for a new site (Steyerberg, *Clinical Prediction Models*, ch. 20; Van Calster et al. 2019).

The update is a step of the model the bundle already holds, so ``permed predict``, ``permed
serve`` and the ONNX path apply it without a special case:

- diagnose (binary): :class:`LogisticRecalibration` replaces the run's calibrator. It applies
  the source calibration, then ``logit(p_new) = a + b * logit(p)``. The ONNX graph gives the
  probabilities *before* calibration (see :mod:`permed.bundle._onnx`); the service applies the
  calibrator after it, so the update is applied there exactly as in Python.
- risk: :class:`RecalibratedSurvival` replaces the survival estimator of the pipeline. With
  ``lp(x) = log(-log S(h_ref | x))`` of the source model at the reference horizon, it fits a
  Cox model with ``lp`` as its only covariate (slope ``b``; 1 for ``method="intercept"``) and
  a Breslow baseline cumulative hazard ``H0`` on the local cohort:
  ``S_new(t | x) = exp(-H0(t) * exp(b * lp(x)))``, in [0, 1] and non-increasing in ``t``.
  ``H0`` is flat after the local cohort's last time, so the curves say nothing new past the
  local follow-up: ``max_time_`` records it, and callers refuse times beyond it.

Separation (the outcome ordered perfectly by the source model's answer) leaves the slope
without a finite maximum-likelihood estimate; both fits detect it exactly (a one-covariate
check) and return the slope's limit, ``+inf`` (the events at the top of the model's order) or
``-inf`` (reverse separation: the events at the bottom, the model ranks the patients
backwards), which the caller refuses or counts as a failed bootstrap replicate. A fit that does
not converge returns nan.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted
from sksurv.linear_model.coxph import BreslowEstimator

from permed.exceptions import PermedError
from permed.models.risk._base import breslow_survival, step_values
from permed.models.risk._outcome import split_survival_y

__all__ = ["METHODS", "LogisticRecalibration", "RecalibratedSurvival", "cox_slope",
           "fit_cox_recalibration", "fit_logistic_recalibration", "linear_predictor", "logit",
           "refuse_constant"]

METHODS = ("slope", "intercept")
_EPS = 1e-6  # probabilities are clipped to [eps, 1 - eps] before the logit, as calibration does
_SURVIVAL_EPS = 1e-10  # S(h_ref) is clipped so that log(-log S) is finite
_LOG_HAZARD_LIMIT = 50.0  # as breslow_survival: exp() of a linear predictor within +-50


def logit(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` of probabilities clipped to ``[1e-6, 1 - 1e-6]``."""
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(q) - np.log1p(-q)


def fit_logistic_recalibration(x: np.ndarray, y: np.ndarray, method: str) -> tuple[float, float]:
    """``(a, b)`` of the unpenalized ``logit P(y = 1) = a + b * x``; ``b = 1`` fixed (an
    offset) for ``method="intercept"``, recalibration-in-the-large.

    The slope fit is scikit-learn's unpenalized ``LogisticRegression(C=inf)``; the intercept alone
    solves its score equation ``sum(y - expit(a + x)) = 0``, decreasing in ``a``, by Brent's
    method. Without a finite estimate the slope is ``+inf`` or ``-inf`` (and the intercept
    nan) where ``x`` separates the classes, completely or with ties at the boundary, with the
    positive class above (``+inf``) or below (``-inf``, reverse separation); both are nan for
    one class or a fit that does not converge.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.min() == y.max():
        return math.nan, math.nan
    if method == "intercept":
        def score(a: float) -> float:
            return float(np.sum(y - expit(a + x)))

        return float(brentq(score, -60.0, 60.0, xtol=1e-12)), 1.0
    direction = _separates(x, y)
    if direction:
        return math.nan, math.copysign(math.inf, direction)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:  # C = inf: no penalty (scikit-learn 1.8 deprecates penalty=None for it)
            fit = LogisticRegression(C=np.inf, max_iter=1000).fit(x[:, None], y)
        except ConvergenceWarning:
            return math.nan, math.nan
    return float(fit.intercept_[0]), float(fit.coef_[0, 0])


def _separates(x: np.ndarray, y: np.ndarray) -> int:
    """Whether one covariate orders the two classes perfectly (ties allowed at the boundary),
    the logistic likelihood then growing without bound in the slope: 1 with class 1 above
    (slope to +inf), -1 with class 1 below (reverse separation, slope to -inf), 0 if not."""
    low, high = x[y == 0], x[y == 1]
    if low.max() <= high.min():
        return 1
    return -1 if high.max() <= low.min() else 0


def _risk_set_sums(order_time: np.ndarray, values: list[np.ndarray]) -> list[np.ndarray]:
    """For times sorted increasingly, ``sum_{j: t_j >= t_i} v_j`` for each ``v`` (ties share
    their risk set, Breslow's way)."""
    first = np.searchsorted(order_time, order_time, side="left")
    return [np.cumsum(v[::-1])[::-1][first] for v in values]


def _monotone_likelihood(t: np.ndarray, x: np.ndarray, d: np.ndarray) -> int:
    """Whether every event has the largest (or every event the smallest) ``x`` of its risk
    set, times sorted increasingly, the Cox partial likelihood then growing without bound in
    the slope (separation; Heinze and Schemper 2001): 1 for the largest (slope to +inf), -1
    for the smallest (reverse separation, slope to -inf), 0 if neither."""
    first = np.searchsorted(t, t, side="left")
    events = d > 0
    most = np.maximum.accumulate(x[::-1])[::-1][first]
    least = np.minimum.accumulate(x[::-1])[::-1][first]
    if np.all(x[events] >= most[events]):
        return 1
    return -1 if np.all(x[events] <= least[events]) else 0


def cox_slope(lp: np.ndarray, time: np.ndarray, event: np.ndarray,
              max_iter: int = 100, tol: float = 1e-10) -> float:
    """Slope of a Cox model with ``lp`` as its only covariate (Breslow ties), by Newton's
    method with step-halving; ``+inf`` or ``-inf`` when the likelihood is monotone (every event
    has the highest, or every event the lowest, lp of its risk set: separation), nan without
    an event or when Newton's method does not converge."""
    order = np.argsort(time, kind="stable")
    t, x, d = time[order], lp[order] - lp.mean(), event[order].astype(np.float64)
    if not d.any():
        return math.nan
    direction = _monotone_likelihood(t, x, d)
    if direction:
        return math.copysign(math.inf, direction)

    def state(b: float) -> tuple[float, float, float]:
        eta = b * x
        shift = eta.max()
        w = np.exp(eta - shift)
        s0, s1, s2 = _risk_set_sums(t, [w, w * x, w * x * x])
        mean = s1 / s0
        loglik = float(np.sum(d * (eta - shift - np.log(s0))))
        return loglik, float(np.sum(d * (x - mean))), float(np.sum(d * (s2 / s0 - mean ** 2)))

    b = 1.0
    loglik, grad, info = state(b)
    for _ in range(max_iter):
        if not info > 0:
            return math.nan
        step = grad / info
        if abs(step) < tol:
            return b
        for _ in range(30):  # halve the step until the likelihood does not drop
            trial = state(b + step)
            if trial[0] >= loglik - 1e-12 * (1 + abs(loglik)):
                break
            step /= 2
        else:
            return math.nan
        b += step
        loglik, grad, info = trial
    return math.nan


def fit_cox_recalibration(lp: np.ndarray, time: np.ndarray, event: np.ndarray,
                          method: str) -> tuple[float, np.ndarray, np.ndarray]:
    """``(b, times, H0)``: the Cox slope of ``lp`` (1 for ``method="intercept"``) and the
    Breslow baseline cumulative hazard at ``times`` (scikit-survival's ``BreslowEstimator``
    on ``b * lp``). ``b`` is ``+inf``/``-inf`` under separation, nan where the fit does not
    converge (see :func:`cox_slope`); the hazard is then empty."""
    event = np.asarray(event, dtype=bool)
    slope = 1.0 if method == "intercept" else cox_slope(lp, time, event)
    if not np.isfinite(slope):
        return slope, np.zeros(0), np.zeros(0)
    baseline = BreslowEstimator().fit(
        np.clip(slope * lp, -_LOG_HAZARD_LIMIT, _LOG_HAZARD_LIMIT), event, time)
    return (slope, np.asarray(baseline.cum_baseline_hazard_.x, dtype=np.float64),
            np.asarray(baseline.cum_baseline_hazard_.y, dtype=np.float64))


def linear_predictor(estimator: Any, X: Any, horizon: float) -> np.ndarray:
    """``log(-log S(horizon | x))`` of a fitted survival estimator, ``S`` clipped to
    ``[1e-10, 1 - 1e-10]`` (a curve at exactly 1 or 0 has no finite value)."""
    survival = estimator.predict_survival_function(X, np.asarray([horizon], dtype=np.float64))
    s = np.clip(survival[:, 0], _SURVIVAL_EPS, 1.0 - _SURVIVAL_EPS)
    return np.log(-np.log(s))


class LogisticRecalibration(BaseEstimator):
    """A binary diagnose model's calibration updated for a new site.

    ``transform`` applies the source run's calibrator, then ``logit(p_new) = a + b *
    logit(p)`` to the positive class. It is fitted on the probabilities *before* calibration
    (the pipeline's), as the calibrator it replaces in :class:`~permed.workflow.DiagnoseModel`.

    Parameters
    ----------
    source : ProbabilityCalibrator
        The source run's fitted calibrator (kept as it is).
    method : {"slope", "intercept"}
        Fit ``a`` and ``b``, or ``a`` alone with ``b = 1`` (recalibration-in-the-large).

    Attributes
    ----------
    intercept_, slope_ : float
    """

    def __init__(self, source: Any = None, method: str = "slope") -> None:
        self.source = source
        self.method = method

    def fit(self, raw: np.ndarray, y: np.ndarray) -> LogisticRecalibration:
        """Fit on the pipeline's probabilities ``raw`` (n, 2) and outcomes ``y`` (0/1)."""
        self.intercept_, self.slope_ = fit_logistic_recalibration(
            logit(self.source.transform(raw)[:, 1]), y, self.method)
        return self

    def update(self, p: np.ndarray) -> np.ndarray:
        """The recalibrated probability of source probabilities ``p`` of the positive class."""
        check_is_fitted(self, "slope_")
        return expit(self.intercept_ + self.slope_ * logit(p))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Recalibrated probabilities (n, 2); rows sum to 1."""
        p = self.update(self.source.transform(raw)[:, 1])
        return np.column_stack([1.0 - p, p])


class RecalibratedSurvival(BaseEstimator):
    """A risk model's survival curves updated for a new site (see the module docstring).

    ``predict`` is the recalibrated Cox model's linear predictor ``b * lp(x)``: the patients'
    order by every recalibrated curve (the curves are proportional hazards in ``lp``), also
    for a source model that does not assume proportional hazards (a random survival forest),
    whose own risk score may order them otherwise. The survival curves are
    ``exp(-H0(t) * exp(b * lp(x)))``, stepping at the local cohort's times.

    Parameters
    ----------
    estimator : fitted survival estimator
        The source run's (kept as it is; never refitted).
    horizon : float
        The reference horizon ``h_ref`` of ``lp``.
    method : {"slope", "intercept"}
        Fit ``b``, or keep ``b = 1`` (only the baseline hazard is the local cohort's).

    Attributes
    ----------
    slope_ : float
    baseline_times_, baseline_cumulative_hazard_ : ndarray
        Breslow's estimate on the local cohort, a right-continuous step function.
    event_times_ : ndarray
        The local cohort's distinct event times.
    max_time_ : float
        The local cohort's longest follow-up: ``H0`` is flat after it, so a survival
        probability at a later time is the one at ``max_time_``, not an estimate.
    """

    def __init__(self, estimator: Any = None, horizon: float = 1.0,
                 method: str = "slope") -> None:
        self.estimator = estimator
        self.horizon = horizon
        self.method = method

    def fit(self, X: Any, y: Any) -> RecalibratedSurvival:
        """Fit on preprocessed features ``X`` and the local outcome ``y`` (structured).

        Raises
        ------
        PermedError
            When the source model gives every patient the same ``S(h_ref)`` (no ordering to
            recalibrate), or the slope has no finite estimate (``-inf``: the model ranks the
            local patients backwards).
        """
        time, event = split_survival_y(y)
        lp = linear_predictor(self.estimator, X, self.horizon)
        refuse_constant(lp, self.horizon)
        slope, times, hazard = fit_cox_recalibration(lp, time, event, self.method)
        if slope == -math.inf:
            raise PermedError(
                f"the source model ranks these patients backwards: each of the "
                f"{int(event.sum())} events among the {len(time)} patients has the lowest "
                "risk of the patients still at risk at its time (reverse separation), which "
                "recalibration cannot repair; check the event coding, or train a model on "
                "these patients")
        if not np.isfinite(slope):
            raise PermedError("the recalibration slope has no finite estimate on these "
                              f"{len(time)} patients ({int(event.sum())} events): "
                              + ("each event has the highest risk of the patients still at "
                                 "risk at its time (separation)" if slope > 0 else
                                 "the fit did not converge")
                              + "; use --method intercept")
        self.slope_, self.baseline_times_, self.baseline_cumulative_hazard_ = slope, times, hazard
        self.event_times_ = np.unique(time[event])
        self.max_time_ = float(time.max())
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The recalibrated linear predictor ``b * lp(x)`` (higher: earlier event)."""
        check_is_fitted(self, "slope_")
        return self.slope_ * linear_predictor(self.estimator, X, self.horizon)

    def predict_survival_function(self, X: Any, times: Any = None) -> np.ndarray:
        """Recalibrated survival at ``times`` (default: the local event times), shape
        (rows, times), in [0, 1] and non-increasing along each row; held at its value at
        ``max_time_`` after it."""
        check_is_fitted(self, "slope_")
        times = self.event_times_ if times is None else np.asarray(times, dtype=np.float64)
        lp = linear_predictor(self.estimator, X, self.horizon)
        grid, values = breslow_survival(self.baseline_times_, self.baseline_cumulative_hazard_,
                                        self.slope_ * lp)
        return np.clip(step_values(grid, values, times), 0.0, 1.0)


def refuse_constant(lp: np.ndarray, horizon: float) -> None:
    """Refuse a source model that gives every patient the same ``S(h_ref)``: there is no
    ordering for a recalibration to keep.

    Raises
    ------
    PermedError
    """
    if len(lp) and np.ptp(lp) == 0:
        # S(h_ref) at its upper clip, 1 - 1e-10, computed as linear_predictor computes it
        at_one = bool(lp[0] <= np.log(-np.log(1.0 - _SURVIVAL_EPS)) + 1e-6)
        raise PermedError(
            f"the source model predicts the same survival at the reference horizon "
            f"{horizon:g} for all {len(lp)} local patients"
            + (" (1: no risk at all): the reference horizon precedes the model's first event "
               "time" if at_one else "")
            + "; a recalibration has no ordering of patients to keep: check the model's "
            "horizons (permed train --horizons) or retrain it on this site's patients")
