"""Recalibration of predicted probabilities (Platt sigmoid or isotonic), one-vs-rest."""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

__all__ = ["CALIBRATION_METHODS", "ProbabilityCalibrator", "choose_calibration"]

CALIBRATION_METHODS = ("none", "sigmoid", "isotonic")
_EPS = 1e-6


class ProbabilityCalibrator:
    """Map predicted class probabilities to calibrated ones.

    Each class column is recalibrated one-vs-rest and rows are renormalized, as scikit-learn's
    ``CalibratedClassifierCV`` does; with two classes only the positive column is fitted.

    Parameters
    ----------
    method : {"none", "sigmoid", "isotonic"}
    """

    def __init__(self, method: str = "sigmoid") -> None:
        if method not in CALIBRATION_METHODS:
            raise ValueError(f"calibration method '{method}' unknown; use one of "
                             f"{', '.join(CALIBRATION_METHODS)}")
        self.method = method

    def fit(self, proba: np.ndarray, y: np.ndarray) -> ProbabilityCalibrator:
        """Fit on out-of-fold probabilities ``proba`` (n, K) and class indices ``y``."""
        self.n_classes_ = proba.shape[1]
        columns = [1] if self.n_classes_ == 2 else range(self.n_classes_)
        self.maps_ = {k: self._fit_one(proba[:, k], (y == k).astype(int)) for k in columns}
        return self

    def _fit_one(self, p: np.ndarray, hit: np.ndarray):
        if self.method == "none":
            return None
        if self.method == "isotonic":
            return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, hit)
        return LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p)[:, None], hit)

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities; rows sum to 1."""
        if self.method == "none":
            return proba
        out = np.array(proba, dtype=float, copy=True)
        for k, mapping in self.maps_.items():
            if self.method == "isotonic":
                out[:, k] = mapping.predict(proba[:, k])
            else:
                out[:, k] = mapping.predict_proba(_logit(proba[:, k])[:, None])[:, 1]
        if self.n_classes_ == 2:
            out[:, 0] = 1.0 - out[:, 1]
            return out
        out = np.clip(out, _EPS, None)
        return out / out.sum(axis=1, keepdims=True)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _multiclass_brier(y: np.ndarray, proba: np.ndarray) -> float:
    if proba.shape[1] == 2:
        return float(brier_score_loss(y, proba[:, 1]))
    onehot = np.eye(proba.shape[1])[y]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def choose_calibration(
    proba: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0
) -> tuple[str, dict[str, np.ndarray]]:
    """Pick the method with the lowest cross-fitted Brier score on out-of-fold predictions.

    Each method is fitted on the other folds' predictions and scored on the held-out fold, so
    a flexible method (isotonic) cannot win by memorizing.

    Returns
    -------
    method : str
        The chosen method.
    cross_fitted : dict of str to ndarray
        Each method's cross-fitted calibrated probabilities (for reporting before/after).
    """
    smallest = int(np.bincount(y).min())
    splitter = StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True,
                               random_state=seed)
    cross_fitted = {m: np.zeros_like(proba, dtype=float) for m in CALIBRATION_METHODS}
    for train, test in splitter.split(proba, y):
        for method in CALIBRATION_METHODS:
            calibrator = ProbabilityCalibrator(method).fit(proba[train], y[train])
            cross_fitted[method][test] = calibrator.transform(proba[test])
    scores = {m: _multiclass_brier(y, p) for m, p in cross_fitted.items()}
    return min(CALIBRATION_METHODS, key=lambda m: (scores[m], CALIBRATION_METHODS.index(m))), \
        cross_fitted
