"""Percentile bootstrap confidence intervals, stratified by class.

All replicate index arrays are drawn up front from one ``numpy.random.Generator(seed)`` (in
chunks of at most ``_MAX_CHUNK`` indices, so memory stays bounded on large data), and every
statistic is evaluated on the same resamples: ``bootstrap_many`` runs one loop over replicates
however many statistics it is given.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from permed.exceptions import PermedError

__all__ = ["bootstrap_ci", "bootstrap_dict", "bootstrap_many"]

# Largest number of indices drawn at once (n_boot * n); 2**24 int64 indices are 128 MiB.
_MAX_CHUNK = 2**24

# A statistic that cannot be computed on a resample either returns nan or raises one of these.
_UNDEFINED = (ValueError, ArithmeticError, np.linalg.LinAlgError)


def bootstrap_ci(
    statistic: Callable[..., float],
    y_true: ArrayLike,
    *arrays: ArrayLike,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    stratify: bool = True,
    strata: ArrayLike | None = None,
) -> dict[str, float]:
    """Estimate a statistic and its percentile bootstrap confidence interval.

    Parameters
    ----------
    statistic : callable
        ``statistic(y_true, *arrays) -> float``. It may return nan or raise ``ValueError``
        where it is undefined (for example an AUROC on a resample with one class).
    y_true : array-like of shape (n,)
        True labels; resampling is stratified within each of its classes.
    *arrays : array-like
        Further arrays with ``n`` rows (probabilities, predictions, groups), resampled with
        the same row indices as ``y_true``.
    n_boot : int, default=1000
        Number of bootstrap replicates.
    confidence : float, default=0.95
        Coverage of the interval, in (0, 1).
    seed : int, default=0
        Seed of the ``numpy.random.Generator`` that draws every resample.
    stratify : bool, default=True
        Resample within each class of ``y_true`` (or of ``strata``), so every replicate keeps
        the class counts of the data.
    strata : array-like of shape (n,), optional
        Labels to stratify on instead of ``y_true`` (for example group x class).

    Returns
    -------
    dict
        ``{"value", "ci_low", "ci_high"}`` as floats. ``value`` is the statistic on the full
        data (nan when undefined there). Replicates where the statistic is not finite or
        raises are dropped; when fewer than half of them remain, both CI bounds are nan.

    Raises
    ------
    PermedError
        If ``n_boot`` or ``confidence`` is out of range or the arrays differ in length.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    >>> ci = bootstrap_ci(lambda t, p: float(np.mean(t == p)), y, y, n_boot=50)
    >>> ci["value"], ci["ci_low"], ci["ci_high"]
    (1.0, 1.0, 1.0)
    """
    result = bootstrap_many(
        {"statistic": statistic},
        y_true,
        *arrays,
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
        stratify=stratify,
        strata=strata,
    )
    return result["statistic"]


def bootstrap_many(
    statistics: Mapping[str, Callable[..., float]],
    y_true: ArrayLike,
    *arrays: ArrayLike,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    stratify: bool = True,
    strata: ArrayLike | None = None,
) -> dict[str, dict[str, float]]:
    """Bootstrap several statistics on the same resamples.

    Each replicate draws one set of row indices and evaluates every statistic on it, so the
    intervals are computed from identical resamples (and the data are indexed once per
    replicate, not once per statistic).

    Parameters
    ----------
    statistics : mapping of str to callable
        ``{name: statistic(y_true, *arrays) -> float}``; see :func:`bootstrap_ci`.
    y_true, *arrays, n_boot, confidence, seed, stratify, strata
        As in :func:`bootstrap_ci`.

    Returns
    -------
    dict
        ``{name: {"value", "ci_low", "ci_high"}}`` in the order of ``statistics``.

    Raises
    ------
    PermedError
        If ``n_boot`` or ``confidence`` is out of range or the arrays differ in length.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 1, 0, 1, 1, 0])
    >>> p = np.array([0.1, 0.8, 0.3, 0.7, 0.9, 0.2])
    >>> out = bootstrap_many({"mean_p": lambda t, q: q.mean(), "prev": lambda t, q: t.mean()},
    ...                      y, p, n_boot=20)
    >>> out["prev"]
    {'value': 0.5, 'ci_low': 0.5, 'ci_high': 0.5}
    """
    funcs = dict(statistics)

    def combined(*args: Any) -> dict[str, float]:
        return {name: _call_or_nan(func, *args) for name, func in funcs.items()}

    return bootstrap_dict(
        combined,
        y_true,
        *arrays,
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
        stratify=stratify,
        strata=strata,
    )


def bootstrap_dict(
    statistic: Callable[..., Mapping[Hashable, float]],
    y_true: ArrayLike,
    *arrays: ArrayLike,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    stratify: bool = True,
    strata: ArrayLike | None = None,
) -> dict[Any, dict[str, float]]:
    """Bootstrap a statistic that returns many named values at once.

    Use this when the values share work (one confusion matrix gives sensitivity,
    specificity, PPV...): the statistic runs once per replicate.

    Parameters
    ----------
    statistic : callable
        ``statistic(y_true, *arrays) -> {name: float}``. On the full data it must succeed and
        its keys name the results; on a replicate a missing key, a non-finite value or a
        raised ``ValueError`` counts as undefined for that replicate.
    y_true, *arrays, n_boot, confidence, seed, stratify, strata
        As in :func:`bootstrap_ci`.

    Returns
    -------
    dict
        ``{name: {"value", "ci_low", "ci_high"}}`` in the order of the full-data result.

    Raises
    ------
    PermedError
        If ``n_boot`` or ``confidence`` is out of range or the arrays differ in length.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 1, 0, 1])
    >>> out = bootstrap_dict(lambda t: {"n": len(t), "prev": t.mean()}, y, n_boot=10)
    >>> out["n"]
    {'value': 4.0, 'ci_low': 4.0, 'ci_high': 4.0}
    """
    _check_options(n_boot, confidence)
    y = np.asarray(y_true)
    data = [np.asarray(a) for a in arrays]
    _check_lengths(y, data, strata)
    point = dict(statistic(y, *data))
    names = list(point)
    replicates = np.full((n_boot, len(names)), np.nan)
    labels = None if not stratify else np.asarray(y if strata is None else strata)
    row = 0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # Warnings on single resamples (a class missing, a division by zero) are noise: the
        # replicate is simply dropped below.
        warnings.simplefilter("ignore")
        for chunk in _resample_indices(len(y), labels, n_boot, seed):
            for idx in chunk:
                values = _replicate(statistic, y[idx], [a[idx] for a in data])
                replicates[row] = [_as_float(values.get(name, math.nan)) for name in names]
                row += 1
    return {
        name: {"value": _as_float(point[name]), **_percentile_ci(replicates[:, j], confidence)}
        for j, name in enumerate(names)
    }


def _check_options(n_boot: int, confidence: float) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise PermedError(f"n_boot must be a positive integer, got {n_boot!r}: use e.g. 1000")
    if not 0.0 < confidence < 1.0:
        raise PermedError(
            f"confidence must be strictly between 0 and 1, got {confidence!r}: use e.g. 0.95"
        )


def _check_lengths(y: NDArray[Any], data: list[NDArray[Any]], strata: ArrayLike | None) -> None:
    if y.ndim != 1:
        raise PermedError(f"y_true must be one-dimensional, got shape {y.shape}")
    if len(y) == 0:
        raise PermedError("y_true is empty: the bootstrap needs at least one row")
    lengths = [len(a) for a in data]
    if strata is not None:
        lengths.append(len(np.asarray(strata)))
    bad = [i for i, n in enumerate(lengths) if n != len(y)]
    if bad:
        raise PermedError(
            f"every array must have {len(y)} rows like y_true; got lengths {lengths} "
            f"(mismatch at position {bad}): pass arrays of the same rows"
        )


def _resample_indices(
    n: int, labels: NDArray[Any] | None, n_boot: int, seed: int
) -> Iterator[NDArray[np.intp]]:
    """Yield arrays of shape (chunk, n) of row indices; stratified within each label."""
    rng = np.random.Generator(np.random.PCG64(seed))
    per_chunk = max(1, _MAX_CHUNK // n)
    if labels is None:
        strata = [np.arange(n)]
    else:
        _, codes = np.unique(labels, return_inverse=True)
        strata = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]
    for start in range(0, n_boot, per_chunk):
        size = min(per_chunk, n_boot - start)
        yield np.concatenate(
            [rows[rng.integers(0, len(rows), size=(size, len(rows)))] for rows in strata],
            axis=1,
        )


def _replicate(
    statistic: Callable[..., Mapping[Hashable, float]], y: NDArray[Any], data: list[NDArray[Any]]
) -> Mapping[Hashable, float]:
    try:
        return statistic(y, *data)
    except _UNDEFINED:
        return {}


def _call_or_nan(func: Callable[..., float], *args: Any) -> float:
    try:
        return _as_float(func(*args))
    except _UNDEFINED:
        return math.nan


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _percentile_ci(values: NDArray[np.float64], confidence: float) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0 or 2 * finite.size < values.size:
        return {"ci_low": math.nan, "ci_high": math.nan}
    alpha = 1.0 - confidence
    low, high = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return {"ci_low": float(low), "ci_high": float(high)}
