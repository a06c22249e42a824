"""scikit-learn transformers fitted inside each CV fold: impute, encode, scale, clip; genes
(log, variance filter) and notes (TF-IDF or a sentence encoder)."""

from permed.preprocess._clip import QuantileClipper
from permed.preprocess._genes import LogExpression, VarianceFilter, gene_pipeline
from permed.preprocess._tabular import make_preprocessor
from permed.preprocess._text import NoteEncoder

__all__ = ["LogExpression", "NoteEncoder", "QuantileClipper", "VarianceFilter", "gene_pipeline",
           "make_preprocessor"]
