"""Shared checks of what a valid model output is, for permed's tests and for users' own models.

Each ``assert_*`` function raises ``AssertionError`` with the reason when an output is invalid.
"""

from __future__ import annotations

import numpy as np

__all__ = ["assert_valid_proba"]


def assert_valid_proba(proba: np.ndarray, n_rows: int, n_classes: int, atol: float = 1e-6) -> None:
    """Class probabilities: shape (n_rows, n_classes), each in [0, 1], rows summing to 1."""
    proba = np.asarray(proba)
    assert proba.shape == (n_rows, n_classes), f"shape {proba.shape}, expected " \
        f"{(n_rows, n_classes)}"
    assert np.all(np.isfinite(proba)), "probabilities contain NaN or infinity"
    assert proba.min() >= -atol, f"probability below 0: {proba.min()}"
    assert proba.max() <= 1 + atol, f"probability above 1: {proba.max()}"
    assert np.allclose(proba.sum(axis=1), 1.0, atol=atol), "rows do not sum to 1"
