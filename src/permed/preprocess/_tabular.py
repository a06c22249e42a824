"""The tabular preprocessing pipeline: always fitted inside a CV fold, never on all the data."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from permed.preprocess._clip import QuantileClipper
from permed.preprocess._genes import gene_pipeline
from permed.preprocess._text import NoteEncoder

__all__ = ["make_preprocessor"]


def make_preprocessor(
    numeric: list[str], categorical: list[str], clip: tuple[float, float] | None = None,
    genes: list[str] | None = None, notes: list[str] | None = None,
    text_encoder: str = "tfidf",
) -> ColumnTransformer:
    """Impute, scale and encode a table's features.

    Numeric columns: optional quantile clipping, median imputation with a missing-value
    indicator, standard scaling. Categorical columns: most-frequent imputation and one-hot
    encoding; a category unseen at fit time is encoded as all zeros.

    Parameters
    ----------
    numeric, categorical : list of str
        Column names by kind.
    clip : (float, float), optional
        Lower and upper quantiles to clip numeric columns to.
    genes : list of str, optional
        Gene-expression columns: log transform and variance filter
        (:func:`permed.preprocess.gene_pipeline`), then imputed and scaled.
    notes : list of str, optional
        Free-text columns, each scrubbed of identifiers and encoded by ``text_encoder``
        (:class:`permed.preprocess.NoteEncoder`).
    text_encoder : str
        ``"tfidf"``, ``"minilm"``, ``"auto"`` or a local sentence-transformers model folder.

    Returns
    -------
    sklearn.compose.ColumnTransformer
        Unfitted; output is a dense float array.
    """
    numeric_steps = [] if clip is None else [("clip", QuantileClipper(*clip))]
    numeric_steps += [
        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
        ("scale", StandardScaler()),
    ]
    categorical_steps = [
        ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ]
    transformers = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), list(numeric)))
    if categorical:
        transformers.append(("categorical", Pipeline(categorical_steps), list(categorical)))
    if genes:
        transformers.append(("genes", gene_pipeline(), list(genes)))
    transformers += [(f"note_{k}", NoteEncoder(text_encoder), [column])
                     for k, column in enumerate(notes or [])]
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
