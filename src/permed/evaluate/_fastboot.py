"""Bootstrap of the binary test metrics by multinomial weights on scores sorted once.

The exact bootstrap (:func:`permed.evaluate.bootstrap_dict`) indexes the data once per
replicate and re-ranks the scores for the AUROC and the precision-recall curve, an
``O(n log n)`` cost per replicate. A stratified resample is the same thing as a vector of
counts drawn from a multinomial within each class, so here every replicate is a row of
weights: the scores are sorted and their ties grouped once, and each replicate's AUROC,
average precision, confusion counts, Brier score and ECE are weighted sums (matrix products
over a chunk of replicates). The recalibration slope and intercept are weighted
Newton-Raphson fits, vectorised over the replicates of a chunk.

The replicates are the very resamples of the exact path with the same seed (as counts), so the
intervals agree up to rounding; the point values are those of the exact path.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from permed.evaluate._bootstrap import _percentile_ci, _resample_indices

__all__ = ["FAST_BOOTSTRAP_MIN_ROWS", "binary_replicates"]

# Above this many test rows classification_report uses the weighted path for binary problems.
FAST_BOOTSTRAP_MIN_ROWS = 5000

# Largest weight matrix (replicates x rows) held at once: 2**22 float64 are 32 MiB.
_MAX_CHUNK = 2**22
_EPS = 1e-10

Floats = NDArray[np.float64]


class _Sorted:
    """Scores sorted ascending once, tie groups and the per-row quantities of every metric."""

    def __init__(self, y: NDArray[np.int64], p1: Floats, threshold: float, n_bins: int) -> None:
        order = np.argsort(p1, kind="mergesort")
        self.order = order
        self.score = p1[order]
        pos = (y[order] == 1).astype(np.float64)
        self.pos = pos
        self.starts = np.r_[0, np.flatnonzero(np.diff(self.score)) + 1]
        pred = (self.score >= threshold).astype(np.float64)
        # columns: tp, fp, fn, tn, squared error, and one ECE gap column per bin
        bins = np.minimum((self.score * n_bins).astype(np.int64), n_bins - 1)
        gap = np.zeros((len(pos), n_bins))
        gap[np.arange(len(pos)), bins] = pos - self.score
        self.linear = np.column_stack([pos * pred, (1 - pos) * pred, pos * (1 - pred),
                                       (1 - pos) * (1 - pred), (self.score - pos) ** 2, gap])
        q = np.clip(self.score, _EPS, 1.0 - _EPS)
        self.logit = np.log(q) - np.log1p(-q)


def binary_replicates(
    y: NDArray[np.int64], p1: Floats, threshold: float, n_boot: int, seed: int,
    n_bins: int = 10,
) -> dict[str, Floats]:
    """Every binary metric of ``n_boot`` stratified bootstrap replicates.

    Parameters
    ----------
    y : ndarray of shape (n,)
        Binary outcome, 0 or 1.
    p1 : ndarray of shape (n,)
        Predicted probability of class 1.
    threshold : float
        Decision threshold (positive when ``p1 >= threshold``).
    n_boot : int
        Number of replicates.
    seed : int
        Seed of the resampling; the replicates are the resamples the exact bootstrap draws
        with the same seed.
    n_bins : int, default=10
        Bins of the ECE.

    Returns
    -------
    dict
        ``{metric: ndarray of shape (n_boot,)}`` for the names of ``BINARY_METRICS``;
        undefined values are nan.
    """
    data = _Sorted(y, p1, threshold, n_bins)
    parts = [_chunk_metrics(data, w) for w in _weights(data, y, n_boot, seed)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def fast_binary_report(
    point: dict[str, float], y: NDArray[np.int64], p1: Floats, threshold: float,
    n_boot: int, confidence: float, seed: int,
) -> dict[tuple[str, str], dict[str, float]]:
    """``{("test", metric): {"value", "ci_low", "ci_high"}}`` like the exact bootstrap."""
    reps = binary_replicates(y, p1, threshold, n_boot, seed)
    return {("test", name): {"value": float(value), **_percentile_ci(reps[name], confidence)}
            for name, value in point.items()}


def _weights(
    data: _Sorted, y: NDArray[np.int64], n_boot: int, seed: int
) -> Iterator[Floats]:
    """Yield (replicates, n) count matrices, columns in sorted-score order.

    The counts are those of the row indices that :func:`permed.evaluate.bootstrap_dict` draws
    with the same seed (same generator, same chunks, same strata), so both paths see the same
    resamples; the metrics are evaluated on at most ``_MAX_CHUNK`` weights at a time.
    """
    n = len(y)
    per_metric = max(1, _MAX_CHUNK // n)
    for chunk in _resample_indices(n, y, n_boot, seed):
        for first in range(0, len(chunk), per_metric):
            rows = chunk[first:first + per_metric]
            flat = (np.arange(len(rows))[:, None] * n + rows).ravel()
            counts = np.bincount(flat, minlength=len(rows) * n).reshape(len(rows), n)
            yield counts[:, data.order].astype(np.float64)


def _chunk_metrics(data: _Sorted, w: Floats) -> dict[str, Floats]:
    n = w.sum(axis=1)
    sums = w @ data.linear
    tp, fp, fn, tn = sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3]
    with np.errstate(all="ignore"):
        out = {"auroc": _auroc(data, w), "auprc": _average_precision(data, w),
               "accuracy": (tp + tn) / n}
        out.update({"sensitivity": _div(tp, tp + fn), "specificity": _div(tn, tn + fp),
                    "ppv": _div(tp, tp + fp), "npv": _div(tn, tn + fn),
                    "f1": _div(2 * tp, 2 * tp + fp + fn)})
        out["brier"] = sums[:, 4] / n
        out["ece"] = np.abs(sums[:, 5:]).sum(axis=1) / n
    slope, intercept = _recalibration(data, w)
    out["calibration_slope"] = slope
    out["calibration_intercept"] = intercept
    return out


def _div(num: Floats, den: Floats) -> Floats:
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _grouped(data: _Sorted, w: Floats) -> tuple[Floats, Floats]:
    """Weighted positive and negative counts of each tie group (ascending score)."""
    return (np.add.reduceat(w * data.pos, data.starts, axis=1),
            np.add.reduceat(w * (1.0 - data.pos), data.starts, axis=1))


def _auroc(data: _Sorted, w: Floats) -> Floats:
    pos, neg = _grouped(data, w)
    below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    return _div((pos * (below + 0.5 * neg)).sum(axis=1), n_pos * n_neg)


def _average_precision(data: _Sorted, w: Floats) -> Floats:
    pos, neg = _grouped(data, w)
    pos, neg = pos[:, ::-1], neg[:, ::-1]  # highest score first
    tps = np.cumsum(pos, axis=1)
    seen = tps + np.cumsum(neg, axis=1)
    precision = np.where(seen > 0, tps / np.where(seen > 0, seen, 1.0), 0.0)
    return _div((pos * precision).sum(axis=1), pos.sum(axis=1))


def _recalibration(data: _Sorted, w: Floats) -> tuple[Floats, Floats]:
    """Weighted recalibration slope and intercept-with-offset of every replicate."""
    defined = _overlapping(data, w)
    # the exact path's starting values (a=0, b=1), so that both paths agree also where the
    # fit diverges
    slope = _newton_slope(data, w)
    intercept = _newton_offset(data, w)
    return np.where(defined, slope, np.nan), np.where(defined, intercept, np.nan)


def _overlapping(data: _Sorted, w: Floats) -> NDArray[np.bool_]:
    """False where a replicate has one class or its classes are perfectly separated."""
    present = w > 0
    lowest_pos = np.where(present & (data.pos == 1), data.score, np.inf).min(axis=1)
    highest_neg = np.where(present & (data.pos == 0), data.score, -np.inf).max(axis=1)
    return np.isfinite(lowest_pos) & np.isfinite(highest_neg) & (lowest_pos <= highest_neg)


def _moments(data: _Sorted, w: Floats, eta: Floats) -> tuple[Floats, Floats]:
    mu = expit(eta)
    rest = expit(-eta)  # 1 - mu without the cancellation
    return w * mu * rest, w * np.where(data.pos > 0.5, rest, -mu)


def _newton_slope(data: _Sorted, w: Floats, max_iter: int = 100, tol: float = 1e-9) -> Floats:
    x = data.logit
    a = np.zeros(len(w))
    b = np.ones(len(w))
    done = np.zeros(len(w), dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            h, resid = _moments(data, w, a[:, None] + b[:, None] * x)
            s_w, s_wx, s_wxx = h.sum(axis=1), h @ x, h @ (x * x)
            g_a, g_b = resid.sum(axis=1), resid @ x
            det = s_w * s_wxx - s_wx * s_wx
            step_a = np.where(done, 0.0, (s_wxx * g_a - s_wx * g_b) / det)
            step_b = np.where(done, 0.0, (s_w * g_b - s_wx * g_a) / det)
            a, b = a + step_a, b + step_b
            done |= np.maximum(np.abs(step_a), np.abs(step_b)) < tol
            if done.all():
                break
    return np.where(done & np.isfinite(b), b, np.nan)


def _newton_offset(data: _Sorted, w: Floats, max_iter: int = 100, tol: float = 1e-9) -> Floats:
    a = np.zeros(len(w))
    done = np.zeros(len(w), dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            h, resid = _moments(data, w, a[:, None] + data.logit)
            step = np.where(done, 0.0, resid.sum(axis=1) / h.sum(axis=1))
            a = a + step
            done |= np.abs(step) < tol
            if done.all():
                break
    return np.where(done & np.isfinite(a), a, np.nan)

