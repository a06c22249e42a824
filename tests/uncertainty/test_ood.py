"""The shrunk Mahalanobis distance: scikit-learn's Ledoit-Wolf distances, in low-rank form
when there are more columns than patients."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from permed.uncertainty._ood import ShrunkMahalanobis


def _table(n: int, p: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * rng.uniform(0.1, 3.0, p)  # unequal spreads
    X[:, :3] = X[:, :3] > 0  # one-hot-like columns
    X[:, 3] = X[:, 4] + 0.01 * rng.normal(size=n)  # two nearly collinear columns
    return X


@pytest.mark.parametrize(("n", "p"), [(30, 400), (80, 120), (50, 51), (200, 20)])
def test_distances_and_shrinkage_equal_scikit_learns(n, p):
    X, Z = _table(n, p), _table(9, p, seed=1)
    expected = LedoitWolf().fit(X)
    ours = ShrunkMahalanobis().fit(X)
    assert ours.shrinkage_ == pytest.approx(expected.shrinkage_, rel=1e-12)
    np.testing.assert_allclose(ours.mahalanobis(Z), expected.mahalanobis(Z), rtol=1e-9)
    np.testing.assert_allclose(ours.mahalanobis(X[:5]), expected.mahalanobis(X[:5]), rtol=1e-9)


def test_the_low_rank_form_is_used_only_with_more_columns_than_patients():
    assert ShrunkMahalanobis().fit(_table(30, 400)).estimator_ is None
    assert isinstance(ShrunkMahalanobis().fit(_table(200, 20)).estimator_, LedoitWolf)


def test_identical_rows_fall_back_to_scikit_learn():
    # no spread at all: nothing to shrink towards, the pseudo-inverse is needed
    X = np.ones((5, 40))
    ours = ShrunkMahalanobis().fit(X)
    assert isinstance(ours.estimator_, LedoitWolf)
    np.testing.assert_allclose(ours.mahalanobis(X), LedoitWolf().fit(X).mahalanobis(X))


def test_a_value_so_far_that_the_distance_overflows_is_flagged_and_told_briefly():
    import pandas as pd

    from permed.uncertainty import OutOfDistribution

    numeric = pd.DataFrame(_table(200, 6), columns=[f"x{i}" for i in range(6)])
    ood = OutOfDistribution().fit(numeric.to_numpy(), numeric)
    far = numeric.head(2).copy()
    far.loc[far.index[0], ["x4", "x5"]] = [-1e308, 1e308]
    assert np.isnan(ood.covariance_.mahalanobis(far.to_numpy())[0])  # inf - inf: overflowed
    assert ood.flag(far.to_numpy()).tolist() == [True, False]
    assert ood.reasons(far.head(1))[0] == ("x5 (5.1e+307 IQR from median), x4 (4.1e+307 IQR "
                                           "from median)")


def test_a_two_valued_feature_is_named_with_its_value_and_share_not_in_iqr():
    """fasting_blood_sugar = 1 had read '2.9 IQR from median' (its IQR is 0: the unit was SD)."""
    import pandas as pd

    from permed.uncertainty import OutOfDistribution

    rng = np.random.default_rng(3)
    numeric = pd.DataFrame({"fbs": (rng.random(300) < 0.1).astype(float),
                            "ca": rng.choice([0.0] * 9 + [1.0, 2.0], 300),
                            "age": rng.normal(55, 9, 300)})
    ood = OutOfDistribution().fit(numeric.to_numpy(), numeric)
    share = numeric["fbs"].mean()
    patient = pd.DataFrame({"fbs": [1.0], "ca": [2.0], "age": [55.0]})
    reasons = ood.reasons(patient, top=3)[0]
    assert f"fbs = 1 ({share:.0%} of development patients)" in reasons
    assert "ca (3.3 SD from median)" in reasons  # its IQR is 0: in standard deviations
    assert "IQR" not in reasons.split("age")[0]
