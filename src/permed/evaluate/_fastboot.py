"""Bootstrap of the binary test metrics by multinomial counts over the distinct scores.

The exact bootstrap (:func:`permed.evaluate.bootstrap_dict`) indexes the data once per
replicate and re-ranks the scores for the AUROC and the precision-recall curve, an
``O(n log n)`` cost per replicate. A stratified resample is the same thing as a vector of
counts, so here every replicate is a row of counts over the ``G`` distinct (class, score)
pairs (``G <= n``; a few hundred after isotonic calibration), sorted once by class and score:

- AUROC and average precision are rank-based, for all replicates of a block at once: cumulative
  sums of the negatives' and positives' counts give, for each positive score, the negatives
  below it, tied with it and the positives above it. Counts are whole numbers, so the AUROC is
  exactly the reference loop's.
- Confusion counts (sensitivity, specificity, PPV, NPV, F1, accuracy), Brier score and ECE are
  one matrix product of the counts with per-pair columns.
- The recalibration slope and intercept are weighted Newton-Raphson fits from the reference
  loop's starting values, vectorised over the replicates of a block.

The replicates are the very resamples of the exact path with the same seed (as counts), so the
values agree with the reference loop replicate by replicate (within 1e-12; the Newton fits
within their tolerance) and the point values are those of the exact path.
tests/evaluate/test_fastboot_vectorized.py checks both; benchmarks/results/scale.json times
them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from permed.evaluate._bootstrap import _percentile_ci, _resample_indices

__all__ = ["FAST_BOOTSTRAP_MIN_ROWS", "binary_replicates"]

# Above this many test rows classification_report uses the weighted path for binary problems.
FAST_BOOTSTRAP_MIN_ROWS = 5000

# Largest weight matrix (replicates x rows) held at once: 2**22 float64 are 32 MiB.
_MAX_CHUNK = 2**22
_EPS = 1e-10
# Newton steps of the recalibration fits (here and in the exact path, classification.py) are
# halved at most this many times, and accepted when the log-likelihood drops by less than this
# share of itself (rounding)
_MAX_HALVINGS = 60
_LOGLIK_SLACK = 1e-12

Floats = NDArray[np.float64]


class _Sorted:
    """The distinct (class, score) pairs, sorted once, and the per-pair quantities of every metric.

    Every binary metric is a function of the weighted multiset of (class, score) pairs, so a
    replicate is a vector of counts over the ``G`` distinct pairs (``G <= n``; a few hundred
    after isotonic calibration). Pairs are ordered by class, then ascending score: the first
    ``n_neg`` columns are the negatives, the rest the positives, so each class is a slice.
    """

    def __init__(self, y: NDArray[np.int64], p1: Floats, threshold: float, n_bins: int) -> None:
        positive = (y == 1).astype(np.int64)
        order = np.lexsort((p1, positive))
        key_score, key_pos = p1[order], positive[order]
        first = np.r_[True, (np.diff(key_score) != 0) | (np.diff(key_pos) != 0)]
        self.group = np.empty(len(y), dtype=np.int64)
        self.group[order] = np.cumsum(first) - 1  # row -> its (class, score) pair
        self.score = key_score[first]
        self.pos = key_pos[first].astype(np.float64)
        self.n_neg = int(np.sum(self.pos == 0))
        neg_scores, pos_scores = self.score[:self.n_neg], self.score[self.n_neg:]
        # negatives strictly below / at most each positive score (the AUROC's ranks)
        self.below = np.searchsorted(neg_scores, pos_scores, side="left")
        self.upto = np.searchsorted(neg_scores, pos_scores, side="right")
        pred = (self.score >= threshold).astype(np.float64)
        # columns: tp, fp, fn, tn, squared error, and one ECE gap column per bin
        bins = np.minimum((self.score * n_bins).astype(np.int64), n_bins - 1)
        gap = np.zeros((len(self.score), n_bins))
        gap[np.arange(len(self.score)), bins] = self.pos - self.score
        pos = self.pos
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
    """Yield (replicates, G) count matrices over the distinct (class, score) pairs.

    The counts are those of the row indices that :func:`permed.evaluate.bootstrap_dict` draws
    with the same seed (same generator, same chunks, same strata), so both paths see the same
    resamples; the metrics are evaluated on at most ``_MAX_CHUNK`` counts at a time.
    """
    width = len(data.score)
    per_metric = max(1, _MAX_CHUNK // width)
    for chunk in _resample_indices(len(y), y, n_boot, seed):
        for first in range(0, len(chunk), per_metric):
            rows = chunk[first:first + per_metric]
            flat = (np.arange(len(rows))[:, None] * width + data.group[rows]).ravel()
            counts = np.bincount(flat, minlength=len(rows) * width)
            yield counts.reshape(len(rows), width).astype(np.float64)


def _chunk_metrics(data: _Sorted, w: Floats) -> dict[str, Floats]:
    n = w.sum(axis=1)
    sums = w @ data.linear
    tp, fp, fn, tn = sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3]
    with np.errstate(all="ignore"):
        auroc, auprc = _ranked(data, w)
        out = {"auroc": auroc, "auprc": auprc, "accuracy": (tp + tn) / n}
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


def _ranked(data: _Sorted, w: Floats) -> tuple[Floats, Floats]:
    """AUROC and average precision of every replicate from cumulative class counts.

    Rank-based: with ``C`` the cumulative weight of negatives in ascending score, a positive
    at score ``s`` outranks ``C(< s)`` negatives and ties with ``C(<= s) - C(< s)`` (each tie
    counts one half); its precision is ``P(>= s) / (P(>= s) + N(>= s))``. Counts are whole
    numbers, so the AUROC's sums are exact.
    """
    neg, pos = w[:, :data.n_neg], w[:, data.n_neg:]
    cum_neg = np.concatenate([np.zeros((len(w), 1)), np.cumsum(neg, axis=1)], axis=1)
    cum_pos = np.concatenate([np.zeros((len(w), 1)), np.cumsum(pos, axis=1)], axis=1)
    n_neg, n_pos = cum_neg[:, -1], cum_pos[:, -1]
    below, upto = cum_neg[:, data.below], cum_neg[:, data.upto]
    auroc = _div((pos * (below + upto)).sum(axis=1) * 0.5, n_pos * n_neg)
    pos_above = n_pos[:, None] - cum_pos[:, :-1]  # positives at or above each positive score
    seen = pos_above + (n_neg[:, None] - below)
    precision = np.where(pos > 0, pos_above / np.where(seen > 0, seen, 1.0), 0.0)
    return auroc, _div((pos * precision).sum(axis=1), n_pos)


def _recalibration(data: _Sorted, w: Floats) -> tuple[Floats, Floats]:
    """Weighted recalibration slope and intercept-with-offset of every replicate."""
    defined = _overlapping(data, w)
    # the exact path's starting values (a=0, b=1), so that both paths take the same steps
    zeros = np.zeros(len(w))
    _, slope = _newton_slope(data, w, zeros, np.ones(len(w)))
    intercept = _newton_offset(data, w, zeros)
    return (np.where(defined & ~_separated(data, w), slope, np.nan),
            np.where(defined, intercept, np.nan))


def _overlapping(data: _Sorted, w: Floats) -> NDArray[np.bool_]:
    """False where a replicate has one class or its classes are perfectly separated."""
    present = w > 0
    lowest_pos = np.where(present & (data.pos == 1), data.score, np.inf).min(axis=1)
    highest_neg = np.where(present & (data.pos == 0), data.score, -np.inf).max(axis=1)
    return np.isfinite(lowest_pos) & np.isfinite(highest_neg) & (lowest_pos <= highest_neg)


def _separated(data: _Sorted, w: Floats) -> NDArray[np.bool_]:
    """True where a cut on the clipped logit splits a replicate's classes, ties allowed.

    (Quasi-)complete separation either way round, as the exact path's ``_separated``: the
    slope's maximum-likelihood estimate does not exist.
    """
    present_pos = (w > 0) & (data.pos == 1)
    present_neg = (w > 0) & (data.pos == 0)
    x = data.logit
    lowest_pos = np.where(present_pos, x, np.inf).min(axis=1)
    highest_pos = np.where(present_pos, x, -np.inf).max(axis=1)
    lowest_neg = np.where(present_neg, x, np.inf).min(axis=1)
    highest_neg = np.where(present_neg, x, -np.inf).max(axis=1)
    return (lowest_pos >= highest_neg) | (highest_pos <= lowest_neg)


def _moments(data: _Sorted, w: Floats, eta: Floats) -> tuple[Floats, Floats]:
    """Weighted Hessian terms ``w mu (1 - mu)`` and residuals ``w (y - mu)``.

    One exponential per entry: with ``e = exp(-|eta|)``, ``mu`` and ``1 - mu`` are
    ``1 / (1 + e)`` and ``e / (1 + e)`` (which is which depends on the sign of ``eta``), the
    formulas ``scipy.special.expit`` uses, so there is no cancellation in ``1 - mu``.
    """
    near = np.abs(eta)
    np.negative(near, out=near)
    far = np.exp(near, out=near)  # e; ``near`` is reused below
    near = 1.0 / (1.0 + far)  # the larger of mu and 1 - mu
    far *= near  # the smaller
    upper = eta >= 0
    h = near * far
    h *= w
    split = data.n_neg  # negatives' residual is -mu, positives' is 1 - mu
    resid = np.empty_like(h)
    np.negative(np.where(upper[:, :split], near[:, :split], far[:, :split]),
                out=resid[:, :split])
    resid[:, split:] = np.where(upper[:, split:], far[:, split:], near[:, split:])
    resid *= w
    return h, resid


def _loglik(data: _Sorted, w: Floats, eta: Floats) -> Floats:
    """Weighted Bernoulli log-likelihood of every replicate: ``-log(1 + exp(-+eta))`` a pair."""
    sign = 1.0 - 2.0 * data.pos  # negatives +1, positives -1
    return -(w * np.logaddexp(0.0, sign * eta)).sum(axis=1)


def _halve_steps(data: _Sorted, w: Floats, eta: Floats, step: Floats, loglik: Floats,
                 active: NDArray[np.bool_]) -> tuple[Floats, Floats, Floats]:
    """Per active replicate, the largest of 1, 1/2, ... times ``step`` that keeps the likelihood.

    The exact path's ``_halve_step``, vectorised. Returns the factors (nan where even a tiny
    step lowers the likelihood; 0 where not active), the new eta and log-likelihoods.
    """
    floor = loglik - _LOGLIK_SLACK * (1.0 + np.abs(loglik))
    factor = active.astype(np.float64)
    eta, loglik = eta.copy(), loglik.copy()
    pending = active.copy()
    for _ in range(_MAX_HALVINGS):
        rows = np.flatnonzero(pending)
        if not rows.size:
            break
        trial = eta[rows] + factor[rows, None] * step[rows]
        value = _loglik(data, w[rows], trial)
        ok = value >= floor[rows]
        eta[rows[ok]], loglik[rows[ok]] = trial[ok], value[ok]
        pending[rows[ok]] = False
        factor[rows[~ok]] *= 0.5
    factor[pending] = np.nan
    return factor, eta, loglik


def _newton_slope(data: _Sorted, w: Floats, a: Floats, b: Floats, max_iter: int = 100,
                  tol: float = 1e-9) -> tuple[Floats, Floats]:
    """Newton-Raphson with step-halving, as the exact path's ``_fit_recalibration``."""
    x = data.logit
    done = np.zeros(len(w), dtype=bool)
    eta = a[:, None] + b[:, None] * x
    loglik = _loglik(data, w, eta)
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            h, resid = _moments(data, w, eta)
            s_w, s_wx, s_wxx = h.sum(axis=1), h @ x, h @ (x * x)
            g_a, g_b = resid.sum(axis=1), resid @ x
            det = s_w * s_wxx - s_wx * s_wx
            step_a = np.where(done, 0.0, (s_wxx * g_a - s_wx * g_b) / det)
            step_b = np.where(done, 0.0, (s_w * g_b - s_wx * g_a) / det)
            last = ~done & (np.maximum(np.abs(step_a), np.abs(step_b)) < tol)
            failed = ~done & ~(det > 0)
            a, b = a + np.where(last, step_a, 0.0), b + np.where(last, step_b, 0.0)
            a[failed], b[failed] = np.nan, np.nan
            done |= last | failed
            if done.all():
                break
            factor, eta, loglik = _halve_steps(
                data, w, eta, step_a[:, None] + step_b[:, None] * x, loglik, ~done)
            a, b = a + factor * step_a, b + factor * step_b
            done |= np.isnan(factor)
    ok = done & np.isfinite(a) & np.isfinite(b)
    return np.where(ok, a, np.nan), np.where(ok, b, np.nan)


def _newton_offset(data: _Sorted, w: Floats, a: Floats, max_iter: int = 100,
                   tol: float = 1e-9) -> Floats:
    """Newton-Raphson with step-halving, as the exact path's ``_fit_offset_intercept``."""
    done = np.zeros(len(w), dtype=bool)
    eta = a[:, None] + data.logit
    loglik = _loglik(data, w, eta)
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            h, resid = _moments(data, w, eta)
            info = h.sum(axis=1)
            step = np.where(done, 0.0, resid.sum(axis=1) / info)
            last = ~done & (np.abs(step) < tol)
            failed = ~done & ~(info > 0)
            a = a + np.where(last, step, 0.0)
            a[failed] = np.nan
            done |= last | failed
            if done.all():
                break
            factor, eta, loglik = _halve_steps(
                data, w, eta, np.broadcast_to(step[:, None], eta.shape), loglik, ~done)
            a = a + factor * step
            done |= np.isnan(factor)
    return np.where(done & np.isfinite(a), a, np.nan)
