"""Representation table and the before/after mitigation table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permed.fairness import mitigation_table, representation


def _biased_scores(n: int, seed: int):
    # the model's score is shifted up for group "b": at one threshold, "b" gets more false
    # positives and "a" more false negatives
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], n)
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(2.0 * (y - 0.5) + (group == "b") * 1.5 - 0.75 + rng.normal(0, 1, n))))
    return y, score, pd.Series(group)


def test_group_thresholds_shrink_the_equalized_odds_gap():
    table = mitigation_table(_biased_scores(2000, 0), _biased_scores(2000, 1), 0.5, "group")
    before = table["before"]["equalized_odds_difference"]
    after = table["after"]["equalized_odds_difference"]
    assert before > 0.2
    assert after < before / 2
    assert set(table["after"]["groups"]) == {"a", "b"}
    assert table["before"]["overall"]["n"] == 2000


def test_numeric_attribute_uses_the_same_bins_on_both_splits():
    y, score, _ = _biased_scores(400, 0)
    age = pd.Series(np.random.default_rng(2).normal(60, 10, 400))
    table = mitigation_table((y[:200], score[:200], age[:200]),
                             (y[200:], score[200:], age[200:]), 0.5, "age")
    assert all(level.startswith("age [") for level in table["after"]["groups"])


def test_representation_counts_and_warns_on_small_groups():
    sensitive = pd.DataFrame({"sex": ["F"] * 90 + ["M"] * 10})
    outcome = np.array([1] * 45 + [0] * 45 + [1] * 2 + [0] * 8, dtype=bool)
    table = representation(sensitive, outcome, min_group_size=30)["sex"]
    assert table["groups"]["F"] == {"n": 90, "share": 0.9, "outcome_rate": 0.5}
    assert table["groups"]["M"]["outcome_rate"] == pytest.approx(0.2)
    assert table["warnings"] == [
        "group 'M' of 'sex' has 10 development patients (< 30): too few to validate the model "
        "on; its figures are unreliable"]
