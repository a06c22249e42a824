"""Fixtures shared by the evaluation tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def whas_cox():
    """A ridge Cox model fitted on 300 WHAS500 patients: (model, the other 200 patients'
    features, their outcomes, the censoring reference of the 300)."""
    from sksurv.datasets import load_whas500

    from permed.evaluate.survival import censoring_reference
    from permed.models.risk import PenalizedCox, survival_y

    X, y = load_whas500()
    X = X.select_dtypes("number").fillna(0).to_numpy(dtype=float)
    y = survival_y(y["lenfol"], y["fstat"])
    model = PenalizedCox().fit(X[:300], y[:300])
    test = y[300:]
    reference, _ = censoring_reference(y[:300], test)
    return model, X[300:], test, reference
