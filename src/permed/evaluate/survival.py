"""Survival metrics with bootstrap confidence intervals.

The discrimination and error measures are scikit-survival's own functions, called on every
bootstrap replicate: Harrell's C (``concordance_index_censored``), Uno's C
(``concordance_index_ipcw``), the integrated Brier score (``integrated_brier_score``) and the
cumulative/dynamic time-dependent AUC (``cumulative_dynamic_auc``). The censoring
distribution they weight by is the Kaplan-Meier estimate of a *reference* outcome (the
development split), as scikit-survival recommends. :data:`METRIC_ESTIMATORS` says which
estimator produced each figure; it is written to ``metrics.json``.

Calibration at a horizon ``h`` compares the predicted risk ``1 - S(h)`` with the observed
Kaplan-Meier risk, by decile of predicted risk, and summarizes it by

- the calibration slope: the coefficient of ``log(-log S(h))`` in a Cox model refitted on the
  evaluated patients with follow-up censored at ``h`` (1 is ideal; below 1, predictions are
  too extreme). It is a one-parameter Newton fit in NumPy, run on every replicate, with
  Efron's handling of tied times, as the Cox-type models are fitted; it agrees with
  ``sksurv.linear_model.CoxPHSurvivalAnalysis(ties="efron")`` to 1e-6
  (``tests/evaluate/test_survival.py``), at a fraction of its cost. It used Breslow's, which
  with heavy ties pulls the slope towards 0: integer months with 152 patients censored at 24
  gave 1.36/1.37/1.38 at 4/8/12 months against Efron's 1.47/1.49/1.49;
- the observed/expected ratio: Kaplan-Meier risk at ``h`` over the mean predicted risk. Its CI
  is the Kaplan-Meier (log-log) CI of the observed risk over the mean predicted risk, held
  fixed, not a bootstrap one: the bootstrap resamples within events and within censored
  patients, so every replicate keeps the number of events and the observed risk at a late
  horizon hardly varies (GBSG at 60 months: 0.89-0.98 against 0.85-1.01).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sksurv.compare import compare_survival
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import kaplan_meier_estimator

from permed.evaluate._bootstrap import _check_options, _percentile_ci, _resample_indices
from permed.evaluate._concordance import concordance_sums, two_sample_sums
from permed.exceptions import PermedError
from permed.models.risk import survival_y

__all__ = [
    "METRIC_ESTIMATORS",
    "SURVIVAL_METRICS",
    "SurvivalGrid",
    "calibration_slope",
    "calibration_table",
    "censoring_reference",
    "concordance_replicates",
    "harrell_c",
    "horizon_key",
    "kaplan_meier_at",
    "logrank_test",
    "observed_risk",
    "proportional_hazards_test",
    "replicate_counts",
    "survival_metrics",
    "survival_report",
]

SURVIVAL_METRICS = ("c_index", "uno_c", "ibs", "td_auc")
# From this many patients the point figures come from the bootstrap's sums with every count 1
# (scikit-survival's values within 1e-9: tests/evaluate/test_survival.py). Their cost grows as
# n log n; scikit-survival's concordance functions grow as n squared (2.7 s for both Cs on
# 16 000 patients, minutes on a 1M cohort's CV folds).
POINT_SUMS_FROM_ROWS = 20_000
METRIC_ESTIMATORS = {
    "c_index": "Harrell's C (sksurv.metrics.concordance_index_censored; from 20 000 patients "
               "the same value from permed's O(n log n) pair sums)",
    "uno_c": "Uno's C with inverse probability of censoring weights, truncated at tau "
             "(sksurv.metrics.concordance_index_ipcw; from 20 000 patients the same value from "
             "permed's O(n log n) pair sums)",
    "ibs": "integrated Brier score with inverse probability of censoring weights "
           "(sksurv.metrics.integrated_brier_score)",
    "td_auc": "cumulative/dynamic AUC of the predicted risk 1 - S(h) at each horizon h "
              "(sksurv.metrics.cumulative_dynamic_auc; from 20 000 patients the same value "
              "from permed's pair sums); td_auc is the plain mean over the horizons",
    "calibration_slope": "coefficient of log(-log S(h)) in a Cox model (Efron ties) refitted "
                         "on the evaluated patients, follow-up censored at h",
    "observed_expected": "Kaplan-Meier risk at h over the mean predicted risk at h; 95% CI: "
                         "the Kaplan-Meier log-log CI of that risk (exact binomial when it is "
                         "0 or 1) over the mean predicted risk, not the bootstrap",
    "calibration_deciles": "mean predicted risk 1 - S(h) against the Kaplan-Meier risk "
                           "(sksurv.nonparametric.kaplan_meier_estimator, log-log 95% CI; a "
                           "group with no event by h, or only events, gets the exact binomial "
                           "(Clopper-Pearson) 95% CI over its patients followed to h or with "
                           "the event) in each of up to ten groups of predicted risk (deciles, "
                           "fewer when under 20 patients a group)",
    "logrank": "log-rank test between risk groups (sksurv.compare.compare_survival)",
    "censoring_distribution": "Kaplan-Meier estimate of the censoring distribution of the "
                              "reference (development) outcomes",
}
# Quantiles of the evaluated follow-up times between which the Brier score is integrated.
IBS_QUANTILES = (0.1, 0.9)
IBS_POINTS = 30
_SURVIVAL_CLIP = 1e-10
_NEWTON_STEPS = 50
# Eigenvalues of an information matrix under this share of the largest are taken as 0.
_RANK_TOLERANCE = 1e-9

Floats = NDArray[np.float64]


def horizon_key(horizon: float) -> str:
    """The key of a horizon in ``metrics.json`` and column names: ``365`` or ``2.5``."""
    return f"{horizon:g}"


@dataclass(frozen=True)
class SurvivalGrid:
    """The times at which survival is predicted for evaluation.

    Attributes
    ----------
    horizons : ndarray
        Where absolute risk, time-dependent AUC and calibration are reported.
    ibs : ndarray
        Where the Brier score is integrated.
    """

    horizons: Floats
    ibs: Floats

    @classmethod
    def for_data(cls, time: ArrayLike, horizons: ArrayLike,
                 points: int = IBS_POINTS) -> SurvivalGrid:
        """Horizons plus ``points`` times between the 10th and 90th percentile of ``time``.

        The last point stays below the longest follow-up, where the Brier score is integrable
        (scikit-survival refuses a time at it): with administrative censoring at a common end
        date (GBSG: 426 patients at 84 months) the 90th percentile is the longest follow-up.
        """
        time = np.asarray(time, dtype=np.float64)
        low, high = np.quantile(time, IBS_QUANTILES)
        before_last = time[time < time.max()]
        if len(before_last):
            high = min(high, float(before_last.max()))
        return cls(np.asarray(horizons, dtype=np.float64),
                   np.unique(np.linspace(low, high, points)))

    @property
    def times(self) -> Floats:
        """Every time of the grid, sorted: predict survival at these."""
        return np.union1d(self.horizons, self.ibs)

    def columns(self, which: Floats) -> NDArray[np.intp]:
        """Positions of ``which`` in :attr:`times`."""
        return np.searchsorted(self.times, which)


def censoring_reference(reference_y: NDArray[Any], y: NDArray[Any]) -> tuple[NDArray[Any], str]:
    """The outcome the censoring distribution is estimated from, and how it was chosen.

    The reference (development) outcomes are used, unless the evaluated follow-up extends
    beyond them, where their censoring distribution is unknown: then both are pooled.
    """
    if y["time"].max() <= reference_y["time"].max():
        return reference_y, "Kaplan-Meier estimate of the censoring distribution of the " \
                            "development outcomes"
    pooled = np.concatenate([reference_y, y])
    return pooled, ("Kaplan-Meier estimate of the censoring distribution of the development "
                    "and evaluated outcomes pooled (the evaluated follow-up extends beyond the "
                    "development follow-up)")


def harrell_c(time: ArrayLike, event: ArrayLike, risk: ArrayLike) -> float:
    """Harrell's concordance index (scikit-survival's ``concordance_index_censored``).

    Parameters
    ----------
    time, event, risk : array-like of shape (n,)
        Follow-up times, event indicators and risk scores (higher = earlier event).

    Returns
    -------
    float
    """
    return float(concordance_index_censored(np.asarray(event, dtype=bool),
                                            np.asarray(time, dtype=np.float64),
                                            np.asarray(risk, dtype=np.float64))[0])


def kaplan_meier_at(time: Floats, event: NDArray[np.bool_], horizon: float) -> float:
    """Kaplan-Meier survival at ``horizon`` (the product-limit estimate, in NumPy)."""
    unique, index = np.unique(time, return_inverse=True)
    deaths = np.bincount(index, weights=event.astype(np.float64), minlength=len(unique))
    at_risk = np.cumsum(np.bincount(index, minlength=len(unique))[::-1])[::-1]
    keep = unique <= horizon
    return float(np.prod(1.0 - deaths[keep] / at_risk[keep]))


def calibration_slope(time: Floats, event: NDArray[np.bool_], survival_at_h: Floats,
                      horizon: float, weights: Floats | None = None) -> float:
    """Calibration slope at ``horizon`` (see the module docstring).

    Parameters
    ----------
    time, event : ndarray of shape (n,)
    survival_at_h : ndarray of shape (n,)
        Predicted S(horizon).
    horizon : float
    weights : ndarray of shape (n,), optional
        Case weights (how many times each patient counts; a bootstrap replicate's counts).

    Returns
    -------
    float
        nan when there is no event by ``horizon`` or the predictions do not vary.
    """
    weights = np.ones(len(time)) if weights is None else np.asarray(weights, dtype=np.float64)
    return _SlopeFit(time, event, survival_at_h, horizon).solve(weights)


class _SlopeFit:
    """The one-covariate Cox fit behind the calibration slope, set up once per horizon.

    :meth:`solve_many` runs Newton's method for every bootstrap replicate at once (one row of
    case weights each), on patients sorted by follow-up time: the risk-set sums are reverse
    cumulative sums along the rows.
    """

    def __init__(self, time: Floats, event: NDArray[np.bool_], survival_at_h: Floats,
                 horizon: float) -> None:
        followed = np.minimum(time, horizon)
        self.order = np.argsort(followed, kind="stable")
        x = np.log(-np.log(np.clip(survival_at_h, _SURVIVAL_CLIP, 1.0 - _SURVIVAL_CLIP)))
        self.x = x[self.order]
        died = (event & (time <= horizon))[self.order]
        self.deaths = np.flatnonzero(died)
        followed = followed[self.order]
        # the deaths at one follow-up time are tied: where each tie starts among the deaths,
        # and its risk set among the patients
        times, self.tie_start = np.unique(followed[self.deaths], return_index=True)
        self.first = np.searchsorted(followed, times, side="left")

    def solve(self, weights: Floats, start: float = 1.0) -> float:
        return float(self.solve_many(weights[None, :], np.array([start]))[0])

    def solve_many(self, weights: Floats, start: Floats) -> Floats:
        """Calibration slope for each row of ``weights`` (shape (n_boot, n))."""
        weights = weights[:, self.order]
        x, deaths, first, ties = self.x, self.deaths, self.first, self.tie_start
        death_weights = weights[:, deaths]
        beta = np.array(start, dtype=np.float64)
        if not len(deaths):
            return np.full(len(beta), np.nan)
        done = np.zeros(len(beta), dtype=bool)
        valid = (death_weights.sum(axis=1) > 0) & np.array(
            [np.ptp(x[row > 0]) > 0 if (row > 0).any() else False for row in weights])
        event_sum = death_weights @ x[deaths]
        # Efron's handling of ties, as the models' own fits: the m deaths at one time (a
        # patient a replicate draws c times counting c times, as in the resampled data) have m
        # risk sets, the r-th without r/m of the dying patients' weighted risk
        dying = np.add.reduceat(death_weights, ties, axis=1)
        # times by their most deaths in a replicate, most first: the times with more than r
        # deaths in some replicate are a leading block
        most = dying.max(axis=0)
        by_most = np.argsort(-most, kind="stable")
        dying, first = dying[:, by_most], first[by_most]
        more_than = [int(np.sum(most > r)) for r in range(math.ceil(most.max()))]
        powers = (np.ones_like(x), x, x * x)
        for _ in range(_NEWTON_STEPS):
            eta = beta[:, None] * x[None, :]
            w = weights * np.exp(eta - eta.max(axis=1, keepdims=True))
            s0, s1, s2 = (np.cumsum((w * v)[:, ::-1], axis=1)[:, ::-1][:, first] for v in powers)
            e0, e1, e2 = (np.add.reduceat(w[:, deaths] * v[deaths], ties, axis=1)[:, by_most]
                          for v in powers)
            score, information = event_sum.copy(), np.zeros(len(beta))
            with np.errstate(invalid="ignore", divide="ignore"):
                for r, k in enumerate(more_than):
                    m = dying[:, :k]
                    term = r < m
                    part = np.where(term, r / np.where(term, m, 1.0), 0.0)
                    d0 = s0[:, :k] - part * e0[:, :k]
                    mean = np.where(term, (s1[:, :k] - part * e1[:, :k]) / d0, 0.0)
                    second = np.where(term, (s2[:, :k] - part * e2[:, :k]) / d0, 0.0)
                    score -= mean.sum(axis=1)
                    information += (second - mean**2).sum(axis=1)
                step = score / information
            valid &= information > 0
            step = np.where(valid & ~done, step, 0.0)
            beta = beta + step
            done |= np.abs(step) < 1e-10
            if done[valid].all():
                break
        return np.where(valid & done, beta, np.nan)


def _td_auc(reference: NDArray[Any], y: NDArray[Any], risk_at_h: Floats, horizon: float) -> float:
    """The AUC at ``horizon``; nan when undefined there, e.g. with no event by then."""
    try:
        with warnings.catch_warnings():
            # no event by the horizon: scikit-survival divides 0 by 0 and returns nan
            warnings.filterwarnings("ignore", "invalid value encountered in divide",
                                    RuntimeWarning)
            return float(cumulative_dynamic_auc(reference, y, risk_at_h, horizon)[0][0])
    except ValueError:
        return math.nan


def survival_metrics(reference: NDArray[Any], time: Floats, event: NDArray[np.bool_],
                     risk: Floats, survival: Floats, grid: SurvivalGrid, tau: float,
                     detail: bool = False) -> dict[str, float]:
    """Point values of c_index, uno_c, ibs and td_auc on one set of patients.

    Parameters
    ----------
    reference : structured array
        Outcome the censoring distribution is estimated from (see :func:`censoring_reference`).
    time, event, risk : ndarray of shape (n,)
    survival : ndarray of shape (n, len(grid.times))
        Predicted survival at ``grid.times``.
    grid : SurvivalGrid
    tau : float
        Truncation time of Uno's C.
    detail : bool, default=False
        Also return ``td_auc@h``, ``calibration_slope@h`` and ``observed_expected@h`` for each
        horizon.

    Returns
    -------
    dict
        A metric that cannot be computed on these patients is nan.
    """
    if len(time) >= POINT_SUMS_FROM_ROWS:
        data = _Evaluated.build(reference, time, event, risk, survival, grid, tau)
        ones = np.ones((1, len(time)))
        return {k: float(v[0]) for k, v in _replicates(data, ones, detail).items()}
    y = survival_y(time, event)
    out = {"c_index": _safe(lambda: harrell_c(time, event, risk)),
           "uno_c": _safe(lambda: concordance_index_ipcw(reference, y, risk, tau=tau)[0]),
           "ibs": _safe(lambda: integrated_brier_score(
               reference, y, survival[:, grid.columns(grid.ibs)], grid.ibs))}
    at_horizons = survival[:, grid.columns(grid.horizons)]
    aucs = [_td_auc(reference, y, 1.0 - at_horizons[:, j], h)
            for j, h in enumerate(grid.horizons)]
    out["td_auc"] = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else math.nan
    if detail:
        for j, h in enumerate(grid.horizons):
            key = horizon_key(h)
            out[f"td_auc@{key}"] = aucs[j]
            out[f"calibration_slope@{key}"] = calibration_slope(time, event, at_horizons[:, j], h)
            expected = float(np.mean(1.0 - at_horizons[:, j]))
            observed = 1.0 - kaplan_meier_at(time, event, h)
            out[f"observed_expected@{key}"] = observed / expected if expected > 0 else math.nan
    return out


def _safe(compute) -> float:
    try:
        return float(compute())
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return math.nan


def calibration_table(time: Floats, event: NDArray[np.bool_], risk_at_h: Floats, horizon: float,
                      bins: int = 10) -> list[dict[str, float]]:
    """Predicted against Kaplan-Meier observed risk at ``horizon`` by group of predicted risk.

    Parameters
    ----------
    time, event : ndarray of shape (n,)
    risk_at_h : ndarray of shape (n,)
        Predicted risk ``1 - S(horizon)``.
    horizon : float
    bins : int, default=10
        Groups of (nearly) equal size by predicted risk; fewer when there are under 20
        patients per group.

    Returns
    -------
    list of dict
        Per group, lowest predicted risk first: ``n``, ``events`` (by the horizon),
        ``predicted`` (mean), ``observed`` (1 - Kaplan-Meier at the horizon) with its 95% CI
        ``observed_low``/``observed_high``, and ``followed`` (whether some patient of the group
        was followed to the horizon).

    Notes
    -----
    The CI is Kaplan-Meier's log-log interval, which has zero width where the estimate is 0
    or 1. A group with no event by the horizon (observed risk 0) gets instead the exact
    binomial (Clopper-Pearson) interval of 0 events among its ``m`` patients whose status at
    the horizon is known (an event by then, or followed to it): ``[0, 1 - 0.025 ** (1 / m)]``
    (0 events in 22 patients: up to 15.4%). A group where every such patient had the event
    (observed risk 1) gets ``[0.025 ** (1 / m), 1]``. Patients censored before the horizon are
    left out of ``m``, so the interval is, if anything, too wide. With ``m = 0`` it is
    ``[0, 1]``.
    """
    bins = max(1, min(bins, len(time) // 20))
    order = np.argsort(risk_at_h, kind="stable")
    rows = []
    for members in np.array_split(order, bins):
        t, e = time[members], event[members]
        observed, obs_low, obs_high = observed_risk(t, e, horizon)
        rows.append({"n": len(members), "events": int((e & (t <= horizon)).sum()),
                     "predicted": float(risk_at_h[members].mean()), "observed": float(observed),
                     "observed_low": float(obs_low), "observed_high": float(obs_high),
                     "followed": bool(t.max() >= horizon)})
    return rows


def observed_risk(time: Floats, event: NDArray[np.bool_], horizon: float,
                  confidence: float = 0.95) -> tuple[float, float, float]:
    """The Kaplan-Meier risk by ``horizon`` and its CI: ``(risk, low, high)``.

    The CI is Kaplan-Meier's log-log interval; where the risk is 0 or 1, where that interval
    has zero width, it is the exact binomial one described in :func:`calibration_table`.
    """
    steps, surv, (low, high) = kaplan_meier_estimator(event, time, conf_type="log-log",
                                                      conf_level=confidence)
    position = np.searchsorted(steps, horizon, side="right") - 1
    if position < 0:  # no time up to the horizon: nobody had the event by then
        return (0.0, *_exact_risk_interval(time, event, horizon, 0.0, confidence))
    risk = float(1.0 - surv[position])
    if risk in (0.0, 1.0):
        return (risk, *_exact_risk_interval(time, event, horizon, risk, confidence))
    return risk, float(1.0 - high[position]), float(1.0 - low[position])


def _exact_risk_interval(time: Floats, event: NDArray[np.bool_], horizon: float,
                         observed: float, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of a risk of 0 or 1 by ``horizon`` (see
    :func:`calibration_table`)."""
    known = int(np.count_nonzero((time >= horizon) | (event & (time <= horizon))))
    if known == 0:
        return 0.0, 1.0
    # the binomial tail of 0 (or all) events of `known`
    bound = float(((1.0 - confidence) / 2.0) ** (1.0 / known))
    return (0.0, 1.0 - bound) if observed == 0.0 else (bound, 1.0)


def _observed_expected(time: Floats, event: NDArray[np.bool_], risk_at_h: Floats,
                       horizon: float, value: float, confidence: float) -> dict[str, float]:
    """Observed/expected at ``horizon`` with the CI of the module docstring."""
    expected = float(np.mean(risk_at_h))
    if not np.isfinite(value) or expected <= 0:
        return {"value": value, "ci_low": math.nan, "ci_high": math.nan}
    _, low, high = observed_risk(time, event, horizon, confidence)
    return {"value": value, "ci_low": low / expected, "ci_high": high / expected}


def logrank_test(time: ArrayLike, event: ArrayLike, groups: ArrayLike) -> dict[str, float]:
    """Log-rank test between groups (scikit-survival's ``compare_survival``).

    Returns
    -------
    dict
        ``statistic`` (chi-squared), ``df`` (groups - 1) and ``p_value``; nan when fewer than
        two groups are present.
    """
    groups = np.asarray(groups)
    present = np.unique(groups)
    if len(present) < 2:
        return {"statistic": math.nan, "df": 0, "p_value": math.nan}
    statistic, p_value = compare_survival(survival_y(time, event), groups)
    return {"statistic": float(statistic), "df": len(present) - 1, "p_value": float(p_value)}




def proportional_hazards_test(X: ArrayLike, time: ArrayLike, event: ArrayLike, coef: ArrayLike,
                              names: list[str], penalty: float = 0.0,
                              terms: Mapping[str, Sequence[int]] | None = None) -> dict[str, Any]:
    """Grambsch-Therneau test of proportional hazards on scaled Schoenfeld residuals.

    The test of R's ``survival::cox.zph`` (``transform="km"``, as in survival < 3.0): for each
    term, the correlation over event times between its scaled Schoenfeld residuals and
    ``1 - KM(t-)``; under proportional hazards the residuals do not trend with time. A term is
    one column (chi-squared with 1 degree of freedom, as in cox.zph) or several, such as the
    one-hot columns of a categorical variable: then the Wald test of the term's time trends
    together, chi-squared with as many degrees of freedom as the term has independent
    columns (the levels less one). The global test has the rank of the design.

    Columns that are linear combinations of others (every level of a categorical variable
    one-hot encoded: they sum to 1) leave the partial likelihood unchanged along those
    directions. The test is done on the design's identifiable directions only: on the full
    one-hot design, a ridge penalty had given the redundant direction a variance of
    1/penalty, which shrank each level's statistic towards 0 (crossing hazards between two
    groups: 0.29, p = 0.59, against 156 with one level as reference), and the global test had
    counted the redundant columns as degrees of freedom.

    Parameters
    ----------
    X : array-like of shape (n, p)
        The features the Cox model was fitted on.
    time, event : array-like of shape (n,)
    coef : array-like of shape (p,)
        The fitted log hazard ratios.
    names : list of str
        Column names; each column is a term of its own unless ``terms`` says otherwise.
    penalty : float, default=0
        Ridge penalty of the fit (added to the information matrix on the identifiable
        directions, where a ridge fit's coefficients lie).
    terms : mapping of str to list of int, optional
        The terms to report, each with the positions of its columns in ``X`` (a categorical
        variable: its one-hot columns). Default: one term per column, named by ``names``.

    Returns
    -------
    dict
        ``features``: ``{term: {"statistic", "df", "p_value", "rho"}}`` (``rho``, the
        correlation with time, for a one-column term only; a term with no identifiable
        direction, such as a constant column, is left out); ``global``: ``{"statistic", "df",
        "p_value"}``; ``events``: the number of events used.
    """
    from scipy.stats import chi2

    X = np.asarray(X, dtype=np.float64)
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event, dtype=bool)
    order = np.argsort(time, kind="stable")
    X, time, event = X[order], time[order], event[order]
    eta = X @ np.asarray(coef, dtype=np.float64)
    w = np.exp(eta - eta.max())
    # risk-set sums over t_k >= t_i (ties share the risk set of their first member)
    first = np.searchsorted(time, time, side="left")
    s0 = np.cumsum(w[::-1])[::-1][first]
    s1 = np.cumsum((w[:, None] * X)[::-1], axis=0)[::-1][first]
    means = s1 / s0[:, None]
    died = np.flatnonzero(event)
    residuals = X[died] - means[died]
    # sum over events of S2/S0 - mean mean', with S2/S0 regrouped by patient: patient k is in
    # the risk set of every event at or before t_k
    last = np.searchsorted(time, time, side="right") - 1
    share = np.cumsum(np.where(event, 1.0 / s0, 0.0))[last]
    information = (X * (w * share)[:, None]).T @ X - means[died].T @ means[died]
    # the variance on the identifiable directions (the residuals have no component along the
    # others), the penalty added there
    variance, rank = _inverse_on_range(information, penalty)
    km_times, km = kaplan_meier_estimator(event, time)
    before = np.concatenate([[1.0], km])[np.searchsorted(km_times, time[died], side="left")]
    g = (1.0 - before) - np.mean(1.0 - before)
    d = len(died)
    raw = g @ residuals
    trend = variance @ raw  # proportional to the one-step estimate of each time trend
    scale = d / np.sum(g**2)
    scaled = residuals @ variance * d
    features = {}
    for name, columns in (terms or {n: [j] for j, n in enumerate(names)}).items():
        columns = list(columns)
        block, df = _inverse_on_range(variance[np.ix_(columns, columns)], 0.0)
        if df == 0:
            continue
        statistic = float(trend[columns] @ block @ trend[columns] * scale)
        rho = None
        if len(columns) == 1 and np.ptp(scaled[:, columns[0]]) > 0:
            rho = float(np.corrcoef(g, scaled[:, columns[0]])[0, 1])
        features[name] = {"statistic": statistic, "df": df,
                          "p_value": float(chi2.sf(statistic, df)), "rho": rho}
    global_statistic = float(raw @ variance @ raw * scale)
    return {
        "features": features,
        "global": {"statistic": global_statistic, "df": rank,
                   "p_value": float(chi2.sf(global_statistic, rank))},
        "events": d,
    }


def _inverse_on_range(matrix: Floats, penalty: float) -> tuple[Floats, int]:
    """``(matrix + penalty)^-1`` on the range of a symmetric positive semi-definite matrix
    (its pseudo-inverse when ``penalty`` is 0), and the matrix's rank.

    Eigenvalues under 1e-9 of the largest are taken as 0 (a column that is a combination of
    others, a constant column).
    """
    values, vectors = np.linalg.eigh(matrix)
    keep = values > _RANK_TOLERANCE * max(float(values.max(initial=0.0)), 0.0)
    if not keep.any():
        return np.zeros_like(matrix), 0
    kept = vectors[:, keep]
    return (kept / (values[keep] + penalty)) @ kept.T, int(keep.sum())

# --------------------------------------------------------------------------- bootstrap
# A replicate resamples patients, so it is fully described by how many times it draws each
# patient (its counts c). Every figure here is a sum over patients, or over pairs of patients,
# of terms that do not change between replicates (the censoring weights come from the fixed
# reference outcome), so a replicate's value is a linear or bilinear form in c: Harrell's C is
# (c*w)'Ac / (c*w)'Bc, with A[i, j] the concordance and B[i, j] the comparability of the pair
# (i, j). The pair sums are built without pair matrices, by a tree over risk ranks visited
# latest follow-up first (permed.evaluate._concordance): O(n log n) per replicate, where
# calling scikit-survival's functions on each replicate costs 0.3 s per replicate on 1,775
# SUPPORT patients (5 minutes for 1,000 replicates) and pair matrices grow with n squared. With
# every count equal to 1 the forms give scikit-survival's own values (checked to 1e-9 in
# tests/evaluate/test_survival.py). The calibration slope and Kaplan-Meier risk are refitted on
# each replicate with the counts as case weights.


@dataclass(frozen=True)
class _Evaluated:
    """One evaluated set of patients, with the censoring weights of the reference."""

    time: Floats
    event: NDArray[np.bool_]
    risk: Floats
    survival: Floats
    grid: SurvivalGrid
    tau: float
    censoring_at_time: Floats  # G(t_i) of the reference censoring distribution
    censoring_at_ibs: Floats  # G at grid.ibs

    @classmethod
    def build(cls, reference: NDArray[Any], time: Floats, event: NDArray[np.bool_],
              risk: Floats, survival: Floats, grid: SurvivalGrid, tau: float) -> _Evaluated:
        from sksurv.nonparametric import CensoringDistributionEstimator

        censoring = CensoringDistributionEstimator().fit(reference)
        last = censoring.unique_time_[-1]
        # beyond the reference follow-up scikit-survival refuses; the figure is then nan
        at_time = np.full(len(time), np.nan)
        inside = time <= last
        at_time[inside] = censoring.predict_proba(time[inside])
        at_ibs = np.full(len(grid.ibs), np.nan)
        inside_grid = grid.ibs <= last
        at_ibs[inside_grid] = censoring.predict_proba(grid.ibs[inside_grid])
        return cls(time, event, risk, survival, grid, tau, at_time, at_ibs)


def concordance_replicates(time: Floats, event: NDArray[np.bool_], risk: Floats,
                           counts: Floats, weights: Floats | None = None) -> Floats:
    """Harrell's C (``weights`` None) or a weighted C of each bootstrap replicate.

    Parameters
    ----------
    time, event, risk : ndarray of shape (n,)
    counts : ndarray of shape (n_boot, n)
        How many times each replicate draws each patient (see :func:`replicate_counts`).
    weights : ndarray of shape (n,), optional
        Weight of each patient as the earlier event of a pair (Uno's C: ``1/G(t)^2`` before
        tau, else 0).

    Returns
    -------
    ndarray of shape (n_boot,)
        With every count 1, exactly scikit-survival's ``concordance_index_censored`` (or
        ``concordance_index_ipcw``) value.
    """
    weights = np.ones(len(time)) if weights is None else weights
    if not np.any(event & (weights > 0)):
        return np.full(counts.shape[0], np.nan)
    concordant, comparable = concordance_sums(time, event, risk, counts, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return concordant / comparable


def _td_auc_forms(data: _Evaluated, counts: Floats, j: int) -> Floats:
    horizon = data.grid.horizons[j]
    estimate = 1.0 - data.survival[:, data.grid.columns(data.grid.horizons)[j]]
    cases = np.flatnonzero(data.event & (data.time <= horizon))
    controls = np.flatnonzero(data.time > horizon)
    weights = np.zeros(len(data.time))
    weights[cases] = 1.0 / data.censoring_at_time[cases]
    if not len(cases) or not len(controls) or not np.all(np.isfinite(weights)):
        return np.full(counts.shape[0], np.nan)

    numerator = two_sample_sums(estimate, cases, controls, counts, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / ((counts[:, cases] @ weights[cases]) * counts[:, controls].sum(axis=1))


def _ibs_forms(data: _Evaluated, counts: Floats) -> Floats:
    grid = data.grid
    if len(grid.ibs) < 2:
        return np.full(counts.shape[0], np.nan)
    predicted = data.survival[:, grid.columns(grid.ibs)]
    at_time = np.where(data.censoring_at_time == 0, np.inf, data.censoring_at_time)
    at_grid = np.where(data.censoring_at_ibs == 0, np.inf, data.censoring_at_ibs)
    case = (data.time[:, None] <= grid.ibs[None, :]) & data.event[:, None]
    control = data.time[:, None] > grid.ibs[None, :]
    with np.errstate(invalid="ignore"):
        loss = (predicted**2 * case / at_time[:, None]
                + (1.0 - predicted) ** 2 * control / at_grid[None, :])
    brier = counts @ loss / counts.sum(axis=1, keepdims=True)
    return np.trapezoid(brier, grid.ibs, axis=1) / (grid.ibs[-1] - grid.ibs[0])


def _weighted_km_at(time: Floats, event: NDArray[np.bool_], weights: Floats,
                    horizon: float) -> float:
    return _KaplanMeierAt(time, event, horizon).value(weights)


class _KaplanMeierAt:
    """Kaplan-Meier survival at one horizon for many rows of case weights at once."""

    def __init__(self, time: Floats, event: NDArray[np.bool_], horizon: float) -> None:
        self.order = np.argsort(time, kind="stable")
        ordered = time[self.order]
        self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self.keep = ordered[self.starts] <= horizon
        self.event = event[self.order].astype(np.float64)

    def value(self, weights: Floats) -> float:
        return float(self.values(weights[None, :])[0])

    def values(self, weights: Floats) -> Floats:
        weights = weights[:, self.order]
        at_risk = np.cumsum(weights[:, ::-1], axis=1)[:, ::-1][:, self.starts]
        deaths = np.add.reduceat(weights * self.event, self.starts, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            factors = np.where(at_risk > 0, 1.0 - deaths / at_risk, 1.0)
        return np.prod(factors[:, self.keep], axis=1)


def replicate_counts(strata: ArrayLike, n_boot: int, seed: int) -> Floats:
    """How many times each bootstrap replicate draws each patient: shape (n_boot, n).

    The draws are those of :func:`permed.evaluate.bootstrap_dict` with ``y_true=strata``
    (resampling within each stratum, same seed, same replicates).
    """
    strata = np.asarray(strata)
    n = len(strata)
    blocks = []
    for chunk in _resample_indices(n, strata, n_boot, seed):
        offsets = chunk + np.arange(chunk.shape[0])[:, None] * n
        blocks.append(np.bincount(offsets.ravel(), minlength=chunk.size).reshape(chunk.shape))
    return np.vstack(blocks).astype(np.float64)


def _replicates(data: _Evaluated, counts: Floats, detail: bool = True) -> dict[str, Floats]:
    """Every figure of ``survival_metrics(..., detail=detail)`` for each replicate."""
    uno_weights = np.zeros(len(data.time))
    before = data.event & (data.time < data.tau)
    uno_weights[before] = 1.0 / data.censoring_at_time[before] ** 2
    out = {"c_index": concordance_replicates(data.time, data.event, data.risk, counts),
           "uno_c": concordance_replicates(data.time, data.event, data.risk, counts,
                                           uno_weights),
           "ibs": _ibs_forms(data, counts)}
    aucs = np.column_stack([_td_auc_forms(data, counts, j)
                            for j in range(len(data.grid.horizons))])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all horizons undefined: nan
        out["td_auc"] = np.nanmean(aucs, axis=1)
    if detail:
        out.update(_horizon_replicates(data, counts, aucs))
    return out


def _horizon_replicates(data: _Evaluated, counts: Floats, aucs: Floats) -> dict[str, Floats]:
    """td-AUC, observed/expected risk and calibration slope at each horizon, per replicate."""
    out = {}
    at_horizons = data.survival[:, data.grid.columns(data.grid.horizons)]
    for j, h in enumerate(data.grid.horizons):
        key = horizon_key(h)
        out[f"td_auc@{key}"] = aucs[:, j]
        slope_fit = _SlopeFit(data.time, data.event, at_horizons[:, j], h)
        start = slope_fit.solve(np.ones(len(data.time)))
        start = start if np.isfinite(start) else 1.0
        expected = counts @ (1.0 - at_horizons[:, j]) / counts.sum(axis=1)
        observed = 1.0 - _KaplanMeierAt(data.time, data.event, h).values(counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"observed_expected@{key}"] = np.where(expected > 0, observed / expected, np.nan)
        out[f"calibration_slope@{key}"] = np.concatenate([
            slope_fit.solve_many(block, np.full(len(block), start))
            for block in np.array_split(counts, max(1, len(counts) // 100))])
    return out


def survival_report(reference: NDArray[Any], time: ArrayLike, event: ArrayLike, risk: ArrayLike,
                    survival: ArrayLike, grid: SurvivalGrid, tau: float, n_boot: int = 1000,
                    seed: int = 0, confidence: float = 0.95,
                    averaged: ArrayLike | None = None) -> dict[str, Any]:
    """Test figures of a risk model with percentile bootstrap confidence intervals.

    Point values come from :func:`survival_metrics` (scikit-survival's functions). Patients
    are resampled within events and within censored patients, so every replicate keeps the
    number of events; the censoring distribution stays that of ``reference``.

    Parameters
    ----------
    reference : structured array
        Outcome the censoring distribution is estimated from (see :func:`censoring_reference`).
    time, event, risk : array-like of shape (n,)
    survival : array-like of shape (n, len(grid.times))
        Predicted survival at ``grid.times``.
    grid : SurvivalGrid
    tau : float
        Truncation time of Uno's C.
    n_boot : int, default=1000
    seed : int, default=0
    confidence : float, default=0.95
    averaged : array-like, optional
        The horizons of ``grid`` the headline ``td_auc`` averages (default: all of them; none:
        nan). The others keep their own figures in ``td_auc_by_horizon``.

    Returns
    -------
    dict
        ``test`` (c_index, uno_c, ibs, td_auc), ``td_auc_by_horizon`` and ``calibration``
        (per horizon: ``slope`` and ``observed_expected`` with CIs, ``predicted``,
        ``observed`` and the decile table), each figure as ``{"value", "ci_low", "ci_high"}``.

    Raises
    ------
    PermedError
        If the arrays differ in length or ``survival`` does not match the grid.
    """
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event, dtype=bool)
    risk = np.asarray(risk, dtype=np.float64)
    survival = np.asarray(survival, dtype=np.float64)
    if survival.shape != (len(time), len(grid.times)) or len(risk) != len(time):
        raise PermedError(f"survival has shape {survival.shape} and risk {risk.shape}, expected "
                          f"{(len(time), len(grid.times))} and {(len(time),)}: predict both for "
                          "the same patients, survival at grid.times")
    _check_options(n_boot, confidence)
    point = survival_metrics(reference, time, event, risk, survival, grid, tau, detail=True)
    data = _Evaluated.build(reference, time, event, risk, survival, grid, tau)
    replicates = _replicates(data, replicate_counts(event, n_boot, seed))
    if averaged is not None:  # e.g. the horizons enough evaluated patients are followed to
        keys = [f"td_auc@{horizon_key(h)}" for h in np.asarray(averaged, dtype=np.float64)]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no horizon, or all undefined
            point["td_auc"] = (float(np.nanmean([point[k] for k in keys])) if keys
                               else math.nan)
            replicates["td_auc"] = (np.nanmean(np.column_stack([replicates[k] for k in keys]),
                                               axis=1) if keys
                                    else np.full(n_boot, math.nan))
    # a figure undefined on the patients themselves gets no interval either
    figures = {name: {"value": value, **_percentile_ci(
        replicates[name] if np.isfinite(value) else np.full(1, math.nan), confidence)}
        for name, value in point.items()}
    at_horizons = survival[:, grid.columns(grid.horizons)]
    calibration = {}
    for j, h in enumerate(grid.horizons):
        key = horizon_key(h)
        calibration[key] = {
            "slope": figures[f"calibration_slope@{key}"],
            "observed_expected": _observed_expected(
                time, event, 1.0 - at_horizons[:, j], h,
                figures[f"observed_expected@{key}"]["value"], confidence),
            "predicted": float(np.mean(1.0 - at_horizons[:, j])),
            "observed": 1.0 - kaplan_meier_at(time, event, h),
            "deciles": calibration_table(time, event, 1.0 - at_horizons[:, j], h),
        }
    return {"test": {m: figures[m] for m in SURVIVAL_METRICS},
            "td_auc_by_horizon": {horizon_key(h): figures[f"td_auc@{horizon_key(h)}"]
                                  for h in grid.horizons},
            "calibration": calibration}
