"""Treatment metrics without counterfactuals, checked against a simulated truth."""

from __future__ import annotations

import numpy as np
import pytest

from permed.evaluate.treatment import (
    aipw_scores,
    dr_loss,
    overlap_summary,
    policy_value,
    qini_curve,
    standardized_mean_differences,
    treatment_report,
)
from permed.exceptions import PermedError


def _trial(n: int = 4000, seed: int = 0) -> dict[str, np.ndarray]:
    """Confounded binary treatment with known propensity and potential outcomes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    e1 = 1 / (1 + np.exp(-x))
    arm = (rng.random(n) < e1).astype(int)
    mu = np.column_stack([x, x + 1 + x])  # effect 1 + x
    y = mu[np.arange(n), arm] + rng.normal(size=n)
    return {"x": x, "arm": arm, "mu": mu, "y": y, "e": np.column_stack([1 - e1, e1])}


def test_aipw_scores_match_the_documented_example():
    scores = aipw_scores([1.0, 3.0], [0, 1], [[1.0, 2.0], [1.0, 2.0]], [[0.5, 0.5], [0.5, 0.5]])
    assert scores.tolist() == [[1.0, 2.0], [1.0, 4.0]]


@pytest.mark.parametrize("outcome_model", ["right", "wrong"])
def test_aipw_means_are_unbiased_when_the_propensity_is_right(outcome_model):
    # Doubly robust: with the true propensity even a wrong outcome model (all zeros) gives the
    # mean potential outcomes. Truth: E[mu0] = 0, E[mu1] = 1; tolerance 4 standard errors.
    trial = _trial()
    outcomes = trial["mu"] if outcome_model == "right" else np.zeros_like(trial["mu"])
    scores = aipw_scores(trial["y"], trial["arm"], outcomes, trial["e"])
    stderr = scores.std(axis=0) / np.sqrt(len(scores))
    assert np.all(np.abs(scores.mean(axis=0) - [0.0, 1.0]) < 4 * stderr)


def test_a_known_propensity_of_the_received_arm_is_enough():
    trial = _trial()
    received = trial["e"][np.arange(len(trial["arm"])), trial["arm"]]
    assert np.allclose(aipw_scores(trial["y"], trial["arm"], trial["mu"], received),
                       aipw_scores(trial["y"], trial["arm"], trial["mu"], trial["e"]))


def test_aipw_scores_refuse_mismatched_rows():
    with pytest.raises(PermedError, match="aipw_scores: y, arm, outcomes and propensity need 2 "
                                          "rows each; got 2, 3, 2"):
        aipw_scores([1.0, 2.0], [0, 1], np.zeros((3, 2)), np.full((2, 2), 0.5))


def test_dr_loss_prefers_the_true_effect():
    trial = _trial()
    scores = aipw_scores(trial["y"], trial["arm"], trial["mu"], trial["e"])
    truth = (trial["mu"][:, 1] - trial["mu"][:, 0])[:, None]
    constant = np.full_like(truth, truth.mean())
    assert dr_loss(truth, scores) < dr_loss(constant, scores) < dr_loss(-truth, scores)


def test_policy_value_of_the_oracle_beats_every_single_arm():
    trial = _trial()
    scores = aipw_scores(trial["y"], trial["arm"], trial["mu"], trial["e"])
    oracle = (trial["mu"][:, 1] > trial["mu"][:, 0]).astype(int)
    # true gain over treating everyone: E[max(0, -(1 + x))] = 0.083 for x ~ N(0, 1)
    assert policy_value(scores, oracle) > max(scores.mean(axis=0)) + 0.03
    assert policy_value(scores, np.ones(len(oracle), dtype=int)) == pytest.approx(
        scores[:, 1].mean())


def test_qini_curve_starts_at_zero_and_ends_at_the_average_effect():
    rng = np.random.default_rng(1)
    effect = rng.normal(size=500)
    curve = qini_curve(effect, effect + rng.normal(size=500), points=10)
    assert curve["fraction"][0] == 0.0
    assert curve["model"][0] == curve["random"][0] == 0.0
    assert curve["model"][-1] == pytest.approx(curve["random"][-1])
    assert all(m >= r for m, r in zip(curve["model"], curve["random"], strict=True))


def test_treatment_report_with_the_truth():
    trial = _trial()
    scores = aipw_scores(trial["y"], trial["arm"], trial["mu"], trial["e"])
    truth = (trial["mu"][:, 1] - trial["mu"][:, 0])[:, None]
    report = treatment_report(trial["arm"], scores, trial["mu"], ["control", "drug"],
                              true_effects=truth, n_boot=200, seed=0)
    test = report["test"]
    assert set(test) == {"policy_value", "policy_gain", "ate", "qini", "pehe", "ate_error"}
    for entry in test.values():
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    assert test["pehe"]["value"] == 0.0
    assert test["ate"]["ci_low"] < 1.0 < test["ate"]["ci_high"]  # true ATE = 1
    assert test["policy_gain"]["value"] > 0
    assert test["qini"]["value"] > 0
    assert report["best_single_arm"] == "drug"
    assert report["ate_comparison"] == "drug vs control"
    assert set(report["value_by_arm"]) == {"control", "drug"}


def test_lower_is_better_turns_the_policy_around():
    trial = _trial()
    scores = aipw_scores(trial["y"], trial["arm"], trial["mu"], trial["e"])
    report = treatment_report(trial["arm"], scores, trial["mu"], ["a", "b"],
                              higher_is_better=False, n_boot=100)
    assert report["best_single_arm"] == "a"
    assert report["test"]["policy_value"]["value"] < scores.mean(axis=0).min()
    assert report["test"]["policy_gain"]["value"] > 0


def test_multi_arm_report_has_no_qini_and_one_value_per_arm():
    rng = np.random.default_rng(2)
    n = 900
    arm = rng.integers(0, 3, n)
    outcomes = np.column_stack([np.zeros(n), np.ones(n), rng.normal(size=n)])
    y = outcomes[np.arange(n), arm] + rng.normal(size=n)
    scores = aipw_scores(y, arm, outcomes, np.full((n, 3), 1 / 3))
    report = treatment_report(arm, scores, outcomes, ["a", "b", "c"], n_boot=100)
    assert "qini" not in report["test"]
    assert "qini_curve" not in report
    assert set(report["ate_by_arm"]) == {"b", "c"}
    assert sum(report["best_arm_share"].values()) == pytest.approx(1.0)


def test_weighting_removes_the_imbalance_the_propensity_created():
    trial = _trial()
    features = trial["x"][:, None]
    received = trial["e"][np.arange(len(trial["arm"])), trial["arm"]]
    before = standardized_mean_differences(features, trial["arm"])
    after = standardized_mean_differences(features, trial["arm"], 1 / received)
    assert before[0] > 0.5 > 0.1 > after[0]


def test_standardized_mean_difference_of_a_known_shift():
    features = np.r_[np.zeros(50), np.ones(50), np.full(50, 1.0), np.full(50, 2.0)][:, None]
    arm = np.repeat([0, 1], 100)
    # means 0.5 and 1.5, each variance 0.25: SMD = 1 / 0.5 = 2
    assert standardized_mean_differences(features, arm)[0] == pytest.approx(2.0)


def test_overlap_summary_counts_patients_below_the_threshold():
    propensity = np.array([[0.99, 0.01], [0.5, 0.5], [0.7, 0.3], [0.04, 0.96]])
    summary = overlap_summary(propensity, np.array([0, 0, 1, 1]), ["a", "b"], 0.05)
    assert summary["by_arm"]["b"]["below"] == 0.25
    assert summary["by_arm"]["a"]["below"] == 0.25
    assert summary["by_arm"]["a"]["histogram"]["received"][19] == 1
    assert sum(summary["by_arm"]["a"]["histogram"]["other"]) == 2
