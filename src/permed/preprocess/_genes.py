"""Gene-expression preprocessing for p >> n: log transform and variance filter, fitted per fold.

Both are unsupervised, but the variance ranking still comes from the training rows of each fold
only, so a cross-validated score never sees the held-out patients' spread.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["LogExpression", "VarianceFilter", "gene_pipeline"]

# Raw microarray intensities (Affymetrix MAS4/5) and RNA-seq counts run into the thousands;
# log-scale data (log2 RMA, log CPM) rarely exceeds 25. Above this maximum the data is raw.
_RAW_MAXIMUM = 100.0


class LogExpression(TransformerMixin, BaseEstimator):
    """``log2(clip(x, floor, ceiling))`` for raw expression; a no-op for log-scale data.

    Parameters
    ----------
    log : {"auto", True, False}
        ``"auto"``: log-transform when the training maximum exceeds 100 (raw intensities or
        counts), leave log-scale data as it is.
    floor : float
        Values below are raised to it before the log: background-subtracted microarray
        intensities can be negative or near zero, where the log would turn noise into large
        differences (Dudoit, Fridlyand and Speed (2002) floored the Golub data at 100 and
        capped it at 16,000).
    ceiling : float or None
        Values above are lowered to it (scanner saturation).

    Attributes
    ----------
    apply_log_ : bool
        Whether ``transform`` takes the log.
    n_features_in_ : int
    """

    def __init__(self, log: str | bool = "auto", floor: float = 20.0,
                 ceiling: float | None = 16000.0) -> None:
        self.log = log
        self.floor = floor
        self.ceiling = ceiling

    def fit(self, X, y=None):  # noqa: N803 (scikit-learn's names)
        """Decide whether to take the log, from the training maximum."""
        X = validate_data(self, X, ensure_all_finite="allow-nan")
        if self.log == "auto":
            finite = X[~np.isnan(X)]
            self.apply_log_ = bool(finite.size and finite.max() > _RAW_MAXIMUM)
        else:
            self.apply_log_ = bool(self.log)
        return self

    def transform(self, X):  # noqa: N803
        """Clipped log2 values (or the values unchanged)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        if not self.apply_log_:
            return X.astype(float)
        return np.log2(np.clip(X.astype(float), self.floor, self.ceiling))

    def get_feature_names_out(self, input_features=None):
        """The input names, unchanged."""
        check_is_fitted(self)
        if input_features is None:
            input_features = getattr(self, "feature_names_in_",
                                     [f"x{i}" for i in range(self.n_features_in_)])
        return np.asarray(input_features, dtype=object)


class VarianceFilter(TransformerMixin, BaseEstimator):
    """Keep the ``k`` features with the largest variance in the training rows.

    Parameters
    ----------
    k : int
        Features kept (all when there are fewer).

    Attributes
    ----------
    variances_ : ndarray of shape (n_features_in_,)
    support_ : ndarray of bool
        The kept features.
    n_features_in_ : int
    """

    def __init__(self, k: int = 1000) -> None:
        self.k = k

    def fit(self, X, y=None):  # noqa: N803
        """Rank the features by variance (missing values ignored)."""
        X = validate_data(self, X, ensure_all_finite="allow-nan")
        with np.errstate(invalid="ignore"):
            variances = np.nanvar(X, axis=0) if len(X) else np.zeros(X.shape[1])
        self.variances_ = np.nan_to_num(variances, nan=0.0)
        order = np.argsort(-self.variances_, kind="stable")[: max(1, int(self.k))]
        self.support_ = np.zeros(X.shape[1], dtype=bool)
        self.support_[order] = True
        return self

    def transform(self, X):  # noqa: N803
        """The kept columns, in input order."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        return X[:, self.support_]

    def get_feature_names_out(self, input_features=None):
        """Names of the kept features."""
        check_is_fitted(self)
        if input_features is None:
            input_features = getattr(self, "feature_names_in_",
                                     [f"x{i}" for i in range(self.n_features_in_)])
        return np.asarray(input_features, dtype=object)[self.support_]


def gene_pipeline(top_genes: int = 1000) -> Pipeline:
    """Log transform, variance filter, median imputation and standard scaling of genes.

    Parameters
    ----------
    top_genes : int
        Genes kept by the variance filter (fitted on each fold's training rows).

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted.
    """
    return Pipeline([
        ("log", LogExpression()),
        ("variance", VarianceFilter(top_genes)),
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
    ])
