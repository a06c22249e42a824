"""Classification metrics, with bootstrap confidence intervals.

Conventions: ``y`` holds class indices ``0..K-1``; ``proba`` is an ``(n, K)`` array of class
probabilities (a 1-D array is read as the positive-class probability of a binary problem); the
positive class of a binary problem is index 1. Undefined values (a PPV with no positive
prediction, an AUROC with one class) are ``nan``, never an exception.

The metrics that run inside the bootstrap (AUROC, average precision, confusion counts, Brier,
ECE, the logistic recalibration) are computed here with NumPy instead of calling
``sklearn.metrics`` on every replicate: scikit-learn's input validation costs a few
milliseconds per call, which turns 1000 replicates of 12 metrics into tens of seconds. They
agree with ``roc_auc_score``, ``average_precision_score``, ``brier_score_loss``,
``confusion_matrix``, ``precision_score``/``recall_score``/``f1_score`` to rounding error,
which ``tests/evaluate/test_classification.py`` checks. Functions that run once
(``youden_threshold``, the confusion matrix of the report) call scikit-learn directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from scipy.stats import norm, rankdata
from sklearn.metrics import confusion_matrix, roc_curve

from permed.evaluate._bootstrap import _check_options, bootstrap_dict
from permed.evaluate._fastboot import (
    _LOGLIK_SLACK,
    _MAX_HALVINGS,
    FAST_BOOTSTRAP_MIN_ROWS,
    fast_binary_report,
)
from permed.exceptions import PermedError

__all__ = [
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "PER_CLASS_METRICS",
    "calibration_slope_intercept",
    "classification_report",
    "cv_summary",
    "expected_calibration_error",
    "net_benefit",
    "point_metrics",
    "threshold_for_sensitivity",
    "youden_threshold",
]

BINARY_METRICS = (
    "auroc",
    "auprc",
    "accuracy",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "f1",
    "brier",
    "ece",
    "calibration_slope",
    "calibration_intercept",
)
MULTICLASS_METRICS = BINARY_METRICS[:-2]
PER_CLASS_METRICS = ("auroc", "auprc", "sensitivity", "specificity", "ppv", "f1")

# Probabilities are clipped to [_EPS, 1 - _EPS] before the logit of the recalibration model.
_EPS = 1e-10

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


# --------------------------------------------------------------------------- validation


def _check_labels(y: ArrayLike, name: str = "y") -> Ints:
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.size == 0:
        raise PermedError(f"{name} must be a non-empty 1-D array of class indices, got shape "
                          f"{arr.shape}")
    if arr.dtype.kind == "b":
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iuf" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise PermedError(
            f"{name} must hold integer class indices 0..K-1, found values such as "
            f"{arr[:3].tolist()}: encode the classes first (e.g. with LabelEncoder)"
        )
    return arr.astype(np.int64)


def _check_proba(proba: ArrayLike, n: int) -> Floats:
    arr = np.asarray(proba, dtype=np.float64)
    if arr.ndim == 1:
        arr = np.column_stack([1.0 - arr, arr])
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 2:
        raise PermedError(
            f"proba must have shape (n, K) with n = {n} rows like y and K >= 2 class columns, "
            f"got shape {np.shape(proba)}"
        )
    if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
        raise PermedError(
            "proba must hold probabilities in [0, 1] without nan; found values from "
            f"{np.nanmin(arr):.4g} to {np.nanmax(arr):.4g}"
        )
    return arr


def _check_y_proba(y: ArrayLike, proba: ArrayLike) -> tuple[Ints, Floats]:
    """Validate ``y`` and ``proba`` together; return them as int and float arrays."""
    labels = _check_labels(y)
    probs = _check_proba(proba, len(labels))
    k = probs.shape[1]
    if labels.min() < 0 or labels.max() >= k:
        raise PermedError(
            f"y must hold class indices 0..{k - 1} for the {k} columns of proba, found "
            f"{labels.min()}..{labels.max()}"
        )
    return labels, probs


def _check_binary(y: ArrayLike, p1: ArrayLike) -> tuple[Ints, Floats]:
    labels, probs = _check_y_proba(y, p1)
    if probs.shape[1] != 2:
        raise PermedError(
            f"this metric is for binary outcomes: pass the positive-class probability, got "
            f"{probs.shape[1]} class columns"
        )
    return labels, probs[:, 1]


def _require_both_classes(y: Ints, what: str) -> None:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise PermedError(
            f"{what} needs both classes in y, found only class {int(y[0])} in {len(y)} rows"
        )


# --------------------------------------------------------------------------- kernels
# Kernels trust their inputs (validated once at the public boundary) and never raise for an
# undefined value: they return nan.


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else math.nan


def _auroc(pos: NDArray[np.bool_], score: Floats) -> float:
    """Mann-Whitney AUROC; equals ``roc_auc_score`` (ties count one half)."""
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _average_precision(pos: NDArray[np.bool_], score: Floats) -> float:
    """Step-wise area under the precision-recall curve; equals ``average_precision_score``."""
    n_pos = int(pos.sum())
    if n_pos == 0:
        return math.nan
    order = np.argsort(-score, kind="mergesort")
    ranked = score[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    tps = np.cumsum(pos[order])[ends]
    precision = tps / (ends + 1.0)
    recall = tps / n_pos
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def _ece(outcome: Floats, confidence: Floats, n_bins: int) -> float:
    """Sum over equal-width bins of (bin share) x |mean outcome - mean confidence|."""
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    gap = np.bincount(bins, weights=outcome - confidence, minlength=n_bins)
    return float(np.abs(gap).sum() / len(outcome))


def _logit(p: Floats) -> Floats:
    q = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(q) - np.log1p(-q)


_FitState = tuple[float, Floats, Floats]


def _fit_state(y: Floats, eta: Floats) -> _FitState:
    """Log-likelihood, Newton weights mu(1 - mu) and residuals y - mu at linear predictor eta.

    ``mu`` and ``1 - mu`` both come from ``expit``, without cancellation near 0 or 1.
    """
    mu = expit(eta)
    rest = expit(-eta)
    hit = y > 0.5
    with np.errstate(divide="ignore"):  # an underflow to log(0) = -inf rejects the step
        loglik = float(np.log(np.where(hit, mu, rest)).sum())
    return loglik, mu * rest, np.where(hit, rest, -mu)


def _halve_step(y: Floats, eta: Floats, step: Floats | float,
                loglik: float) -> tuple[float, Floats, _FitState] | None:
    """Largest of 1, 1/2, 1/4, ... times ``step`` (on eta) that does not lower the likelihood.

    Returns the factor, the new eta and its fit state, or None if even a tiny step lowers the
    likelihood. A drop of less than ``_LOGLIK_SLACK`` of it, rounding near the optimum, passes.
    """
    floor = loglik - _LOGLIK_SLACK * (1.0 + abs(loglik))
    factor = 1.0
    for _ in range(_MAX_HALVINGS):
        trial = eta + factor * step
        state = _fit_state(y, trial)
        if state[0] >= floor:
            return factor, trial, state
        factor *= 0.5
    return None


def _fit_recalibration(y: Floats, x: Floats, max_iter: int = 100, tol: float = 1e-9) -> float:
    """Slope ``b`` of the unpenalised logistic model ``logit P(y=1) = a + b * x``.

    Newton-Raphson from ``(a, b) = (0, 1)`` with the 2 x 2 system solved in closed form (this
    runs on every bootstrap replicate), halving a step until it does not lower the
    log-likelihood: a full step from a logit of +-23 (a probability of 0 or 1, clipped) can
    overshoot and diverge. The log-likelihood is concave, so this converges whenever the
    estimate exists; the caller leaves out separated classes, where it does not. Returns nan
    if the fit fails all the same (no convergence in ``max_iter`` steps).
    """
    b = 1.0
    eta = x  # a + b * x with a = 0
    loglik, w, resid = _fit_state(y, eta)
    for _ in range(max_iter):
        s_w, s_wx, s_wxx = w.sum(), (w * x).sum(), (w * x * x).sum()
        g_a, g_b = resid.sum(), (resid * x).sum()
        det = s_w * s_wxx - s_wx * s_wx
        if not det > 0.0:
            return math.nan
        step_a = (s_wxx * g_a - s_wx * g_b) / det
        step_b = (s_w * g_b - s_wx * g_a) / det
        if max(abs(step_a), abs(step_b)) < tol:
            return float(b + step_b)
        accepted = _halve_step(y, eta, step_a + step_b * x, loglik)
        if accepted is None:
            return math.nan
        factor, eta, (loglik, w, resid) = accepted
        b += factor * step_b
    return math.nan


def _fit_offset_intercept(
    y: Floats, offset: Floats, max_iter: int = 100, tol: float = 1e-9
) -> float:
    """Intercept ``a`` of ``logit P(y=1) = a + offset`` by Newton-Raphson with step-halving.

    Nan if the fit fails (no convergence in ``max_iter`` steps).
    """
    a = 0.0
    eta = offset
    loglik, w, resid = _fit_state(y, eta)
    for _ in range(max_iter):
        info = w.sum()
        if not info > 0.0:
            return math.nan
        step = resid.sum() / info
        if abs(step) < tol:
            return float(a + step)
        accepted = _halve_step(y, eta, step, loglik)
        if accepted is None:
            return math.nan
        factor, eta, (loglik, w, resid) = accepted
        a += factor * step
    return math.nan


def _slope_intercept(y: Ints, p1: Floats) -> tuple[float, float]:
    pos = y == 1
    if pos.all() or not pos.any() or p1[pos].min() > p1[~pos].max():
        # One class, or perfect separation: neither maximum-likelihood estimate exists.
        return math.nan, math.nan
    x = _logit(p1)
    yf = y.astype(np.float64)
    slope = math.nan if _separated(pos, x) else _fit_recalibration(yf, x)
    return slope, _fit_offset_intercept(yf, x)


def _separated(pos: NDArray[np.bool_], x: Floats) -> bool:
    """True where a cut on ``x`` splits the classes, ties at the cut allowed.

    That is (quasi-)complete separation, either way round: no finite slope maximizes the
    likelihood. Probabilities of 0 and 1e-12 clip to the same logit and count as tied.
    """
    x_pos, x_neg = x[pos], x[~pos]
    return bool(x_pos.min() >= x_neg.max() or x_pos.max() <= x_neg.min())


def _counts(pos: NDArray[np.bool_], pred: NDArray[np.bool_]) -> tuple[int, int, int, int]:
    tp = int(np.count_nonzero(pos & pred))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(pos)) - tp
    return tp, fp, fn, len(pos) - tp - fp - fn


def _rates(tp: Any, fp: Any, fn: Any, tn: Any) -> dict[str, Any]:
    """Confusion-count rates; works on scalars or per-class arrays (nan where undefined)."""
    tp, fp, fn, tn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn, tn))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "ppv": tp / (tp + fp),
            "npv": tn / (tn + fn),
            "f1": 2.0 * tp / (2.0 * tp + fp + fn),
        }


def _binary_metrics(y: Ints, p1: Floats, threshold: float, n_bins: int = 10) -> dict[str, float]:
    pos = y == 1
    pred = p1 >= threshold
    tp, fp, fn, tn = _counts(pos, pred)
    slope, intercept = _slope_intercept(y, p1)
    out = {
        "auroc": _auroc(pos, p1),
        "auprc": _average_precision(pos, p1),
        "accuracy": (tp + tn) / len(y),
    }
    out.update({name: float(v) for name, v in _rates(tp, fp, fn, tn).items()})
    out["brier"] = float(np.mean((p1 - pos) ** 2))
    out["ece"] = _ece(pos.astype(np.float64), p1, n_bins)
    out["calibration_slope"] = slope
    out["calibration_intercept"] = intercept
    return out


def _class_confusion(y: Ints, pred: Ints, k: int) -> Ints:
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def _per_class(y: Ints, proba: Floats, pred: Ints) -> dict[str, Floats]:
    """One-vs-rest figures for every class, as arrays of length K."""
    k = proba.shape[1]
    cm = _class_confusion(y, pred, k)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    out = _rates(tp, fp, fn, len(y) - tp - fp - fn)
    out["auroc"] = np.array([_auroc(y == c, proba[:, c]) for c in range(k)])
    out["auprc"] = np.array([_average_precision(y == c, proba[:, c]) for c in range(k)])
    return out


def _macro(values: Floats) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _macro_ppv(ppv: Floats, y: Ints) -> float:
    """Macro PPV, where a class present in ``y`` but never predicted counts 0 (scikit-learn's
    ``zero_division=0``): left out, it would reward a model for never predicting a rare class
    (Cleveland's 5 classes: 0.32 instead of 0.26). A class absent and never predicted is left
    out, as for the other macro averages."""
    present = np.bincount(y, minlength=len(ppv)) > 0
    return _macro(np.where(np.isnan(ppv) & present, 0.0, ppv))


def _multiclass_metrics(
    y: Ints, proba: Floats, n_bins: int = 10, per_class: dict[str, Floats] | None = None
) -> dict[str, float]:
    pred = proba.argmax(axis=1)
    classes = per_class if per_class is not None else _per_class(y, proba, pred)
    onehot = np.eye(proba.shape[1])[y]
    out = {"auroc": _macro(classes["auroc"]), "auprc": _macro(classes["auprc"])}
    out["accuracy"] = float(np.mean(pred == y))
    out.update({m: _macro_ppv(classes[m], y) if m == "ppv" else _macro(classes[m])
                for m in ("sensitivity", "specificity", "ppv", "npv", "f1")})
    out["brier"] = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    out["ece"] = _ece((pred == y).astype(np.float64), proba.max(axis=1), n_bins)
    return out


def _point_metrics(y: Ints, proba: Floats, threshold: float) -> dict[str, float]:
    if proba.shape[1] == 2:
        return _binary_metrics(y, proba[:, 1], threshold)
    return _multiclass_metrics(y, proba)


# --------------------------------------------------------------------------- public API


def expected_calibration_error(y: ArrayLike, proba: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins.

    Binary: bins the positive-class probability and compares, in each bin, the mean
    probability with the observed share of positives. More than two classes: the top-label
    ECE, which bins the largest probability of each row and compares it with the share of
    rows whose most probable class is right. Bins are ``[0, 1/B), ..., [(B-1)/B, 1]``; each
    contributes its share of rows times its absolute gap.

    Parameters
    ----------
    y : array-like of shape (n,)
        Class indices ``0..K-1``.
    proba : array-like of shape (n, K) or (n,)
        Class probabilities (a 1-D array is the positive-class probability).
    n_bins : int, default=10
        Number of equal-width bins.

    Returns
    -------
    float
        The ECE, in [0, 1]; 0 for a perfectly calibrated model.

    Raises
    ------
    PermedError
        If the inputs are malformed or ``n_bins`` is not a positive integer.

    Examples
    --------
    >>> expected_calibration_error([0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0])
    0.0
    """
    labels, probs = _check_y_proba(y, proba)
    if int(n_bins) != n_bins or n_bins < 1:
        raise PermedError(f"n_bins must be a positive integer, got {n_bins!r}")
    if probs.shape[1] == 2:
        return _ece((labels == 1).astype(np.float64), probs[:, 1], int(n_bins))
    top = probs.argmax(axis=1)
    return _ece((top == labels).astype(np.float64), probs.max(axis=1), int(n_bins))


def calibration_slope_intercept(y: ArrayLike, p1: ArrayLike) -> dict[str, float]:
    """Calibration slope and intercept from logistic recalibration (binary outcomes).

    The slope is the coefficient of ``logit(p1)`` in the unpenalised logistic regression
    ``logit P(y=1) = a + b * logit(p1)`` (ideal 1; below 1 means over-confident predictions).
    The intercept is calibration-in-the-large: ``a`` in ``logit P(y=1) = a + logit(p1)``,
    i.e. with the slope fixed at 1 through an offset (ideal 0; above 0 means risks are
    under-estimated on average). Both are fitted by Newton-Raphson with step-halving, so
    probabilities of exactly 0 or 1 (clipped to ``[1e-10, 1 - 1e-10]`` first, logits of about
    +-23) do not stop the fit from converging.

    Parameters
    ----------
    y : array-like of shape (n,)
        Binary outcome, 0 or 1.
    p1 : array-like of shape (n,)
        Predicted probability of class 1.

    Returns
    -------
    dict
        ``{"slope": float, "intercept": float}``. Both are nan when ``y`` has one class or
        the predictions separate the classes perfectly (every positive above every
        negative). The slope is also nan under quasi-complete separation (a cut on the
        clipped logit with every positive on one side and every negative on the other, ties
        at the cut allowed), where no finite slope maximizes the likelihood; a value is also
        nan if its fit does not converge.

    Raises
    ------
    PermedError
        If the inputs are malformed or not binary.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 0, 1, 1, 0, 1])
    >>> p = np.array([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.35, 0.45])
    >>> {k: round(v, 3) for k, v in calibration_slope_intercept(y, p).items()}
    {'slope': 3.526, 'intercept': 0.277}
    """
    labels, p = _check_binary(y, p1)
    slope, intercept = _slope_intercept(labels, p)
    return {"slope": slope, "intercept": intercept}


def youden_threshold(y: ArrayLike, p1: ArrayLike) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity - 1.

    Candidates are the distinct predicted probabilities (a row is positive when
    ``p1 >= threshold``); among ties the highest threshold wins.

    Parameters
    ----------
    y : array-like of shape (n,)
        Binary outcome, 0 or 1.
    p1 : array-like of shape (n,)
        Predicted probability of class 1.

    Returns
    -------
    float
        The threshold.

    Raises
    ------
    PermedError
        If the inputs are malformed, not binary, or ``y`` has one class only.

    Examples
    --------
    >>> youden_threshold([0, 0, 1, 1], [0.1, 0.3, 0.35, 0.8])
    0.35
    """
    labels, p = _check_binary(y, p1)
    _require_both_classes(labels, "youden_threshold")
    fpr, tpr, thresholds = roc_curve(labels, p, drop_intermediate=False)
    j = np.where(np.isfinite(thresholds), tpr - fpr, -np.inf)
    # thresholds decrease along the curve: the first index within rounding of the best J is
    # the highest of the tied thresholds
    best = int(np.flatnonzero(j >= j.max() - 1e-12)[0])
    return float(thresholds[best])


def threshold_for_sensitivity(y: ArrayLike, p1: ArrayLike, target: float) -> float:
    """Largest threshold whose sensitivity is at least ``target``.

    A row is predicted positive when ``p1 >= threshold``; the returned threshold is the
    probability of the ``ceil(target * n_pos)``-th highest-scoring positive, so any higher
    threshold misses the target.

    Parameters
    ----------
    y : array-like of shape (n,)
        Binary outcome, 0 or 1.
    p1 : array-like of shape (n,)
        Predicted probability of class 1.
    target : float
        Required sensitivity, in (0, 1].

    Returns
    -------
    float
        The threshold.

    Raises
    ------
    PermedError
        If the inputs are malformed, there is no positive row, or ``target`` is out of range.

    Examples
    --------
    >>> threshold_for_sensitivity([0, 1, 1, 1, 1], [0.1, 0.2, 0.6, 0.7, 0.9], 0.75)
    0.6
    """
    labels, p = _check_binary(y, p1)
    if not 0.0 < target <= 1.0:
        raise PermedError(f"target sensitivity must be in (0, 1], got {target!r}")
    scores = np.sort(p[labels == 1])[::-1]
    if scores.size == 0:
        raise PermedError("threshold_for_sensitivity needs at least one positive row in y")
    needed = max(1, math.ceil(target * scores.size - 1e-9))
    return float(scores[needed - 1])


def point_metrics(
    y: ArrayLike, proba: ArrayLike, threshold: float | None = None
) -> dict[str, float]:
    """Discrimination, classification and calibration metrics on one data set.

    Binary (the label is ``p1 >= threshold``): ``auroc auprc accuracy sensitivity
    specificity ppv npv f1 brier ece calibration_slope calibration_intercept``. More than two
    classes (the label is the most probable class; ``threshold`` is ignored): ``auroc`` and
    ``auprc`` macro one-vs-rest, ``accuracy``, macro ``sensitivity specificity ppv npv f1``
    (averaged over the classes where each is defined), the multiclass ``brier`` (mean over
    rows of the summed squared error over classes) and the top-label ``ece``.

    Parameters
    ----------
    y : array-like of shape (n,)
        Class indices ``0..K-1``.
    proba : array-like of shape (n, K) or (n,)
        Class probabilities (a 1-D array is the positive-class probability).
    threshold : float, optional
        Decision threshold of a binary problem; 0.5 when omitted.

    Returns
    -------
    dict
        ``{metric: float}``; undefined values (a PPV with no positive prediction, an AUROC
        with one class) are nan.

    Raises
    ------
    PermedError
        If the inputs are malformed.

    Examples
    --------
    >>> m = point_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> m["auroc"], m["sensitivity"], m["specificity"]
    (0.75, 0.5, 1.0)
    """
    labels, probs = _check_y_proba(y, proba)
    return _point_metrics(labels, probs, 0.5 if threshold is None else float(threshold))


def classification_report(
    y: ArrayLike,
    proba: ArrayLike,
    classes: Sequence[str],
    threshold: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    fast: bool | None = None,
) -> dict[str, Any]:
    """Test-set metrics with stratified percentile bootstrap confidence intervals.

    Every metric of :func:`point_metrics` (and, for more than two classes, the one-vs-rest
    ``auroc auprc sensitivity specificity ppv f1`` of each class) is computed on the same
    ``n_boot`` resamples, drawn within each class. The decision threshold stays fixed. The
    calibration intercept, which compares observed with expected events, gets the Wald
    interval of its logistic model instead: resamples within each class keep the number of
    events fixed.

    Parameters
    ----------
    y : array-like of shape (n,)
        Class indices ``0..K-1``.
    proba : array-like of shape (n, K) or (n,)
        Class probabilities (a 1-D array is the positive-class probability).
    classes : sequence of str
        Class names, in the order of the columns of ``proba``.
    threshold : float, optional
        Decision threshold of a binary problem; 0.5 when omitted; ignored for K > 2.
    n_boot : int, default=1000
        Bootstrap replicates.
    seed : int, default=0
        Seed of the resampling.
    confidence : float, default=0.95
        Coverage of the intervals.
    fast : bool, optional
        Binary problems only: draw each replicate as multinomial counts within each class and
        compute the metrics as weighted sums on scores sorted once (``O(n)`` per replicate
        instead of ``O(n log n)``; same point values, intervals equal up to Monte Carlo
        error). Default: on from ``FAST_BOOTSTRAP_MIN_ROWS`` (5000) test rows.

    Returns
    -------
    dict
        ``"test"``: ``{metric: {"value", "ci_low", "ci_high"}}``; ``"confusion_matrix"``:
        ``{"labels": classes, "matrix": [[...]]}`` (rows true, columns predicted);
        ``"per_class"`` (K > 2 only): ``{class: {metric: {"value", "ci_low", "ci_high"}}}``;
        ``"bootstrap"``: ``{"replicates", "confidence", "method", "seed"}``. Undefined values
        and intervals are nan.

    Raises
    ------
    PermedError
        If the inputs are malformed or ``classes`` does not name every column of ``proba``.

    Examples
    --------
    >>> rep = classification_report([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], ["no", "yes"],
    ...                             n_boot=100)
    >>> rep["test"]["auroc"]["value"], rep["confusion_matrix"]["matrix"]
    (0.75, [[2, 0], [1, 1]])
    """
    labels, probs = _check_y_proba(y, proba)
    k = probs.shape[1]
    names = [str(c) for c in classes]
    if len(names) != k:
        raise PermedError(
            f"classes names {len(names)} classes {names} but proba has {k} columns: pass one "
            "name per column, in column order"
        )
    cut = 0.5 if threshold is None else float(threshold)
    if fast is None:
        fast = len(labels) >= FAST_BOOTSTRAP_MIN_ROWS
    if fast and k == 2:  # weighted replicates on scores sorted once: permed.evaluate._fastboot
        _check_options(n_boot, confidence)
        results: dict[Any, dict[str, float]] = fast_binary_report(
            _binary_metrics(labels, probs[:, 1], cut), labels, probs[:, 1], cut,
            n_boot, confidence, seed)
    else:
        results = bootstrap_dict(
            lambda t, p: _report_statistic(t, p, cut),
            labels,
            probs,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
        )
    if k == 2:
        _intercept_interval(results[("test", "calibration_intercept")], probs[:, 1], confidence)
    pred = (probs[:, 1] >= cut).astype(np.int64) if k == 2 else probs.argmax(axis=1)
    matrix = confusion_matrix(labels, pred, labels=list(range(k)))
    report: dict[str, Any] = {
        "test": {key[1]: ci for key, ci in results.items() if key[0] == "test"},
        "confusion_matrix": {"labels": names, "matrix": matrix.astype(int).tolist()},
    }
    if k > 2:
        report["per_class"] = {
            name: {key[2]: ci for key, ci in results.items() if key[:2] == ("class", c)}
            for c, name in enumerate(names)
        }
    report["bootstrap"] = {
        "replicates": int(n_boot),
        "confidence": float(confidence),
        "method": "stratified percentile",
        "seed": seed,
    }
    return report


def _intercept_interval(entry: dict[str, float], p1: Floats, confidence: float) -> None:
    """Give calibration-in-the-large the Wald interval of the offset logistic model, in place.

    The intercept measures observed against expected events, and the class-stratified
    bootstrap keeps the number of events fixed: its interval covered a perfectly calibrated
    model's 0 in 65 of 100 simulated test sets of 200 patients. The Wald interval
    ``a +- z / sqrt(sum mu (1 - mu))`` (``mu`` the recalibrated probabilities) does not
    condition on the events.
    """
    value = entry["value"]
    if not math.isfinite(value):
        return
    mu = expit(value + _logit(p1))
    information = float((mu * (1.0 - mu)).sum())
    if not information > 0.0:
        return
    half = float(norm.ppf(0.5 + confidence / 2.0)) / math.sqrt(information)
    entry["ci_low"], entry["ci_high"] = value - half, value + half


def _report_statistic(y: Ints, proba: Floats, threshold: float) -> dict[tuple[Any, ...], float]:
    if proba.shape[1] == 2:
        return {("test", m): v for m, v in _binary_metrics(y, proba[:, 1], threshold).items()}
    per_class = _per_class(y, proba, proba.argmax(axis=1))
    out: dict[tuple[Any, ...], float] = {
        ("test", m): v for m, v in _multiclass_metrics(y, proba, per_class=per_class).items()
    }
    for metric in PER_CLASS_METRICS:
        for c, value in enumerate(per_class[metric]):
            out[("class", c, metric)] = float(value)
    return out


def net_benefit(y: ArrayLike, p1: ArrayLike, thresholds: ArrayLike) -> dict[str, Floats]:
    """Decision-curve analysis: net benefit of the model and of treating everyone.

    Vickers & Elkin (2006): at threshold probability ``t``, a patient is treated when
    ``p1 >= t`` and ``net benefit = TP/n - FP/n * t / (1 - t)``; treating everyone gives
    ``prevalence - (1 - prevalence) * t / (1 - t)``; treating no one gives 0.

    Parameters
    ----------
    y : array-like of shape (n,)
        Binary outcome, 0 or 1.
    p1 : array-like of shape (n,)
        Predicted probability of class 1.
    thresholds : array-like of shape (m,)
        Threshold probabilities, each strictly between 0 and 1.

    Returns
    -------
    dict
        ``{"threshold", "model", "treat_all"}``, float arrays of length ``m``.

    Raises
    ------
    PermedError
        If the inputs are malformed or a threshold is outside (0, 1).

    Examples
    --------
    >>> nb = net_benefit([0, 1, 1, 0], [0.2, 0.9, 0.6, 0.7], [0.5])
    >>> float(nb["model"][0]), float(nb["treat_all"][0])
    (0.25, 0.0)
    """
    labels, p = _check_binary(y, p1)
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if t.ndim != 1 or t.size == 0 or not np.all((t > 0.0) & (t < 1.0)):
        raise PermedError(
            "thresholds must be a non-empty 1-D array of probabilities strictly between 0 "
            f"and 1, got {np.asarray(thresholds).tolist()!r}"
        )
    n = len(labels)
    pos = np.sort(p[labels == 1])
    neg = np.sort(p[labels == 0])
    tp = len(pos) - np.searchsorted(pos, t, side="left")
    fp = len(neg) - np.searchsorted(neg, t, side="left")
    odds = t / (1.0 - t)
    prevalence = len(pos) / n
    return {
        "threshold": t,
        "model": tp / n - fp / n * odds,
        "treat_all": prevalence - (1.0 - prevalence) * odds,
    }


def cv_summary(fold_metrics: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of each metric over cross-validation folds.

    Folds where a metric is nan (undefined) are left out of its mean and standard deviation,
    and then ``folds`` says in how many it was defined; the standard deviation is the
    population one (``ddof=0``), as scikit-learn's ``cv_results_["std_test_score"]``. A metric
    undefined in every fold gets nan.

    Parameters
    ----------
    fold_metrics : sequence of mapping
        One ``{metric: value}`` per fold (e.g. :func:`point_metrics` outputs).

    Returns
    -------
    dict
        ``{metric: {"mean": float, "std": float}}`` over the union of the fold keys, in
        first-seen order (a fold lacking a metric counts as nan for it), with ``"folds": int``
        added where the metric was undefined in some folds.

    Examples
    --------
    >>> cv_summary([{"auroc": 0.5}, {"auroc": 1.0}, {"auroc": float("nan")}])
    {'auroc': {'mean': 0.75, 'std': 0.25, 'folds': 2}}
    """
    names = list(dict.fromkeys(name for fold in fold_metrics for name in fold))
    summary: dict[str, dict[str, float]] = {}
    for name in names:
        values = np.array([fold.get(name, math.nan) for fold in fold_metrics], dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            summary[name] = {"mean": math.nan, "std": math.nan}
        else:
            summary[name] = {"mean": float(finite.mean()), "std": float(finite.std())}
            if finite.size < values.size:
                summary[name]["folds"] = int(finite.size)
    return summary

