"""The tabular preprocessing pipeline: always fitted inside a CV fold, never on all the data."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from permed.preprocess._clip import QuantileClipper

__all__ = ["make_preprocessor"]


def make_preprocessor(
    numeric: list[str], categorical: list[str], clip: tuple[float, float] | None = None
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
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
