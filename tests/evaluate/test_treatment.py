"""Treatment metrics without counterfactuals, checked against a simulated truth."""

from __future__ import annotations

import numpy as np
import pytest

from permed.evaluate.treatment import (
    IN_SAMPLE,
    aipw_scores,
    arm_ranking,
    candidate_matrix,
    dr_loss,
    followed_policy,
    overlap_summary,
    policy_value,
    qini_curve,
    standardized_mean_differences,
    treatment_report,
    weight_summary,
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
    assert set(test) == {"policy_value", "policy_gain", "ate", "qini", "pehe", "ate_error",
                         "arm_contrasts"}
    assert test.pop("arm_contrasts") == {"drug vs control": test["ate"]}
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


def test_every_pair_of_arms_is_contrasted_from_the_same_replicates():
    # ACTG 175 review: only contrasts with the reference arm were reported, so arm 1 vs arm 2
    # (+31 in the trial) was nowhere. Truth here: arm means 0, 1 and 0.4 (randomized, n = 3000)
    rng = np.random.default_rng(5)
    n = 3000
    arm = rng.integers(0, 3, n)
    y = np.array([0.0, 1.0, 0.4])[arm] + rng.normal(size=n)
    scores = aipw_scores(y, arm, np.zeros((n, 3)), np.full((n, 3), 1 / 3))
    report = treatment_report(arm, scores, np.zeros((n, 3)), ["a", "b", "c"], n_boot=200,
                              ranking=[1, 2, 0])
    contrasts = report["test"]["arm_contrasts"]
    assert list(contrasts) == ["b vs a", "c vs a", "c vs b"]
    values = report["value_by_arm"]
    assert contrasts["c vs b"]["value"] == pytest.approx(values["c"]["value"]
                                                         - values["b"]["value"])
    # the reference contrasts are the ATEs, interval and all: the same bootstrap replicates
    assert contrasts["b vs a"] == report["ate_by_arm"]["b"]
    assert contrasts["c vs a"] == report["ate_by_arm"]["c"]
    for (name, entry), truth in zip(contrasts.items(), [1.0, 0.4, -0.6], strict=True):
        assert entry["ci_low"] < truth < entry["ci_high"], name


@pytest.mark.parametrize(("higher_is_better", "expected"), [(True, [2, 0, 1]),
                                                        (False, [1, 0, 2])])
def test_arm_ranking_orders_arms_by_their_mean_score(higher_is_better, expected):
    scores = np.array([[1.0, 0.0, 3.0], [1.0, 0.0, 1.0]])
    assert arm_ranking(scores, higher_is_better) == expected


def test_followed_policy_gives_the_clear_arm_else_the_best_ranked_candidate():
    candidates = candidate_matrix(["b", "a;b;c", "c;a", "b;c"], ["a", "b", "c"])
    # ranking on development: a first, then c
    assert followed_policy(candidates, [0, 2, 1]).tolist() == [1, 0, 0, 2]


def test_candidate_matrix_refuses_nothing_and_marks_each_named_arm():
    matrix = candidate_matrix(["ZDV+ddI;ddI", "ZDV"], ["ZDV", "ZDV+ddI", "ddI"])
    assert matrix.tolist() == [[False, True, True], [True, False, False]]


def _no_difference(n: int = 400, seed: int = 3) -> dict[str, np.ndarray]:
    """Four arms with the same true mean outcome and a model whose estimates are noise."""
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, 4, n)
    y = rng.normal(350, 100, n)
    outcomes = 350 + rng.normal(0, 10, (n, 4))
    scores = aipw_scores(y, arm, np.full((n, 4), 350.0), np.full((n, 4), 0.25))
    return {"arm": arm, "y": y, "outcomes": outcomes, "scores": scores}


def test_no_clear_difference_gives_the_development_default_and_no_gain():
    # ACTG 175 finding: 99% of patients had no clear difference, yet the evaluated policy was
    # the point-estimate argmax, compared with the best of 4 arms picked on the test patients
    data = _no_difference()
    unclear = np.ones((len(data["arm"]), 4), dtype=bool)
    report = treatment_report(data["arm"], data["scores"], data["outcomes"],
                              ["ZDV", "ZDV+ddI", "ZDV+ddC", "ddI"], n_boot=200,
                              ranking=[1, 3, 2, 0], candidates=unclear)
    assert report["best_single_arm"] == "ZDV+ddI"
    assert report["best_single_arm_chosen_on"] == "development"
    assert report["ate_comparison"] == "ZDV+ddI vs ZDV"
    assert report["policy_arm_share"] == {"ZDV": 0.0, "ZDV+ddI": 1.0, "ZDV+ddC": 0.0,
                                          "ddI": 0.0}
    test = report["test"]
    assert test["policy_value"] == pytest.approx(report["value_by_arm"]["ZDV+ddI"])
    # exactly 0, never a rounding error below 0 that would raise a fairness flag
    assert test["policy_gain"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    # the point-estimate policy is still reported, apart, with its own CI
    estimate = report["best_estimate_policy"]
    assert estimate["rule"].startswith("each patient gets the arm with the best point estimate")
    assert estimate["gain"]["ci_low"] <= estimate["gain"]["value"] <= estimate["gain"]["ci_high"]


def test_the_comparator_is_the_development_choice_not_the_best_on_test():
    data = _no_difference()
    values = data["scores"].mean(axis=0)
    worst_on_test = int(np.argmin(values))
    report = treatment_report(data["arm"], data["scores"], data["outcomes"],
                              ["a", "b", "c", "d"], n_boot=100,
                              ranking=[worst_on_test, *[k for k in range(4) if k != worst_on_test]])
    assert report["best_single_arm"] == "abcd"[worst_on_test]
    # the point-estimate policy, now the evaluated one, against that fixed arm
    chosen = policy_value(data["scores"], np.argmax(data["outcomes"], axis=1))
    assert report["test"]["policy_gain"]["value"] == pytest.approx(chosen - values[worst_on_test])


def test_without_a_development_ranking_the_choice_is_labelled_in_sample():
    data = _no_difference()
    report = treatment_report(data["arm"], data["scores"], data["outcomes"],
                              ["a", "b", "c", "d"], n_boot=50)
    assert report["best_single_arm_chosen_on"] == IN_SAMPLE
    assert report["best_single_arm"] == "abcd"[int(np.argmax(data["scores"].mean(axis=0)))]


def test_clear_recommendations_gain_what_the_truth_says():
    # effect of drug 1 + x; clear where |1 + x| > 1, else no clear difference; default drug
    # (best on average). Following permed gives control only where 1 + x < -1, so the true
    # gain is E[(-1 - x) 1{x < -2}] = phi(2) - Phi(-2) = 0.0312 (x ~ N(0, 1)).
    trial = _trial(n=20000, seed=4)
    scores = aipw_scores(trial["y"], trial["arm"], trial["mu"], trial["e"])
    effect = trial["mu"][:, 1] - trial["mu"][:, 0]
    clear = np.abs(effect) > 1
    best = (effect > 0).astype(int)
    candidates = np.ones((len(effect), 2), dtype=bool)
    candidates[clear] = np.eye(2, dtype=bool)[best[clear]]
    report = treatment_report(trial["arm"], scores, trial["mu"], ["control", "drug"],
                              n_boot=200, ranking=[1, 0], candidates=candidates)
    gain = report["test"]["policy_gain"]
    assert gain["ci_low"] < 0.0312 < gain["ci_high"]
    assert gain["ci_low"] <= gain["value"] <= gain["ci_high"]
    assert report["policy_arm_share"]["control"] == pytest.approx(np.mean(effect < -1))
    # every patient on their best point estimate is the oracle here: E[max(0, -(1 + x))]
    assert report["best_estimate_policy"]["gain"]["value"] == pytest.approx(0.083, abs=0.02)


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


def test_weight_summary_is_kish_effective_sample_size():
    # arm 1: weights 2, 2, 2 and 50 (propensity 0.02): ESS = 56^2 / 2512 = 1.248
    arm = [0, 0, 1, 1, 1, 1]
    e = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.02])
    summary = weight_summary(arm, e, ["a", "b"])
    assert summary["b"]["ess"] == pytest.approx(56 ** 2 / (3 * 4 + 2500))
    assert summary["b"]["max_weight"] == pytest.approx(50.0)
    assert summary["b"]["max_weight_share"] == pytest.approx(50 / 56)
    assert summary["b"]["few_carry"]
    # two arms of 2 and 4 patients with equal weights: small, but not carried by one patient
    assert summary["a"] == {"n": 2, "ess": 2.0, "ess_share": 1.0, "max_weight": 2.0,
                            "max_weight_share": 0.5, "few_carry": False}
    two_columns = np.column_stack([1 - e, e])
    assert weight_summary(arm, two_columns, ["a", "b"])["b"]["few_carry"]


def test_weight_summary_clips_as_the_aipw_scores_do():
    summary = weight_summary([1] * 20, np.full(20, 1e-6), ["a", "b"])
    assert summary["b"]["max_weight"] == pytest.approx(100.0)
    assert summary["b"]["ess"] == pytest.approx(20.0)
