"""Out-of-distribution flags: is this patient unlike the patients the model learned from?"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf
from sklearn.model_selection import KFold

__all__ = ["OutOfDistribution", "ShrunkMahalanobis"]


class ShrunkMahalanobis:
    """Squared Mahalanobis distances under the Ledoit-Wolf shrunk covariance.

    The same distances as scikit-learn's ``LedoitWolf().fit(X).mahalanobis(Z)``. With more
    columns than patients (genes, note terms: 1,000 to 5,000 columns) that estimator inverts a
    p x p matrix, 4 s for 30 patients and 1,000 genes; here the shrunk covariance
    ``a I + b Xc'Xc`` (``Xc`` the centred rows) is inverted through the n x n Gram matrix
    (Woodbury's identity), and the shrinkage is computed from it too, in O(n^2 p)
    (benchmarks/ood_fit.py). With at most as many columns as patients scikit-learn's estimator
    fits, and its precision matrix is applied directly (no per-call input checks: the service
    scores one patient at a time).

    Attributes
    ----------
    estimator_ : LedoitWolf or None
        scikit-learn's estimator, when it is the one used.
    location_ : ndarray
        Column means of the training rows.
    precision_ : ndarray or None
        The inverse covariance, with scikit-learn's estimator.
    centred_, inner_, scale_ : ndarray, ndarray, float
        The centred training rows and the Woodbury terms (the low-rank form).
    shrinkage_ : float
    """

    def fit(self, X: np.ndarray) -> ShrunkMahalanobis:
        X = np.asarray(X, dtype=np.float64)
        n, p = X.shape
        self.estimator_ = self.precision_ = None
        if p <= n:
            return self._fit_estimator(X)
        self.location_ = X.mean(axis=0)
        self.centred_ = X - self.location_
        gram = self.centred_ @ self.centred_.T
        norms = np.diag(gram).copy()  # each row's squared norm
        trace = norms.sum() / n  # trace of the empirical covariance Xc'Xc / n
        mu = trace / p
        # scikit-learn's ledoit_wolf_shrinkage, its p x p sums read off the Gram matrix:
        # sum((X**2)'(X**2)) = sum(norms**2) and ||X'X||_F = ||X X'||_F
        squared = (gram**2).sum() / n**2
        beta = ((norms**2).sum() / n - squared) / (p * n)
        delta = (squared - 2.0 * mu * trace + p * mu**2) / p
        beta = min(beta, delta)
        self.shrinkage_ = 0.0 if beta == 0 else float(beta / delta)
        self.scale_ = self.shrinkage_ * mu  # a: the identity's weight
        if self.scale_ <= 0:  # no shrinkage or no spread: the pseudo-inverse is needed
            return self._fit_estimator(X)
        weight = (1.0 - self.shrinkage_) / n  # b
        self.inner_ = weight * np.linalg.inv(self.scale_ * np.eye(n) + weight * gram)
        return self

    def _fit_estimator(self, X: np.ndarray) -> ShrunkMahalanobis:
        self.estimator_ = LedoitWolf().fit(X)
        self.shrinkage_ = float(self.estimator_.shrinkage_)
        self.location_ = self.estimator_.location_
        self.precision_ = self.estimator_.get_precision()
        return self

    def mahalanobis(self, Z: np.ndarray) -> np.ndarray:
        """Squared distance of each row of ``Z`` from the training rows' mean."""
        d = np.asarray(Z, dtype=np.float64) - self.location_
        if self.precision_ is not None:
            return ((d @ self.precision_) * d).sum(axis=1)
        projected = d @ self.centred_.T
        inner = np.einsum("ij,jk,ik->i", projected, self.inner_, projected)
        return (np.einsum("ij,ij->i", d, d) - inner) / self.scale_


class OutOfDistribution:
    """Mahalanobis distance on the model's preprocessed features, plus the features to name.

    The covariance is the Ledoit-Wolf shrinkage estimate (well defined with one-hot columns),
    so a patient whose values are each ordinary but whose combination is not (old with the
    cholesterol of the young, where the two rise together) is far away. An isolation forest
    missed such off-axis patients in tests/uncertainty. A patient is flagged when farther than
    the ``1 - quantile`` quantile of the development patients' distances. The reason names the
    numeric features furthest from the development median, in IQR units (in standard
    deviations where the IQR is 0); a feature with two values is named with its value and how
    often the development patients had it.

    Parameters
    ----------
    quantile : float
        Share of development patients that would be flagged.
    seed : int
        Seed of the folds that set the cutoff.
    """

    def __init__(self, quantile: float = 0.01, seed: int = 0) -> None:
        self.quantile = quantile
        self.seed = seed

    def fit(self, transformed: np.ndarray, numeric: pd.DataFrame) -> OutOfDistribution:
        """Fit on the preprocessed development matrix and the raw numeric features."""
        # The cutoff comes from out-of-fold distances: in-sample distances are biased low, which
        # flagged 13% of new Cleveland patients at a 1% cutoff.
        distances = np.empty(len(transformed))
        for train, held in KFold(5, shuffle=True, random_state=self.seed).split(transformed):
            distances[held] = ShrunkMahalanobis().fit(transformed[train]).mahalanobis(
                transformed[held])
        self.cutoff_ = float(np.quantile(distances, 1.0 - self.quantile))
        self.covariance_ = ShrunkMahalanobis().fit(transformed)
        self.median_ = numeric.median()
        iqr = numeric.quantile(0.75) - numeric.quantile(0.25)
        self.scale_ = iqr.where(iqr > 0, numeric.std()).replace(0, 1.0).fillna(1.0)
        self.unit_ = pd.Series(np.where(iqr > 0, "IQR", "SD"), index=numeric.columns)
        self.shares_ = {column: numeric[column].value_counts(normalize=True).to_dict()
                        for column in numeric.columns if numeric[column].nunique() <= 2}
        return self

    def flag(self, transformed: np.ndarray) -> np.ndarray:
        """True where a patient is farther from the development patients than the cutoff (or
        so far that the distance overflows: 1e308 in a feature gives NaN)."""
        return ~(self.covariance_.mahalanobis(transformed) <= self.cutoff_)

    def reasons(self, numeric: pd.DataFrame, top: int = 2) -> list[str]:
        """Per patient, the numeric features furthest from the development median.

        Vectorized: one stable sort of the IQR distances per row (equal distances keep the
        column order, missing values never named), then one string per patient.
        """
        distances = ((numeric - self.median_) / self.scale_).abs()
        z = distances.to_numpy(dtype=float)
        if z.size == 0:
            return [""] * len(numeric)
        order = np.argsort(-z, axis=1, kind="stable")[:, :top]
        values = np.take_along_axis(z, order, axis=1)
        names = np.asarray(distances.columns, dtype=object)[order]
        raw = np.take_along_axis(numeric.to_numpy(dtype=float), order, axis=1)
        return [", ".join(self._reason(name, value, x)
                          for name, value, x in zip(row_names, row_values, row_raw, strict=True)
                          if not np.isnan(value))
                for row_names, row_values, row_raw in zip(names, values, raw, strict=True)]

    def _reason(self, name: str, distance: float, value: float) -> str:
        shares = getattr(self, "shares_", {}).get(name)  # absent in bundles before 0.1.0's
        if shares is not None:
            share = shares.get(value, 0.0)
            return f"{name} = {value:g} ({share:.0%} of development patients)"
        unit = getattr(self, "unit_", pd.Series(dtype=object)).get(name, "IQR")
        return f"{name} ({_iqr_text(distance)} {unit} from median)"


def _iqr_text(value: float) -> str:
    """``3.2``, or ``4.5e+99`` when a whole number would print a hundred digits."""
    return f"{value:.1f}" if value < 1e4 else f"{value:.2g}"
