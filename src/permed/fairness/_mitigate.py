"""Post-processing mitigation: group-specific thresholds (fairlearn ThresholdOptimizer)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import equalized_odds_difference
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator, ClassifierMixin

from permed.fairness._audit import Edges, _check_edges, group_labels

__all__ = ["mitigation_table"]


class _ScoreAsProbability(ClassifierMixin, BaseEstimator):
    """A prefit 'model' whose input is already the probability of the positive class."""

    def fit(self, X, y):  # noqa: N803 - scikit-learn's name
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):  # noqa: N803
        p = np.asarray(X, dtype=float)[:, 0]
        return np.column_stack([1.0 - p, p])

    def predict(self, X):  # noqa: N803
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def _rates(y: np.ndarray, label: np.ndarray) -> dict[str, float | None]:
    def share(mask: np.ndarray) -> float | None:
        return float(label[mask].mean()) if mask.any() else None

    return {"n": int(len(y)), "sensitivity": share(y == 1),
            "specificity": None if share(y == 0) is None else 1.0 - share(y == 0),
            "selection_rate": float(label.mean()) if len(y) else None,
            "accuracy": float((label == y).mean()) if len(y) else None}


def _table(y: np.ndarray, label: np.ndarray, groups: np.ndarray,
           levels: list[str]) -> dict[str, Any]:
    return {"overall": _rates(y, label),
            "groups": {level: _rates(y[groups == level], label[groups == level])
                       for level in levels},
            "equalized_odds_difference": float(
                equalized_odds_difference(y, label, sensitive_features=groups))}


def mitigation_table(
    development: tuple[np.ndarray, np.ndarray, Any],
    test: tuple[np.ndarray, np.ndarray, Any],
    threshold: float,
    attribute: str,
    constraint: str = "equalized_odds",
    seed: int = 0,
    edges: Edges | None = None,
) -> dict[str, Any]:
    """Fit group thresholds on development predictions; compare before/after on the test split.

    Parameters
    ----------
    development, test : (y, p, groups)
        Binary outcome, calibrated probability of the positive class (out-of-fold on the
        development split) and the sensitive attribute's values.
    threshold : float
        The model's single decision threshold ("before").
    attribute : str
        Name of the sensitive attribute.
    edges : mapping of str to sequence of float, optional
        Bin edges of numeric attributes, from :func:`permed.fairness.bin_edges` on the
        development split (the groups of the run's audits); ``None`` bins a numeric attribute
        with more than 5 values at the quartiles of both splits together.

    Returns
    -------
    dict
        ``{"method", "attribute", "before": {...}, "after": {...}, "note"}`` where before/after
        hold overall and per-group sensitivity, specificity, selection rate, accuracy and the
        equalized-odds difference.
    """
    (y_dev, p_dev, g_dev), (y_test, p_test, g_test) = development, test
    # one labelling for both splits, so binned numeric groups have the same edges
    both = pd.concat([pd.Series(g_dev), pd.Series(g_test)], ignore_index=True)
    labels, levels, _ = group_labels(both, attribute, _check_edges(edges))
    dev_labels, test_labels = labels[:len(y_dev)], labels[len(y_dev):]
    optimizer = ThresholdOptimizer(
        estimator=_ScoreAsProbability().fit(None, None), constraints=constraint,
        objective="balanced_accuracy_score", prefit=True, predict_method="predict_proba")
    optimizer.fit(np.asarray(p_dev)[:, None], np.asarray(y_dev), sensitive_features=dev_labels)
    after = optimizer.predict(np.asarray(p_test)[:, None], sensitive_features=test_labels,
                              random_state=seed)
    before = (np.asarray(p_test) >= threshold).astype(int)
    y_test = np.asarray(y_test)
    return {
        "method": f"fairlearn ThresholdOptimizer ({constraint}, balanced accuracy), fitted on "
                  "development out-of-fold predictions, evaluated on the test split",
        "attribute": attribute,
        "before": _table(y_test, before, test_labels, levels),
        "after": _table(y_test, np.asarray(after), test_labels, levels),
        "note": "Report only: the saved model keeps one threshold for everyone. Group-specific "
                "thresholds need the sensitive attribute at prediction time; adopt them only "
                "after an ethics and legal review.",
    }
