"""scikit-learn transformers fitted inside each CV fold: impute, encode, scale, clip."""

from permed.preprocess._clip import QuantileClipper
from permed.preprocess._tabular import make_preprocessor

__all__ = ["QuantileClipper", "make_preprocessor"]
