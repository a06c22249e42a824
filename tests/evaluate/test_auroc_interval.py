import math

import numpy as np
import pytest
from scipy.stats import norm

from permed.evaluate._auroc_interval import auroc_score_interval


def _hanley_mcneil_newcombe(theta, m, n):
    """The variance the interval inverts, written out from Newcombe (2006), method 5."""
    n_star = (m + n) / 2 - 1
    q1, q2 = theta / (2 - theta), 2 * theta**2 / (1 + theta)
    return (theta * (1 - theta) + (n_star - 1) * (q1 - theta**2)
            + (n_star - 1) * (q2 - theta**2)) / (m * n)


@pytest.mark.parametrize(("auc", "m", "n"), [(1.0, 6, 14), (0.8, 30, 60), (0.55, 12, 9)])
def test_bounds_solve_the_score_equation(auc, m, n):
    z = norm.ppf(0.975)
    low, high = auroc_score_interval(auc, m, n)
    assert 0 < low < auc <= high <= 1
    assert (auc - low) ** 2 == pytest.approx(z**2 * _hanley_mcneil_newcombe(low, m, n), rel=1e-6)
    if high < 1:
        assert (high - auc) ** 2 == pytest.approx(
            z**2 * _hanley_mcneil_newcombe(high, m, n), rel=1e-6)


def test_perfect_separation_has_width():
    low, high = auroc_score_interval(1.0, 6, 14)
    assert high == 1.0
    assert 0.7 < low < 0.85


def test_undefined_without_both_classes():
    assert all(math.isnan(v) for v in auroc_score_interval(0.7, 0, 10))
    assert all(math.isnan(v) for v in auroc_score_interval(math.nan, 5, 10))


def test_covers_the_true_auroc_in_small_groups():
    # 6 positives and 14 negatives from binormal scores, true AUROC 0.983: the class-kept
    # bootstrap the audit used before covered it in 46% of groups (benchmarks/group_auroc.py)
    rng = np.random.default_rng(3)
    d, m, n = 3.0, 6, 14
    truth = norm.cdf(d / np.sqrt(2))
    hits = 0
    for _ in range(400):
        pos, neg = rng.normal(d, 1, m), rng.normal(0, 1, n)
        auc = float((pos[:, None] > neg[None, :]).mean())
        low, high = auroc_score_interval(auc, m, n)
        hits += low <= truth <= high
    assert hits / 400 >= 0.92
