"""Group audit of a risk model: per-group C-index and calibration, gaps and flags.

The result has the shape of :func:`permed.fairness.audit_classification`'s (attributes ->
groups -> metrics, disparities, flags), so the report renders both alike. Per group: Harrell's
C-index (scikit-survival's ``concordance_index_censored`` for the value) and, at one horizon,
the observed/expected ratio (Kaplan-Meier risk over mean predicted risk). Confidence intervals
come from a percentile bootstrap resampled within each group x event status, so every
replicate keeps the group sizes and their numbers of events; the replicates' C-indexes are the
bilinear forms of :func:`permed.evaluate.survival.concordance_replicates`.

Undefined values are ``None`` throughout the result, so it is valid JSON as it is.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from permed.evaluate._bootstrap import _percentile_ci
from permed.evaluate.survival import (
    _weighted_km_at,
    concordance_replicates,
    harrell_c,
    horizon_key,
    replicate_counts,
)
from permed.exceptions import PermedError
from permed.fairness._audit import Edges, _check_edges, bins_entry, bins_note, group_labels

__all__ = ["SURVIVAL_GROUP_METRICS", "audit_survival"]

SURVIVAL_GROUP_METRICS = ("c_index", "observed_expected")
CONFIDENCE = 0.95


def _none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _entry(value: float, replicates: NDArray[np.float64]) -> dict[str, float | None]:
    ci = _percentile_ci(replicates, CONFIDENCE)
    return {"value": _none(value), "ci_low": _none(ci["ci_low"]),
            "ci_high": _none(ci["ci_high"])}


def _observed_expected(time: NDArray[Any], event: NDArray[Any], risk_at_h: NDArray[Any],
                       horizon: float, weights: NDArray[Any]) -> float:
    if weights.sum() == 0:
        return math.nan
    expected = float(weights @ risk_at_h / weights.sum())
    observed = 1.0 - _weighted_km_at(time, event, weights, horizon)
    return observed / expected if expected > 0 else math.nan


def audit_survival(time: ArrayLike, event: ArrayLike, risk: ArrayLike, sensitive: pd.DataFrame,
                   risk_at_horizon: ArrayLike | None = None, horizon: float | None = None,
                   min_group_size: int = 20, max_gap: float = 0.1, n_boot: int = 200,
                   seed: int = 0, edges: Edges | None = None) -> dict[str, Any]:
    """Audit a risk model's discrimination and calibration across patient groups.

    Parameters
    ----------
    time, event, risk : array-like of shape (n,)
        Follow-up times, event indicators and predicted risk scores of the evaluated patients.
    sensitive : pandas.DataFrame
        One column per sensitive attribute, ``n`` rows in the same order (index ignored).
        Numeric columns are binned at ``edges`` (or, without, at the quartiles of these
        patients when they have more than 5 values), as in
        :func:`permed.fairness.audit_classification`.
    risk_at_horizon : array-like of shape (n,), optional
        Predicted absolute risk ``1 - S(horizon)``: adds the observed/expected ratio.
    horizon : float, optional
        The horizon of ``risk_at_horizon``.
    min_group_size : int, default=20
        Smaller groups are reported with ``too_small: True`` and left out of the gaps.
    max_gap : float, default=0.1
        A gap between groups above this is flagged.
    n_boot : int, default=200
    seed : int, default=0
    edges : mapping of str to sequence of float, optional
        Bin edges of the numeric columns, from :func:`permed.fairness.bin_edges` on the
        development split; see :func:`permed.fairness.audit_classification`.

    Returns
    -------
    dict
        ``{"attributes": {column: {"groups": {level: {"n", "prevalence" (share with the
        event), "c_index", "observed_expected", "too_small"}}, "disparities": {"c_index_gap",
        "calibration_gap"}, "flags": [str]}}, "min_group_size", "max_gap", "horizon", "bins"
        (given ``edges``, or when a column was binned), "note"}``.

    Raises
    ------
    PermedError
        If the inputs do not have the same rows, an edge list is not increasing, or a column
        binned at ``edges`` holds text.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> risk = rng.normal(size=300)
    >>> time = rng.exponential(np.exp(-risk))
    >>> sex = pd.DataFrame({"sex": rng.choice(["F", "M"], 300)})
    >>> audit = audit_survival(time, np.ones(300, bool), risk, sex, n_boot=50)
    >>> sorted(audit["attributes"]["sex"]["groups"]), audit["attributes"]["sex"]["flags"]
    (['F', 'M'], [])
    """
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event, dtype=bool)
    risk = np.asarray(risk, dtype=np.float64)
    if not len(time) == len(event) == len(risk) == len(sensitive):
        raise PermedError(f"time, event, risk and sensitive must have the same rows, got "
                          f"{len(time)}, {len(event)}, {len(risk)} and {len(sensitive)}")
    absolute = None if risk_at_horizon is None else np.asarray(risk_at_horizon, np.float64)
    edges = _check_edges(edges)
    data = (time, event, risk, absolute, horizon)
    attributes = {}
    binned: dict[str, list[float]] = {}
    for column in sensitive.columns:
        labels, levels, used = group_labels(sensitive[column].reset_index(drop=True),
                                             str(column), edges)
        if used is not None:
            binned[str(column)] = used
        attributes[str(column)] = _audit(str(column), labels, levels, data, min_group_size,
                                         max_gap, n_boot, seed)
    note = ("Harrell's C-index per group (only pairs within the group are compared)"
            + ("" if absolute is None else
               f"; observed/expected risk at {horizon_key(horizon)}: Kaplan-Meier "
               "risk over mean predicted risk (1 = calibrated)"))
    result: dict[str, Any] = {"attributes": attributes, "min_group_size": int(min_group_size),
                              "max_gap": float(max_gap), "horizon": horizon}
    if edges is not None or binned:
        result["bins"] = bins_entry(binned, fixed=edges is not None)
    if binned:
        note += ". " + bins_note(sensitive, binned, edges is not None)
    result["note"] = note
    return result


def _audit(name: str, labels: NDArray[Any], levels: list[str],
           data: tuple[Any, ...], min_group_size: int, max_gap: float, n_boot: int,
           seed: int) -> dict[str, Any]:
    time, event, risk, absolute, horizon = data
    strata = np.array([f"{g}|{int(e)}" for g, e in zip(labels, event, strict=True)])
    counts = replicate_counts(strata, n_boot, seed)
    groups: dict[str, Any] = {}
    replicates: dict[str, dict[str, NDArray[np.float64]]] = {}
    for level in levels:
        rows = np.flatnonzero(labels == level)
        mine = (time[rows], event[rows], risk[rows])
        entry: dict[str, Any] = {"n": len(rows), "prevalence": float(event[rows].mean())}
        c_reps = concordance_replicates(*mine, counts[:, rows])
        entry["c_index"] = _entry(_safe_c(*mine), c_reps)
        replicates[level] = {"c_index": c_reps}
        if absolute is not None:
            oe = np.array([_observed_expected(*mine[:2], absolute[rows], horizon, w)
                           for w in counts[:, rows]])
            entry["observed_expected"] = _entry(
                _observed_expected(*mine[:2], absolute[rows], horizon, np.ones(len(rows))), oe)
            replicates[level]["observed_expected"] = oe
        entry["too_small"] = len(rows) < min_group_size
        groups[level] = entry
    disparities, flags = _gaps(name, groups, replicates, max_gap)
    return {"groups": groups, "disparities": disparities, "flags": flags}


def _safe_c(time: NDArray[Any], event: NDArray[Any], risk: NDArray[Any]) -> float:
    try:
        return harrell_c(time, event, risk)
    except ValueError:  # no event or fewer than 2 patients in the group
        return math.nan


def _gaps(name: str, groups: dict[str, Any], replicates: dict[str, dict[str, Any]],
          max_gap: float) -> tuple[dict[str, Any], list[str]]:
    eligible = [g for g, entry in groups.items() if not entry["too_small"]]
    disparities: dict[str, Any] = {}
    flags: list[str] = []
    for metric, gap_name in (("c_index", "c_index_gap"), ("observed_expected", "calibration_gap")):
        if len(eligible) < 2 or metric not in replicates[eligible[0]]:
            continue
        values = np.array([groups[g][metric]["value"] if groups[g][metric]["value"] is not None
                           else np.nan for g in eligible])
        stacked = np.column_stack([replicates[g][metric] for g in eligible])
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # replicates undefined everywhere
            gap = float(np.nanmax(values) - np.nanmin(values)) if np.isfinite(values).any() \
                else math.nan
            gap_reps = np.nanmax(stacked, axis=1) - np.nanmin(stacked, axis=1)
        disparities[gap_name] = _entry(gap, gap_reps)
        if math.isfinite(gap) and gap > max_gap:
            best, worst = eligible[int(np.nanargmax(values))], eligible[int(np.nanargmin(values))]
            label = "C-index" if metric == "c_index" else "observed/expected risk"
            flags.append(f"{name}: {label} differs by {gap:.2f} between groups '{best}' "
                         f"({np.nanmax(values):.2f}) and '{worst}' ({np.nanmin(values):.2f}), "
                         f"more than {max_gap:g}")
    return disparities, flags
