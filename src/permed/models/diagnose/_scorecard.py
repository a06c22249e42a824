"""A points-based clinical scorecard: integer points per feature band, risk from total points."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from permed.exceptions import PermedError

__all__ = ["ScorecardClassifier"]

# The probability of the total points is a near-unpenalized logistic fit on one variable.
_POINTS_C = 1e4


class ScorecardClassifier(ClassifierMixin, BaseEstimator):
    """Points-based scorecard for a binary outcome, read whole like a clinical score.

    Each feature is cut into bands at quantiles of the training data (a 0/1 feature keeps its
    two values). With more than ``max_features`` features, an L1-penalized logistic
    regression on the band indicators keeps the ``max_features`` features that enter first
    along its regularization path, so the card stays short enough to read. An L2-penalized
    logistic regression on the kept features' bands gives each band a weight; weights are
    shifted so that the lowest band of every feature scores 0 and scaled so that the most
    important feature spans ``0..max_points``, then rounded to integers. A patient's total is
    the sum of the points of his or her bands, and the probability of the positive class is a
    logistic function of that total alone, refitted on the training data after rounding.
    Features left out, or whose bands round to the same points, score 0.

    The scorecard is binary-only (``__sklearn_tags__`` declares
    ``classifier_tags.multi_class = False``): a target with more than two classes is refused,
    as clinical scores predict one outcome.

    Parameters
    ----------
    n_bands : int, default=4
        Most bands per feature, cut at equally spaced quantiles; fewer when quantiles tie.
    max_points : int, default=10
        Points spanned by the most important feature; the others get fewer.
    max_features : int or None, default=8
        Most features (columns of ``X``) that score points; None keeps them all.
    C : float, default=1.0
        Inverse L2 penalty of the logistic regression on the band indicators.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        Class labels, sorted; ``classes_[1]`` is the positive class.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names seen in ``fit``; only set when ``X`` has string column names.
    band_edges_ : list of ndarray
        Per feature, the inner band edges: band ``b`` holds values in
        ``[edges[b - 1], edges[b])``.
    points_ : list of ndarray of int
        Per feature, the points of each band (``len(edges) + 1`` values, the lowest 0).
    intercept_, slope_ : float
        Log-odds of the positive class = ``intercept_ + slope_ * total points``.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> card = ScorecardClassifier().fit(X[:, :5], y)
    >>> card.total_points(X[:2, :5]).dtype.kind
    'i'
    """

    _parameter_constraints: dict = {
        "n_bands": [Interval(Integral, 2, None, closed="left")],
        "max_points": [Interval(Integral, 1, None, closed="left")],
        "max_features": [Interval(Integral, 1, None, closed="left"), None],
        "C": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, n_bands: int = 4, max_points: int = 10, max_features: int | None = 8,
                 C: float = 1.0) -> None:  # noqa: N803
        self.n_bands = n_bands
        self.max_points = max_points
        self.max_features = max_features
        self.C = C

    def fit(self, X, y):  # noqa: N803 - scikit-learn's name
        """Cut the bands, fit their weights, round them to points and fit points -> risk.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Two classes.

        Returns
        -------
        self

        Raises
        ------
        PermedError
            A ``ValueError``: when ``y`` does not hold exactly two classes.
        """
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            found = f"{len(self.classes_)} class" + ("es" if len(self.classes_) != 1 else "")
            raise PermedError(
                f"Only binary classification is supported by ScorecardClassifier: y has "
                f"{found} ({', '.join(map(str, self.classes_[:5]))}); use another model for "
                "this target (leave scorecard out of --models)")
        hit = (y == self.classes_[1]).astype(int)
        self.band_edges_ = [self._edges(X[:, j]) for j in range(X.shape[1])]
        design = self._design(X)
        owner = np.repeat(np.arange(X.shape[1]), [len(e) for e in self.band_edges_])
        kept = np.isin(owner, self._select(design, hit, owner))
        weights = np.zeros(design.shape[1])
        if kept.any():
            weights[kept] = LogisticRegression(C=self.C, max_iter=5000).fit(
                design[:, kept], hit).coef_[0]
        self.points_ = self._round(weights)
        total = self.total_points(X)
        if np.ptp(total) == 0:  # no feature earned points: the prevalence is the prediction
            self.slope_ = 0.0
            share = np.clip(hit.mean(), 1e-6, 1 - 1e-6)
            self.intercept_ = float(np.log(share / (1 - share)))
            return self
        risk = LogisticRegression(C=_POINTS_C, max_iter=1000).fit(total[:, None], hit)
        self.slope_ = float(risk.coef_[0, 0])
        self.intercept_ = float(risk.intercept_[0])
        return self

    def _select(self, design: np.ndarray, hit: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """The features kept: those entering first along an L1 regularization path."""
        features = np.unique(owner)
        if self.max_features is None or len(features) <= self.max_features:
            return features
        kept = features[:0]
        for c in self.C * np.logspace(0, -4, 25):  # from weak to strong penalty
            lasso = LogisticRegression(C=c, l1_ratio=1.0, solver="liblinear", max_iter=5000)
            active = np.unique(owner[lasso.fit(design, hit).coef_[0] != 0])
            if len(active) <= self.max_features:
                kept = active
                break
        return kept

    def _edges(self, column: np.ndarray) -> np.ndarray:
        values = np.unique(column)
        if len(values) <= 2:  # a 0/1 (or two-valued) feature: its two values are the bands
            return values[1:]
        quantiles = np.quantile(column, np.linspace(0, 1, self.n_bands + 1)[1:-1])
        edges = np.unique(quantiles)
        return edges[(edges > values[0]) & (edges <= values[-1])]

    def _bands(self, X: np.ndarray) -> list[np.ndarray]:  # noqa: N803
        return [np.searchsorted(edges, X[:, j], side="right")
                for j, edges in enumerate(self.band_edges_)]

    def _design(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        # one indicator per band above the lowest (the reference band of each feature)
        columns = [(bands[:, None] == np.arange(1, len(edges) + 1)).astype(float)
                   for bands, edges in zip(self._bands(X), self.band_edges_, strict=True)]
        return np.hstack(columns) if columns else np.zeros((len(X), 0))

    def _round(self, weights: np.ndarray) -> list[np.ndarray]:
        per_feature, start = [], 0
        for edges in self.band_edges_:
            band_weights = np.concatenate([[0.0], weights[start:start + len(edges)]])
            per_feature.append(band_weights - band_weights.min())
            start += len(edges)
        widest = max((float(w.max()) for w in per_feature), default=0.0)
        unit = widest / self.max_points if widest > 0 else 1.0
        return [np.rint(w / unit).astype(int) for w in per_feature]

    def column_points(self, X) -> np.ndarray:  # noqa: N803
        """Points each feature gives each row, shape (n_samples, n_features)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        bands = self._bands(X)
        return np.column_stack([points[b] for points, b in zip(self.points_, bands, strict=True)]
                               ) if bands else np.zeros((len(X), 0), dtype=int)

    def total_points(self, X) -> np.ndarray:  # noqa: N803
        """The score: each row's total points (integers)."""
        return self.column_points(X).sum(axis=1).astype(int)

    def decision_function(self, X) -> np.ndarray:  # noqa: N803
        """Log-odds of the positive class, a linear function of the total points."""
        check_is_fitted(self)
        return self.intercept_ + self.slope_ * self.total_points(X)

    def predict_proba(self, X) -> np.ndarray:  # noqa: N803
        """Probabilities of ``classes_`` from the total points, shape (n_samples, 2)."""
        positive = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X) -> np.ndarray:  # noqa: N803
        """The more probable class of each row."""
        decision = self.decision_function(X)
        return self.classes_[(decision > 0).astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags
