"""Which original feature each preprocessed column comes from.

A fitted :class:`~sklearn.compose.ColumnTransformer` turns one clinical feature into several
model columns: a numeric feature into its scaled value plus a missing-value indicator, a
categorical feature into one column per category. SHAP values are additive, so the
contributions of a feature's columns are summed to give the feature's contribution, and the
sum over features is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.compose import ColumnTransformer

from permed.exceptions import PermedError

__all__ = ["group_columns", "source_features"]

_INDICATOR_PREFIX = "missingindicator_"


def _owner(output: str, columns: Sequence[str]) -> str | None:
    if output in columns:
        return output
    if output.startswith(_INDICATOR_PREFIX) and output[len(_INDICATOR_PREFIX):] in columns:
        return output[len(_INDICATOR_PREFIX):]
    # a one-hot column is "<feature>_<category>": the longest feature name that prefixes it
    matches = [c for c in columns if output.startswith(f"{c}_")]
    return max(matches, key=len) if matches else None


def _outputs(transformer: object, columns: list[str]) -> list[str]:
    if transformer == "passthrough":
        return list(columns)
    return [str(name) for name in transformer.get_feature_names_out(columns)]  # type: ignore[attr-defined]


def source_features(preprocessor: ColumnTransformer) -> list[str]:
    """The original feature behind each output column of a fitted ``ColumnTransformer``.

    Parameters
    ----------
    preprocessor : ColumnTransformer
        Fitted, with columns selected by name (as :func:`permed.preprocess.make_preprocessor`
        builds it).

    Returns
    -------
    list of str
        One entry per output column, in output order.

    Raises
    ------
    PermedError
        When an output column cannot be traced to one input column.
    """
    owners: list[str] = []
    for name, transformer, columns in preprocessor.transformers_:
        if transformer == "drop" or name == "remainder" or not len(columns):
            continue
        columns = [str(c) for c in columns]
        for output in _outputs(transformer, columns):
            owner = _owner(output, columns)
            if owner is None:
                raise PermedError(
                    f"the preprocessed column '{output}' of step '{name}' cannot be traced to "
                    f"one of its input columns {columns}: explanations need the feature names "
                    "of scikit-learn's get_feature_names_out")
            owners.append(owner)
    return owners


def group_columns(values: np.ndarray, owners: Sequence[str],
                  features: Sequence[str]) -> np.ndarray:
    """Sum per-column contributions into per-feature ones along axis 1.

    Parameters
    ----------
    values : ndarray of shape (n, n_columns, ...)
        Contributions of the preprocessed columns.
    owners : sequence of str
        The feature of each column (:func:`source_features`).
    features : sequence of str
        The features, in output order; a feature with no column gets 0.

    Returns
    -------
    ndarray of shape (n, len(features), ...)
    """
    return sum_columns(values, column_owners(owners, features))


def column_owners(owners: Sequence[str], features: Sequence[str]) -> np.ndarray:
    """The 0/1 matrix (n_columns, n_features) of which feature owns each column."""
    index = {f: i for i, f in enumerate(features)}
    onehot = np.zeros((len(owners), len(features)))
    onehot[np.arange(len(owners)), [index[o] for o in owners]] = 1.0
    return onehot


def sum_columns(values: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """:func:`group_columns` with the ownership matrix of :func:`column_owners` given."""
    if values.ndim == 2:
        return values @ onehot
    if values.ndim == 3:  # (n, m, k) from (m, t) @ (n, t, k): matmul's broadcast, fewer calls
        return onehot.T @ values
    return np.einsum("nt...,tm->nm...", values, onehot)
