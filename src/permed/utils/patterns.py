"""Per-row texts from a boolean matrix, joined once per distinct row pattern."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["pattern_texts"]

# Row patterns over at most this many columns are keyed by one integer (a bit per column).
_MAX_BIT_COLUMNS = 62
# Up to this many rows (one patient sent to the service) are joined one by one.
_JOIN_EACH = 8


def pattern_texts(matrix: np.ndarray, names: Sequence[str], separator: str,
                  template: str = "{}") -> np.ndarray:
    """Row-wise ``template.format(separator.join(names whose column is True))``.

    Rows with no True column get ''. Each distinct row pattern is joined once, so a million
    rows with a handful of patterns (class sets, out-of-range features) cost one pass over
    the matrix instead of a million joins.

    Parameters
    ----------
    matrix : ndarray of bool, shape (n_rows, n_columns)
    names : sequence of str
        One name per column.
    separator : str
        Between the names of one row.
    template : str, default="{}"
        Wraps each non-empty join, e.g. ``"uncertain between {}"``.

    Returns
    -------
    ndarray of object, shape (n_rows,)
    """
    matrix = np.asarray(matrix, dtype=bool)
    out = np.full(len(matrix), "", dtype=object)
    if len(matrix) <= _JOIN_EACH:  # in Python: numpy's calls cost more than a few rows
        for i, row in enumerate(matrix.tolist()):
            if any(row):
                out[i] = template.format(separator.join(n for n, m in zip(names, row,
                                                                          strict=True) if m))
        return out
    rows = np.flatnonzero(matrix.any(axis=1))
    if rows.size == 0:
        return out
    flagged = matrix[rows]
    if flagged.shape[1] <= _MAX_BIT_COLUMNS:
        keys = flagged.astype(np.int64) @ (1 << np.arange(flagged.shape[1], dtype=np.int64))
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        patterns = flagged[first]
    else:
        patterns, inverse = np.unique(flagged, axis=0, return_inverse=True)
    texts = np.array([template.format(separator.join(n for n, m in zip(names, p, strict=True)
                                                     if m)) for p in patterns], dtype=object)
    out[rows] = texts[np.asarray(inverse).reshape(-1)]
    return out
