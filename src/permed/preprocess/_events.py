"""EHR event sequences as padded integer ids, with a vocabulary learned inside each fold."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from permed.exceptions import PermedError

__all__ = ["OOV_ID", "PAD_ID", "EventTokenizer"]

PAD_ID = 0  # after the last event of a shorter sequence
OOV_ID = 1  # a token outside the vocabulary: rare in training, or never seen


def _texts(X: Any) -> pd.Series:  # noqa: N803 (scikit-learn's names)
    """The single column of space-separated tokens, as text ('' where missing)."""
    if isinstance(X, pd.DataFrame):
        values = X.iloc[:, 0]
    elif isinstance(X, pd.Series):
        values = X
    else:
        values = pd.Series(np.asarray(X, dtype=object).reshape(len(X), -1)[:, 0])
    return values.astype(object).where(values.notna(), "").astype(str)


def _sequences(X: Any) -> list[list[str]]:  # noqa: N803
    """One list of tokens per row."""
    return [row.split() for row in _texts(X)]


class EventTokenizer(TransformerMixin, BaseEstimator):
    """Map a column of time-ordered event tokens to a padded matrix of integer ids.

    The vocabulary is learned from the rows ``fit`` sees (inside a CV fold, the training rows
    only): tokens found in at least ``min_count`` patients get ids from 2 up, most frequent
    first; every other token, and any token unseen at fit time, becomes the out-of-vocabulary
    id 1. Each row keeps its ``max_length`` most recent (last) events, oldest first, and is
    padded with 0 after them.

    Parameters
    ----------
    max_length : int
        Events kept per patient (the most recent ones); the width of the output.
    min_count : int
        Patients a token must appear in to get its own id.

    Attributes
    ----------
    vocabulary_ : dict of str to int
        Token -> id (2 and up).
    n_features_in_ : int
        1 (the events column).
    feature_names_in_ : ndarray of str
        The events column.

    Examples
    --------
    >>> import pandas as pd
    >>> tokens = EventTokenizer(max_length=3, min_count=1).fit(
    ...     pd.DataFrame({"events": ["ADM:EMERGENCY RX:Heparin", "ADM:ELECTIVE"]}))
    >>> tokens.vocabulary_  # equally frequent tokens: in alphabetical order
    {'ADM:ELECTIVE': 2, 'ADM:EMERGENCY': 3, 'RX:Heparin': 4}
    >>> tokens.transform(pd.DataFrame({"events": ["ADM:EMERGENCY RX:Unknown"]}))
    array([[3., 1., 0.]])
    """

    def __init__(self, max_length: int = 100, min_count: int = 2) -> None:
        self.max_length = max_length
        self.min_count = min_count

    def fit(self, X: Any, y: Any = None) -> EventTokenizer:  # noqa: N803
        """Learn the vocabulary from the training rows."""
        for name in ("max_length", "min_count"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PermedError(f"EventTokenizer {name}={value!r} must be a positive integer")
        column = X.columns[0] if isinstance(X, pd.DataFrame) else getattr(X, "name", None)
        self.feature_names_in_ = np.asarray([str(column or "events")], dtype=object)
        self.n_features_in_ = 1
        counts = Counter(token for row in _sequences(X) for token in set(row))
        kept = sorted((t for t, n in counts.items() if n >= self.min_count),
                      key=lambda t: (-counts[t], t))
        self.vocabulary_ = {token: k + 2 for k, token in enumerate(kept)}
        return self

    def transform(self, X: Any) -> np.ndarray:  # noqa: N803
        """Ids of the most recent ``max_length`` events per row, padded with 0 (as floats)."""
        check_is_fitted(self, "vocabulary_")
        # each distinct sequence once: an explanation repeats a few thousands of times
        codes, distinct = pd.factorize(_texts(X), sort=False)
        ids = np.full((len(distinct), self.max_length), PAD_ID, dtype=float)
        for i, text in enumerate(distinct):
            recent = text.split()[-self.max_length:]
            ids[i, :len(recent)] = [self.vocabulary_.get(t, OOV_ID) for t in recent]
        return ids[codes]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``<events column>_<position>``, oldest kept event first."""
        check_is_fitted(self, "vocabulary_")
        prefix = str((input_features if input_features is not None
                      else self.feature_names_in_)[0])
        return np.asarray([f"{prefix}_{k}" for k in range(self.max_length)], dtype=object)
