"""Group audit of a classifier: per-group metrics, disparities and flags.

Per-group point values come from fairlearn's :class:`~fairlearn.metrics.MetricFrame`, the
equalized-odds and demographic-parity differences from :mod:`fairlearn.metrics`. Their
confidence intervals come from a percentile bootstrap over patients
(:func:`permed.evaluate.bootstrap_dict`), resampled within each group x class so every
replicate keeps the group sizes; a binary group's proportions (sensitivity, specificity, PPV,
selection rate) get Wilson score intervals instead (:func:`scipy.stats.binomtest`): with the
class counts kept, a bootstrap of a proportion of 0 or 1 has zero width (a group of 17 whose
every patient with the disease is found: sensitivity 1.00 (1.00-1.00)); a binary group's AUROC
gets Newcombe's score interval (:func:`permed.evaluate._auroc_interval.auroc_score_interval`)
for the same reason (a group whose every positive outranks every negative read 1.00
(1.00-1.00)), and because the bootstrap under-covers in small groups
(``benchmarks/group_auroc.py``). MetricFrame costs
tens of milliseconds per call, far too much to run on every replicate, so the replicates
recompute the same figures with the same metric functions in NumPy;
``tests/fairness/test_audit.py`` checks that both paths agree.

Undefined values are ``None`` throughout the result (not nan), so it is valid JSON as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
)
from numpy.typing import ArrayLike, NDArray
from scipy.stats import binomtest

from permed.evaluate._auroc_interval import auroc_score_interval
from permed.evaluate._bootstrap import bootstrap_dict
from permed.evaluate.classification import (
    _auroc,
    _check_labels,
    _check_y_proba,
    _counts,
    _ece,
    _macro,
    _macro_ppv,
    _per_class,
    _ratio,
)
from permed.exceptions import PermedError
from permed.study._columns import text_among_numbers

__all__ = ["GROUP_METRICS", "audit_classification", "bin_edges", "bins_entry", "group_labels",
           "saved_bin_edges"]

GROUP_METRICS = ("auroc", "sensitivity", "specificity", "ppv", "ece", "selection_rate")
DISPARITIES = (
    "equalized_odds_difference",
    "demographic_parity_difference",
    "auroc_gap",
    "calibration_gap",
)
# Numeric sensitive columns with more distinct values than this are binned into quartiles.
MAX_LEVELS = 5
CONFIDENCE = 0.95
MISSING = "missing"
DEVELOPMENT = "the development split"
# Bin edges per numeric sensitive column: {"age": [29.0, 48.0, 56.0, 61.0, 77.0]}.
Edges = Mapping[str, Sequence[float]]

# --------------------------------------------------------------------------- group metrics
# Each takes (y, proba, predicted) for the rows of one group and returns {metric: float}, nan
# when undefined. The same function feeds MetricFrame and the bootstrap replicates.

GroupMetrics = Callable[[NDArray[Any], NDArray[Any], NDArray[Any]], dict[str, float]]


def _binary_group(y: NDArray[Any], proba: NDArray[Any], pred: NDArray[Any]) -> dict[str, float]:
    pos = y == 1
    tp, fp, fn, tn = _counts(pos, pred == 1)
    return {
        "auroc": _auroc(pos, proba[:, 1]),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "ece": _ece(pos.astype(np.float64), proba[:, 1], 10),
        "selection_rate": _ratio(tp + fp, len(y)),
    }


def _multiclass_group(
    y: NDArray[Any], proba: NDArray[Any], pred: NDArray[Any]
) -> dict[str, float]:
    per_class = _per_class(y, proba, pred)
    right = (proba.argmax(axis=1) == y).astype(np.float64)
    out = {m: _macro(per_class[m]) for m in ("auroc", "sensitivity", "specificity")}
    out["ppv"] = _macro_ppv(per_class["ppv"], y)
    out["ece"] = _ece(right, proba.max(axis=1), 10)
    out["selection_rate"] = math.nan
    return out


# --------------------------------------------------------------------------- the audit


@dataclass(frozen=True)
class _Data:
    y: NDArray[np.int64]
    proba: NDArray[np.float64]
    pred: NDArray[np.int64]
    group_metrics: GroupMetrics
    min_group_size: int
    max_gap: float
    n_boot: int
    seed: int

    @property
    def binary(self) -> bool:
        return self.proba.shape[1] == 2


def audit_classification(
    y: ArrayLike,
    proba: ArrayLike,
    predicted: ArrayLike,
    sensitive: pd.DataFrame,
    classes: Sequence[str],
    min_group_size: int = 20,
    max_gap: float = 0.1,
    n_boot: int = 200,
    seed: int = 0,
    edges: Edges | None = None,
) -> dict[str, Any]:
    """Audit a classifier's performance and calibration across patient groups.

    For every sensitive column (and every pair of columns, crossed) the audit gives each
    group's size, prevalence and ``auroc sensitivity specificity ppv ece selection_rate``
    with 95% bootstrap confidence intervals, and the disparities between groups:
    fairlearn's ``equalized_odds_difference`` and ``demographic_parity_difference`` on the
    predicted labels, ``auroc_gap`` and ``calibration_gap`` (largest minus smallest group
    AUROC and ECE). A disparity above ``max_gap`` is flagged.

    Numeric columns are binned at ``edges``, fixed once on the development split by
    :func:`bin_edges` so that a group means the same patients in every table of a run (labelled
    ``"age < 48"``, ``"age [48, 61)"``, ..., ``"age >= 70"``: the outer groups are open, so
    values beyond the development range fall in them). Without ``edges``, numeric columns with
    more than 5 distinct values are binned at the quartiles of the audited patients (labelled
    like ``"age [29, 48)"``, the last bin closed). Missing values form a group ``"missing"``
    (``"age missing"`` in a binned column). Groups smaller than
    ``min_group_size`` are reported, with their metrics and ``too_small: True``, but left out
    of the disparities (their gaps are mostly noise). With more than two
    classes the disparities are skipped (``"disparities": {}``), ``auroc``, ``sensitivity``,
    ``specificity`` and ``ppv`` are macro one-vs-rest, ``ece`` is top-label, and
    ``prevalence`` and ``selection_rate`` are undefined.

    Parameters
    ----------
    y : array-like of shape (n,)
        True class indices ``0..K-1``.
    proba : array-like of shape (n, K) or (n,)
        Predicted class probabilities (a 1-D array is the positive-class probability).
    predicted : array-like of shape (n,)
        Predicted class indices (for a binary model, the thresholded labels).
    sensitive : pandas.DataFrame
        One column per sensitive attribute, ``n`` rows in the order of ``y`` (the index is
        ignored).
    classes : sequence of str
        Class names, in the order of the columns of ``proba``.
    min_group_size : int, default=20
        Groups with fewer patients are marked ``too_small`` and left out of the disparities.
    max_gap : float, default=0.1
        Disparities above this value are flagged.
    n_boot : int, default=200
        Bootstrap replicates for the confidence intervals.
    seed : int, default=0
        Seed of the resampling.
    edges : mapping of str to sequence of float, optional
        Bin edges of the numeric columns, from :func:`bin_edges` on the development split's
        rows. A column named here is binned at its edges whatever its values in these rows;
        a column not named is not binned (its values are the groups). ``None`` (the default)
        bins each numeric column with more than 5 values at these rows' own quartiles.

    Returns
    -------
    dict
        JSON-ready: ``{"attributes": {column: audit}, "intersections": {"a & b": audit}
        (only with two or more columns), "min_group_size", "max_gap", "bins", "note"}``
        where an audit is ``{"groups": {level: {"n", "prevalence", <metric>: {"value",
        "ci_low", "ci_high"}, ..., "too_small"}}, "disparities": {name: {"value", "ci_low",
        "ci_high"}}, "flags": [str]}`` and ``bins`` (given ``edges``, or when a column was
        binned) is ``{column: {"edges", "groups", "from"}}``. Undefined values are ``None``.

    Raises
    ------
    PermedError
        If the inputs are malformed or do not have the same rows, an edge list is not
        increasing, or a column binned at ``edges`` holds text.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200)
    >>> p = np.clip(0.6 * y + 0.4 * rng.random(200), 0, 1)
    >>> sex = pd.DataFrame({"sex": rng.choice(["F", "M"], 200)})
    >>> audit = audit_classification(y, p, (p >= 0.5).astype(int), sex, ["no", "yes"],
    ...                              n_boot=50)
    >>> sorted(audit["attributes"]["sex"]["groups"]), audit["attributes"]["sex"]["flags"]
    (['F', 'M'], [])
    """
    labels, probs, pred = _check_inputs(
        y, proba, predicted, sensitive, classes, min_group_size, max_gap, n_boot
    )
    edges = _check_edges(edges)
    data = _Data(
        y=labels,
        proba=probs,
        pred=pred,
        group_metrics=_binary_group if probs.shape[1] == 2 else _multiclass_group,
        min_group_size=int(min_group_size),
        max_gap=float(max_gap),
        n_boot=int(n_boot),
        seed=seed,
    )
    columns = [str(c) for c in sensitive.columns]
    groupings: dict[str, tuple[NDArray[Any], list[str]]] = {}
    binned: dict[str, list[float]] = {}
    for column in sensitive.columns:
        group_of_row, levels, used = group_labels(sensitive[column], str(column), edges)
        groupings[str(column)] = (group_of_row, levels)
        if used is not None:
            binned[str(column)] = used
    result: dict[str, Any] = {
        "attributes": {name: _audit(name, *groupings[name], data) for name in columns}
    }
    if len(columns) >= 2:
        result["intersections"] = {
            f"{a} & {b}": _audit(f"{a} & {b}", *_cross(groupings[a], groupings[b]), data)
            for a, b in combinations(columns, 2)
        }
    result["min_group_size"] = data.min_group_size
    result["max_gap"] = data.max_gap
    if edges is not None or binned:
        result["bins"] = bins_entry(binned, fixed=edges is not None)
    result["note"] = _note(data, sensitive, binned, edges is not None, len(columns))
    return result


def _check_inputs(
    y: ArrayLike,
    proba: ArrayLike,
    predicted: ArrayLike,
    sensitive: pd.DataFrame,
    classes: Sequence[str],
    min_group_size: int,
    max_gap: float,
    n_boot: int,
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    labels, probs = _check_y_proba(y, proba)
    n, k = probs.shape
    pred = _check_labels(predicted, "predicted")
    if len(pred) != n or pred.min() < 0 or pred.max() >= k:
        raise PermedError(
            f"predicted must hold {n} class indices in 0..{k - 1} like y, got {len(pred)} "
            f"values in {pred.min()}..{pred.max()}"
        )
    if not isinstance(sensitive, pd.DataFrame) or sensitive.shape[1] == 0:
        raise PermedError(
            "sensitive must be a pandas DataFrame with one column per sensitive attribute"
        )
    duplicated = sorted({str(c) for c in sensitive.columns[sensitive.columns.duplicated()]})
    if duplicated:
        raise PermedError(f"sensitive has duplicated columns {duplicated}: name each once")
    if len(sensitive) != n:
        raise PermedError(
            f"sensitive has {len(sensitive)} rows but y has {n}: pass the sensitive columns "
            "of the same patients, in the same order"
        )
    if len(classes) != k:
        raise PermedError(f"classes names {len(classes)} classes but proba has {k} columns")
    if int(min_group_size) != min_group_size or min_group_size < 1:
        raise PermedError(f"min_group_size must be a positive integer, got {min_group_size!r}")
    if not max_gap >= 0:
        raise PermedError(f"max_gap must be a non-negative number, got {max_gap!r}")
    if int(n_boot) != n_boot or n_boot < 1:
        raise PermedError(f"n_boot must be a positive integer, got {n_boot!r}")
    return labels, probs, pred


# --------------------------------------------------------------------------- grouping


def bin_edges(development: pd.DataFrame) -> dict[str, list[float]]:
    """Quartile edges of each numeric column with more than 5 distinct values.

    Computed once on the development split and passed as ``edges`` to every audit of the run
    (:func:`audit_classification`, :func:`representation`, :func:`mitigation_table`,
    ``audit_survival``), so that a group holds the same patients in each table and in an
    external cohort's audit.

    Parameters
    ----------
    development : pandas.DataFrame
        The development split's sensitive columns.

    Returns
    -------
    dict
        ``{column: [min, q25, q50, q75, max]}`` (equal quantiles merged) for the numeric
        columns with more than 5 distinct values; the other columns are not binned.

    Examples
    --------
    >>> import pandas as pd
    >>> bin_edges(pd.DataFrame({"age": [30, 40, 50, 60, 70, 80, 90], "sex": list("FMFMFMF")}))
    {'age': [30.0, 45.0, 60.0, 75.0, 90.0]}
    """
    return {str(column): [float(e) for e in _quartile_edges(_numbers(development[column]))]
            for column in development.columns if _binnable(development[column])}


def saved_bin_edges(fairness: Mapping[str, Any] | None) -> dict[str, list[float]] | None:
    """The bin edges a run recorded in its metrics.json ``fairness`` section.

    ``None`` for a run trained before the edges were recorded (no ``bins`` entry): its audits
    then bin each cohort at its own quartiles, as they did.
    """
    if not isinstance(fairness, Mapping) or not isinstance(fairness.get("bins"), Mapping):
        return None
    return {str(name): list(entry["edges"]) for name, entry in fairness["bins"].items()
            if isinstance(entry, Mapping) and "edges" in entry}


def bins_entry(binned: Mapping[str, Sequence[float]], fixed: bool = True) -> dict[str, Any]:
    """metrics.json's ``fairness.bins``: each binned column's edges, groups and origin."""
    origin = DEVELOPMENT if fixed else "the audited patients (their own quartiles)"
    return {name: {"edges": [float(e) for e in cuts],
                   "groups": _bin_names(name, cuts, open_ends=fixed), "from": origin}
            for name, cuts in binned.items()}


def _check_edges(edges: Edges | None) -> dict[str, list[float]] | None:
    if edges is None:
        return None
    checked = {}
    for name, cuts in edges.items():
        values = np.asarray(cuts, dtype=np.float64).ravel()
        if len(values) < 2 or not np.isfinite(values).all() or np.any(np.diff(values) <= 0):
            raise PermedError(
                f"bin edges of '{name}' must be two or more increasing finite numbers, got "
                f"{list(cuts)}: compute them with bin_edges on the development split")
        checked[str(name)] = [float(v) for v in values]
    return checked


def _binnable(column: pd.Series) -> bool:
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    return bool(numeric and column.nunique(dropna=True) > MAX_LEVELS)


def _numbers(column: pd.Series, name: str | None = None) -> NDArray[np.float64]:
    """The column as floats (missing as nan); text in a column binned at edges is refused."""
    if pd.api.types.is_numeric_dtype(column):
        return column.astype(np.float64).to_numpy()
    values = pd.to_numeric(column, errors="coerce")
    text = column.notna().to_numpy() & values.isna().to_numpy()
    if text.any():
        raise PermedError(
            f"sensitive column '{name}' is binned at the development split's edges but "
            f"{text_among_numbers(column, column[text])}: correct the values or leave them "
            "empty (a missing value forms its own group)")
    return values.astype(np.float64).to_numpy()


def group_labels(
    column: pd.Series, name: str, edges: Edges | None = None
) -> tuple[NDArray[Any], list[str], list[float] | None]:
    """String group label of every row, the levels in display order, and the bin edges used
    (``None`` when the column is not binned).

    With ``edges`` the binning is fixed: the columns it names are binned at their edges, the
    others are not binned. Without, numeric columns with many values are binned at their own
    quartiles.
    """
    if edges is not None and name in edges:
        cuts = [float(e) for e in edges[name]]
        return (*_binned_labels(_numbers(column, name), name, cuts, open_ends=True), cuts)
    if edges is None and _binnable(column):
        x = _numbers(column)
        cuts = [float(e) for e in _quartile_edges(x)]
        return (*_binned_labels(x, name, cuts, open_ends=False), cuts)
    present = column.dropna()
    if isinstance(column.dtype, pd.CategoricalDtype):
        observed = set(present)
        values = [v for v in column.cat.categories if v in observed]
    else:
        unique = list(pd.unique(present))
        try:
            values = sorted(unique)
        except TypeError:  # mixed types: fall back to their text
            values = sorted(unique, key=str)
    levels = [str(v) for v in values]
    labels = np.array([MISSING if pd.isna(v) else str(v) for v in column], dtype=object)
    if column.isna().any():
        levels.append(MISSING)
    return labels, levels, None


def _quartile_edges(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.unique(np.quantile(x[~np.isnan(x)], [0.0, 0.25, 0.5, 0.75, 1.0]))


def _bin_names(name: str, edges: Sequence[float], open_ends: bool) -> list[str]:
    """Group labels of the bins between ``edges``.

    With ``open_ends`` the edges come from other patients (the development split), so the
    first and last bins also hold the values beyond them and say so (``"age < 48"``,
    ``"age >= 70"``); otherwise they are closed at the audited patients' own extremes.
    """
    last = len(edges) - 2
    if open_ends and last == 0:
        return [f"{name} all values"]
    names = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        if open_ends and i == 0:
            names.append(f"{name} < {hi:g}")
        elif open_ends and i == last:
            names.append(f"{name} >= {lo:g}")
        else:
            names.append(f"{name} [{lo:g}, {hi:g}{']' if i == last else ')'}")
    return names


def _binned_labels(
    x: NDArray[np.float64], name: str, edges: Sequence[float], open_ends: bool
) -> tuple[NDArray[Any], list[str]]:
    present = ~np.isnan(x)
    bins = np.searchsorted(np.asarray(edges[1:-1], dtype=np.float64), x, side="right")
    names = _bin_names(name, edges, open_ends)
    missing = f"{name} {MISSING}"
    labels = np.array(
        [names[b] if ok else missing for b, ok in zip(bins, present, strict=True)], dtype=object
    )
    levels = [level for level in names if np.any(labels == level)]
    if not present.all():
        levels.append(missing)
    return labels, levels


def _cross(
    first: tuple[NDArray[Any], list[str]], second: tuple[NDArray[Any], list[str]]
) -> tuple[NDArray[Any], list[str]]:
    labels = np.array(
        [f"{a} & {b}" for a, b in zip(first[0], second[0], strict=True)], dtype=object
    )
    observed = set(labels)
    levels = [f"{a} & {b}" for a in first[1] for b in second[1] if f"{a} & {b}" in observed]
    return labels, levels


# --------------------------------------------------------------------------- one grouping


def _audit(name: str, labels: NDArray[Any], levels: list[str], data: _Data) -> dict[str, Any]:
    codes = pd.Categorical(labels, categories=levels).codes.astype(np.int64)
    sizes = np.bincount(codes, minlength=len(levels))
    eligible = sizes >= data.min_group_size
    by_group = _metric_frame(name, labels, data)
    intervals = bootstrap_dict(
        lambda y, proba, pred, g: _replicate(y, proba, pred, g, eligible, data),
        data.y,
        data.proba,
        data.pred,
        codes,
        n_boot=data.n_boot,
        confidence=CONFIDENCE,
        seed=data.seed,
        strata=codes * data.proba.shape[1] + data.y,
    )
    groups = {}
    for g, level in enumerate(levels):
        entry: dict[str, Any] = {"n": int(sizes[g]), "prevalence": None}
        if data.binary:
            entry["prevalence"] = float(np.mean(data.y[codes == g] == 1))
        closed = _binary_intervals(data, codes == g, float(by_group.loc[level, "auroc"])) \
            if data.binary else {}
        for metric in GROUP_METRICS:
            ci = closed.get(metric) or intervals[(g, metric)]
            entry[metric] = _interval(by_group.loc[level, metric], ci)
        entry["too_small"] = bool(sizes[g] < data.min_group_size)
        groups[level] = entry
    if not data.binary:
        return {"groups": groups, "disparities": {}, "flags": []}
    kept = [level for level, ok in zip(levels, eligible, strict=True) if ok]
    values = _disparities(labels, kept, by_group, data)
    disparities = {d: _interval(values[d], intervals[("gap", d)]) for d in DISPARITIES}
    return {"groups": groups, "disparities": disparities, "flags": _flags(name, values, data)}


def _metric_frame(name: str, labels: NDArray[Any], data: _Data) -> pd.DataFrame:
    """Per-group point values from fairlearn's MetricFrame (one row per level)."""
    rows = np.arange(len(data.y))

    def pick(metric: str) -> Callable[..., float]:
        # MetricFrame splits y_true, y_pred and the sample parameter ``rows`` by group; the
        # probabilities are looked up through the row numbers.
        return lambda y_true, y_pred, rows: data.group_metrics(
            np.asarray(y_true), data.proba[np.asarray(rows)], np.asarray(y_pred)
        )[metric]

    frame = MetricFrame(
        metrics={m: pick(m) for m in GROUP_METRICS},
        y_true=data.y,
        y_pred=data.pred,
        sensitive_features=pd.Series(labels, name=name),
        sample_params={m: {"rows": rows} for m in GROUP_METRICS},
    )
    return frame.by_group


def _disparities(
    labels: NDArray[Any], eligible: list[str], by_group: pd.DataFrame, data: _Data
) -> dict[str, float]:
    """Point values of the disparities over the groups of at least min_group_size."""
    if len(eligible) < 2:
        return dict.fromkeys(DISPARITIES, math.nan)
    rows = np.isin(labels, eligible)
    y, pred, groups = data.y[rows], data.pred[rows], labels[rows]
    return {
        "equalized_odds_difference": float(
            equalized_odds_difference(y, pred, sensitive_features=groups)
        ),
        "demographic_parity_difference": float(
            demographic_parity_difference(y, pred, sensitive_features=groups)
        ),
        "auroc_gap": _spread(by_group.loc[eligible, "auroc"].to_numpy(dtype=np.float64)),
        "calibration_gap": _spread(by_group.loc[eligible, "ece"].to_numpy(dtype=np.float64)),
    }


def _replicate(
    y: NDArray[np.int64],
    proba: NDArray[np.float64],
    pred: NDArray[np.int64],
    codes: NDArray[np.int64],
    eligible: NDArray[np.bool_],
    data: _Data,
) -> dict[Any, float]:
    """Group metrics and disparities on one resample, computed as on the full data."""
    out: dict[Any, float] = {}
    for g in range(len(eligible)):
        rows = codes == g
        for metric, value in data.group_metrics(y[rows], proba[rows], pred[rows]).items():
            out[(g, metric)] = value
    if data.binary:
        out.update(_replicate_disparities(y, pred, codes, np.flatnonzero(eligible), out))
    return out


def _replicate_disparities(
    y: NDArray[np.int64],
    pred: NDArray[np.int64],
    codes: NDArray[np.int64],
    eligible: NDArray[np.intp],
    group_values: dict[Any, float],
) -> dict[Any, float]:
    if len(eligible) < 2:
        return {("gap", d): math.nan for d in DISPARITIES}
    tpr, fpr, selection = [], [], []
    for g in eligible:
        tp, fp, fn, tn = _counts(y[codes == g] == 1, pred[codes == g] == 1)
        # fairlearn's convention: a rate with an empty denominator counts as 0
        tpr.append(tp / (tp + fn) if tp + fn else 0.0)
        fpr.append(fp / (fp + tn) if fp + tn else 0.0)
        selection.append((tp + fp) / (tp + fp + fn + tn))
    return {
        ("gap", "equalized_odds_difference"): max(np.ptp(tpr), np.ptp(fpr)),
        ("gap", "demographic_parity_difference"): float(np.ptp(selection)),
        ("gap", "auroc_gap"): _spread(np.array([group_values[(g, "auroc")] for g in eligible])),
        ("gap", "calibration_gap"): _spread(np.array([group_values[(g, "ece")] for g in eligible])),
    }


def _spread(values: NDArray[np.float64]) -> float:
    """Largest minus smallest of the defined values; nan with fewer than two."""
    finite = values[np.isfinite(values)]
    return float(finite.max() - finite.min()) if finite.size >= 2 else math.nan


# --------------------------------------------------------------------------- output


def bins_note(sensitive: pd.DataFrame, binned: Mapping[str, Sequence[float]], fixed: bool) -> str:
    """The note's sentences on how the numeric columns were binned."""
    parts = []
    for name, cuts in binned.items():
        shown = ", ".join(f"{e:g}" for e in cuts)
        if fixed:
            parts.append(
                f"Numeric column '{name}' is binned at edges {shown}, the quartiles of "
                f"{DEVELOPMENT}: its groups hold the same patients in every table of the run "
                "and in an external cohort's audit; values beyond the development range fall "
                "in the outer groups.")
            continue
        column = sensitive[next(c for c in sensitive.columns if str(c) == name)]
        parts.append(
            f"Numeric column '{name}' has {column.nunique()} distinct values (more than "
            f"{MAX_LEVELS}): it is binned into quartile groups of these patients' own values "
            f"({shown}), no bin edges from {DEVELOPMENT} being given, so its groups may not "
            "hold the same patients as those of another table or cohort.")
    return " ".join(parts)


def _clean(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _proportions(data: _Data, rows: NDArray[np.bool_]) -> dict[str, tuple[int, int]]:
    """(successes, trials) of a binary group's proportions."""
    tp, fp, fn, tn = (int(c) for c in _counts(data.y[rows] == 1, data.pred[rows] == 1))
    return {"sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp), "ppv": (tp, tp + fp),
            "selection_rate": (tp + fp, int(rows.sum()))}


def _binary_intervals(data: _Data, rows: NDArray[np.bool_], auroc: float) -> dict[str, Any]:
    """Closed-form intervals of a binary group's figures: Wilson for the proportions,
    Newcombe's score interval for the AUROC."""
    intervals = {metric: _wilson(*counts) for metric, counts in _proportions(data, rows).items()}
    positives = int(np.sum(data.y[rows] == 1))
    low, high = auroc_score_interval(auroc, positives, int(rows.sum()) - positives, CONFIDENCE)
    intervals["auroc"] = {"ci_low": low, "ci_high": high}
    return intervals


def _wilson(successes: int, trials: int) -> dict[str, float]:
    if trials == 0:
        return {"ci_low": math.nan, "ci_high": math.nan}
    ci = binomtest(successes, trials).proportion_ci(CONFIDENCE, method="wilson")
    return {"ci_low": float(ci.low), "ci_high": float(ci.high)}


def _interval(value: Any, ci: dict[str, float]) -> dict[str, float | None]:
    return {
        "value": _clean(value),
        "ci_low": _clean(ci["ci_low"]),
        "ci_high": _clean(ci["ci_high"]),
    }


def _flags(name: str, values: dict[str, float], data: _Data) -> list[str]:
    return [
        f"{d.replace('_', ' ')} {values[d]:.2f} for '{name}' exceeds {data.max_gap:.2f}"
        for d in DISPARITIES
        if math.isfinite(values[d]) and values[d] > data.max_gap
    ]


def _note(
    data: _Data, sensitive: pd.DataFrame, binned: Mapping[str, Sequence[float]], fixed: bool,
    n_columns: int,
) -> str:
    parts = [bins_note(sensitive, binned, fixed)] if binned else []
    parts.append(
        f"Groups with fewer than {data.min_group_size} patients are reported with "
        "too_small=true and left out of the disparities."
    )
    if data.binary:
        parts.append(
            "equalized_odds_difference and demographic_parity_difference are fairlearn's "
            "(largest between-group difference in true or false positive rate, and in "
            "selection rate, of the predicted labels); auroc_gap and calibration_gap are the "
            f"largest minus the smallest group AUROC and ECE. Gaps above {data.max_gap:g} "
            "are flagged."
        )
    else:
        parts.append(
            f"With {data.proba.shape[1]} classes the disparities are skipped (fairlearn's "
            "equalized odds and demographic parity need binary predictions); auroc, "
            "sensitivity, specificity and ppv are macro one-vs-rest, ece is top-label, "
            "prevalence and selection_rate are null."
        )
    if n_columns >= 2:
        parts.append("Intersections cross every pair of sensitive columns.")
    parts.append(
        f"Intervals: {CONFIDENCE:.0%} percentile bootstrap over patients ({data.n_boot} "
        "replicates, resampled within each group and class)"
        + ("; a group's sensitivity, specificity, PPV and selection rate: Wilson score "
           "intervals" if data.binary else "") + ". Undefined values are null."
    )
    return " ".join(parts)
