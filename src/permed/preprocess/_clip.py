"""Clip extreme values to quantiles learned at fit time."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["QuantileClipper"]


class QuantileClipper(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Clip each column to its ``[lower, upper]`` quantiles of the training data.

    Missing values pass through unchanged (they are imputed afterwards).

    Parameters
    ----------
    lower, upper : float
        Quantiles in [0, 1] learned at fit time.

    Examples
    --------
    >>> import numpy as np
    >>> QuantileClipper(0.0, 0.5).fit([[1.0], [2.0], [3.0]]).transform([[9.0]])
    array([[2.]])
    """

    def __init__(self, lower: float = 0.005, upper: float = 0.995) -> None:
        self.lower = lower
        self.upper = upper

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn's name
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        if not 0.0 <= self.lower <= self.upper <= 1.0:
            raise ValueError(
                f"QuantileClipper needs 0 <= lower <= upper <= 1, got lower={self.lower}, "
                f"upper={self.upper}")
        with np.errstate(all="ignore"):
            self.low_ = np.nanquantile(X, self.lower, axis=0)
            self.high_ = np.nanquantile(X, self.upper, axis=0)
        return self

    def transform(self, X):  # noqa: N803
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return np.clip(X, self.low_, self.high_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
