"""permed's stacked GRF inference gives EconML's own effects and variances."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from permed.models.treat import CausalForest, _grf


def _forest(arms: int, seed: int) -> tuple[CausalForest, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(500, 4))
    arm = rng.integers(0, arms, 500)
    y = X[:, 0] + (arm > 0) * (1 + X[:, 1]) + (arm == 2) * X[:, 2] + rng.normal(size=500)
    model = CausalForest(Ridge(), n_estimators=40, random_state=seed).fit(X, y, arm)
    return model, rng.normal(size=(30, 4))


@pytest.mark.parametrize("arms", [2, 3])
def test_effects_and_variances_equal_econml(arms, monkeypatch):
    model, X = _forest(arms, arms)
    final = model.estimator_.model_final_
    theta, cov = final.predict_and_var(X)
    ours, our_cov = _grf.predict_and_var(final, X)
    assert ours.shape == theta.shape
    assert our_cov.shape == cov.shape
    np.testing.assert_allclose(ours, theta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(our_cov, cov, rtol=0, atol=1e-12)
    assert np.all(np.diagonal(cov[:, 0], axis1=1, axis2=2) > 0)  # variances, debiased
    # rows in several passes (a few per pass) give the same numbers
    monkeypatch.setattr(_grf, "_CELLS", 40 * 30)
    passes, pass_cov = _grf.predict_and_var(final, X)
    np.testing.assert_allclose(passes, theta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pass_cov, cov, rtol=0, atol=1e-12)
    one, one_cov = _grf.predict_and_var(final, X[:1])
    np.testing.assert_allclose(one_cov, cov[:1], rtol=0, atol=1e-12)
