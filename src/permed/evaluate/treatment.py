"""Treatment-effect and policy metrics that need no counterfactual outcome, with bootstrap CIs.

Conventions: arms are coded ``0..K-1`` (0 = the reference arm); ``outcomes`` is an ``(n, K)``
array of a model's expected outcome under each arm; ``scores`` is the ``(n, K)`` array of
doubly-robust (AIPW) scores from :func:`aipw_scores`, whose column means estimate the mean
outcome if everyone received that arm, on held-out data, without counterfactuals;
``sign`` is +1 when a higher outcome is better and -1 otherwise.

The functions give the ``test`` entries of a treat run's ``metrics.json``: ``policy_value``,
``policy_gain``, ``ate``, ``qini`` (binary treatment), and ``pehe`` / ``ate_error`` when the
true effects are known (simulated data).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from permed.evaluate._bootstrap import bootstrap_dict
from permed.exceptions import PermedError

__all__ = [
    "MIN_PROPENSITY",
    "aipw_scores",
    "MAX_WEIGHT_SHARE",
    "MIN_ESS_SHARE",
    "arm_ranking",
    "candidate_matrix",
    "dr_loss",
    "followed_policy",
    "overlap_summary",
    "policy_value",
    "qini_curve",
    "standardized_mean_differences",
    "treatment_report",
    "weight_summary",
]

# AIPW weights use propensities clipped to [MIN_PROPENSITY, 1 - MIN_PROPENSITY]: without it one
# patient with a propensity of 1e-4 would count as ten thousand.
MIN_PROPENSITY = 0.01
# An arm's AIPW value rests on a few patients when the Kish effective sample size of its
# inverse-propensity weights is below this share of its patients, or when one patient carries
# more than MAX_WEIGHT_SHARE of the arm's total weight and more than twice an equal share
# (weight_summary; with equal weights a small arm is small, not carried by one patient).
MIN_ESS_SHARE = 0.5
MAX_WEIGHT_SHARE = 0.1
QINI_POINTS = 20
HISTOGRAM_BINS = 20

Floats = NDArray[np.float64]


def aipw_scores(y: ArrayLike, arm: ArrayLike, outcomes: ArrayLike, propensity: ArrayLike,
                min_propensity: float = MIN_PROPENSITY) -> Floats:
    """Doubly-robust (augmented inverse-propensity-weighted) score of each patient and arm.

    ``score[i, k] = mu_k(x_i) + 1[arm_i = k] (y_i - mu_k(x_i)) / e_k(x_i)``: its mean over
    patients estimates the mean outcome if every patient received arm ``k``, and stays
    unbiased when either the outcome model or the propensity is right.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed outcome.
    arm : array-like of int, shape (n,)
        Arm received, ``0..K-1``.
    outcomes : array-like of shape (n, K)
        Out-of-sample predictions of the outcome under each arm (nuisance model).
    propensity : array-like of shape (n, K) or (n,)
        Probability of each arm, or of the arm received only (a known-propensity column).
    min_propensity : float, default=0.01
        Propensities are clipped to ``[min_propensity, 1 - min_propensity]``.

    Returns
    -------
    ndarray of shape (n, K)

    Examples
    --------
    >>> aipw_scores([1.0, 3.0], [0, 1], [[1.0, 2.0], [1.0, 2.0]], [[0.5, 0.5], [0.5, 0.5]])
    array([[1., 2.],
           [1., 4.]])
    """
    y = np.asarray(y, dtype=float)
    arm = np.asarray(arm, dtype=int)
    outcomes = np.asarray(outcomes, dtype=float)
    e = np.asarray(propensity, dtype=float)
    n = len(y)
    if outcomes.shape[0] != n or len(arm) != n or e.shape[0] != n:
        raise PermedError(f"aipw_scores: y, arm, outcomes and propensity need {n} rows each; got "
                          f"{len(arm)}, {outcomes.shape[0]}, {e.shape[0]}")
    received = e if e.ndim == 1 else e[np.arange(n), arm]
    received = np.clip(received, min_propensity, 1.0 - min_propensity)
    scores = outcomes.copy()
    rows = np.arange(n)
    scores[rows, arm] += (y - outcomes[rows, arm]) / received
    return scores


def weight_summary(arm: ArrayLike, propensity: ArrayLike, arms: list[str],
                   min_propensity: float = MIN_PROPENSITY) -> dict[str, dict[str, Any]]:
    """How evenly each arm's inverse-propensity weights spread over its patients.

    The AIPW correction of arm ``k`` weights each patient who received it by
    ``1 / e_k(x)`` (clipped as in :func:`aipw_scores`). The Kish effective sample size
    ``(sum w)^2 / sum w^2`` is the number of equally weighted patients that would give the
    same variance: far below the arm's count, or one patient with a large share of the
    weight, means a few patients set the arm's value.

    Parameters
    ----------
    arm : array-like of int, shape (n,)
    propensity : array-like of shape (n, K), or (n,) for the arm received
    arms : list of str
    min_propensity : float

    Returns
    -------
    dict
        Per arm name: ``n`` (its patients), ``ess``, ``ess_share`` (``ess / n``),
        ``max_weight``, ``max_weight_share`` (the largest weight over the arm's total) and
        ``few_carry`` (``ess_share`` below :data:`MIN_ESS_SHARE`, or ``max_weight_share``
        above both :data:`MAX_WEIGHT_SHARE` and ``2 / n``).

    Examples
    --------
    >>> summary = weight_summary([0, 0, 1, 1, 1], [0.5, 0.5, 0.5, 0.5, 0.02], ["a", "b"])
    >>> round(summary["b"]["ess"], 2), round(summary["b"]["max_weight_share"], 2)
    (1.16, 0.93)
    """
    arm = np.asarray(arm, dtype=int)
    e = np.asarray(propensity, dtype=float)
    received = e if e.ndim == 1 else e[np.arange(len(arm)), arm]
    weights = 1.0 / np.clip(received, min_propensity, 1.0 - min_propensity)
    out: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(arms):
        w = weights[arm == k]
        if not len(w):
            continue
        ess = float(w.sum() ** 2 / np.sum(w ** 2))
        share = float(w.max() / w.sum())
        carried = ess / len(w) < MIN_ESS_SHARE or share > max(MAX_WEIGHT_SHARE, 2 / len(w))
        out[name] = {"n": len(w), "ess": ess, "ess_share": ess / len(w),
                     "max_weight": float(w.max()), "max_weight_share": share,
                     "few_carry": bool(carried)}
    return out


def dr_loss(effects: ArrayLike, scores: ArrayLike) -> float:
    """Mean squared error of effects against doubly-robust pseudo-effects.

    The pseudo-effect of arm ``k`` for a patient is ``scores[:, k] - scores[:, 0]``; its
    conditional mean is the true effect, so the loss ranks effect models like the unknown
    PEHE does (up to a constant that is the same for every model) and needs no
    counterfactual: it is permed's model-selection criterion on held-out folds.

    Parameters
    ----------
    effects : array-like of shape (n, K-1)
        A model's effects of arms ``1..K-1`` against arm 0.
    scores : array-like of shape (n, K)
        :func:`aipw_scores` on the same patients, from models not fitted on them.

    Returns
    -------
    float
        Mean over patients and non-reference arms.
    """
    scores = np.asarray(scores, dtype=float)
    effects = np.asarray(effects, dtype=float).reshape(len(scores), -1)
    pseudo = scores[:, 1:] - scores[:, :1]
    return float(np.mean((pseudo - effects) ** 2))


def policy_value(scores: ArrayLike, policy: ArrayLike) -> float:
    """Doubly-robust mean outcome if each patient received the arm ``policy`` gives them."""
    scores = np.asarray(scores, dtype=float)
    policy = np.asarray(policy, dtype=int)
    return float(np.mean(scores[np.arange(len(scores)), policy]))


def qini_curve(benefit: ArrayLike, pseudo_effect: ArrayLike,
               points: int = QINI_POINTS) -> dict[str, list[float]]:
    """Uplift (Qini) curve: cumulative gain when treating the patients ranked by benefit first.

    Parameters
    ----------
    benefit : array-like of shape (n,)
        Predicted benefit of treatment (effect times ``sign``), the ranking.
    pseudo_effect : array-like of shape (n,)
        Doubly-robust pseudo-effect of treatment (times ``sign``), the observed gain.
    points : int
        Number of fractions of patients, ``1/points .. 1``.

    Returns
    -------
    dict
        ``fraction``, ``model`` (mean gain per patient when the top fraction is treated) and
        ``random`` (the same for a random ranking), starting at 0.
    """
    order = np.argsort(-np.asarray(benefit, dtype=float), kind="stable")
    gains = np.asarray(pseudo_effect, dtype=float)[order]
    n = len(gains)
    fractions = np.linspace(0.0, 1.0, points + 1)
    counts = np.ceil(fractions * n).astype(int)
    cumulative = np.concatenate([[0.0], np.cumsum(gains)])
    model = cumulative[counts] / n
    random = fractions * cumulative[-1] / n
    return {"fraction": fractions.round(4).tolist(), "model": model.tolist(),
            "random": random.tolist()}


def _qini(benefit: Floats, pseudo_effect: Floats) -> float:
    curve = qini_curve(benefit, pseudo_effect)
    gap = np.asarray(curve["model"]) - np.asarray(curve["random"])
    return float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(curve["fraction"])))


def arm_ranking(scores: ArrayLike, higher_is_better: bool = True) -> list[int]:
    """Arms ordered best first by their doubly-robust mean outcome (ties: lower code first).

    On development patients' out-of-fold :func:`aipw_scores` this is the choice a treat run
    makes *before* it looks at the test split: the first arm is the best single arm (the
    default when the recommendation is not clear) and the comparator of the policy gain.

    Parameters
    ----------
    scores : array-like of shape (n, K)
    higher_is_better : bool

    Returns
    -------
    list of int

    Examples
    --------
    >>> arm_ranking([[1.0, 3.0, 2.0], [1.0, 5.0, 2.0]])
    [1, 2, 0]
    >>> arm_ranking([[1.0, 3.0, 2.0]], higher_is_better=False)
    [0, 2, 1]
    """
    sign = 1.0 if higher_is_better else -1.0
    values = np.asarray(scores, dtype=float).mean(axis=0)
    return [int(k) for k in np.argsort(-sign * values, kind="stable")]


def followed_policy(candidates: ArrayLike, ranking: list[int]) -> NDArray[np.int_]:
    """The arm each patient gets when the clinician follows permed.

    A patient's ``candidates`` are the arms not clearly worse than their best one: a single
    arm where the recommendation is clear, several where there is "no clear difference". The
    patient gets the first of their candidates in ``ranking`` (the development choice), so
    the best single arm is the default wherever it is a candidate.

    Parameters
    ----------
    candidates : array-like of bool, shape (n, K)
        Each patient's candidate arms; every row has at least one.
    ranking : list of int
        Arms best first (:func:`arm_ranking` on development patients).

    Returns
    -------
    ndarray of int, shape (n,)

    Examples
    --------
    >>> followed_policy([[True, False, False], [True, True, True], [False, True, True]],
    ...                 [2, 0, 1]).tolist()
    [0, 2, 2]
    """
    candidates = np.asarray(candidates, dtype=bool)
    ordered = candidates[:, ranking]
    return np.asarray(ranking)[np.argmax(ordered, axis=1)]


def candidate_matrix(candidates: Sequence[str], arms: list[str],
                     separator: str = ";") -> NDArray[np.bool_]:
    """Per patient, which arms are candidates, from the ``candidates`` column of predictions.

    Parameters
    ----------
    candidates : sequence of str
        Arm names joined by ``separator`` (best first), as ``predict_frame`` writes them.
    arms : list of str
        Arm names for codes ``0..K-1``.
    separator : str

    Returns
    -------
    ndarray of bool, shape (n, K)

    Examples
    --------
    >>> candidate_matrix(["b", "a;c"], ["a", "b", "c"]).astype(int).tolist()
    [[0, 1, 0], [1, 0, 1]]
    """
    code = {name: k for k, name in enumerate(arms)}
    out = np.zeros((len(candidates), len(arms)), dtype=bool)
    for i, text in enumerate(candidates):
        out[i, [code[name] for name in str(text).split(separator)]] = True
    return out


def _statistics(arm: Floats, scores: Floats, policy: Floats, estimate: Floats, effects: Floats,
                truth: Floats, sign: float, comparator: int, binary: bool, has_truth: bool,
                ate_arm: int) -> dict[str, float]:
    """Every test figure on one (re)sample; see :func:`treatment_report`."""
    values = scores.mean(axis=0)
    rows = np.arange(len(scores))
    chosen, best = scores[rows, policy.astype(int)], scores[rows, estimate.astype(int)]
    # gains as means of per-patient differences: exactly 0 where the policy is the comparator
    # (+ 0.0 turns the -0.0 of a lower-is-better outcome into 0.0)
    out = {"policy_value": float(np.mean(chosen)),
           "policy_gain": sign * float(np.mean(chosen - scores[:, comparator])) + 0.0,
           "ate": float(values[ate_arm] - values[0]),
           "estimate:value": float(np.mean(best)),
           "estimate:gain": sign * float(np.mean(best - scores[:, comparator])) + 0.0}
    if binary:
        out["qini"] = _qini(sign * effects[:, 0], sign * (scores[:, 1] - scores[:, 0]))
    if has_truth:
        out["pehe"] = float(np.sqrt(np.mean((effects - truth) ** 2)))
        out["ate_error"] = float(np.mean(np.abs(effects.mean(axis=0) - truth.mean(axis=0))))
    for k, value in enumerate(values):
        out[f"value:{k}"] = float(value)
        if k:
            out[f"ate:{k}"] = float(value - values[0])
        for j in range(k):
            out[f"contrast:{k}:{j}"] = float(value - values[j])
    return out


IN_SAMPLE = "the evaluated patients (in-sample: no development ranking was given)"
POLICY_RULE = ("each patient gets the recommended arm where the recommendation is clear; where "
               "there is no clear difference, the best single arm if it is among the patient's "
               "candidates, else the candidate ranked best on development; outside the data "
               "(low overlap: no recommendation), the best single arm")
ESTIMATE_RULE = ("each patient gets the arm with the best point estimate, however uncertain "
                 "(not what permed tells the clinician when there is no clear difference)")


def treatment_report(arm: ArrayLike, scores: ArrayLike, outcomes: ArrayLike, arms: list[str], *,
                     higher_is_better: bool = True, true_effects: ArrayLike | None = None,
                     n_boot: int = 1000, seed: int = 0, ranking: list[int] | None = None,
                     candidates: ArrayLike | None = None) -> dict[str, Any]:
    """Held-out figures of a treatment recommendation, with percentile bootstrap CIs.

    Parameters
    ----------
    arm : array-like of int, shape (n,)
        Arm received (``0..K-1``); bootstrap resamples are stratified by it.
    scores : array-like of shape (n, K)
        :func:`aipw_scores` from nuisance models not fitted on these patients.
    outcomes : array-like of shape (n, K)
        The evaluated model's expected outcome under each arm.
    arms : list of str
        Arm names, reference first.
    higher_is_better : bool
    true_effects : array-like of shape (n, K-1), optional
        True effects of arms ``1..K-1`` against arm 0 (simulated data): adds ``pehe`` (root
        mean squared error of the effects, as in Shalit et al.'s tables) and ``ate_error``.
    n_boot, seed
        Bootstrap replicates and seed.
    ranking : list of int, optional
        Arms best first as chosen on the development patients (:func:`arm_ranking` of their
        out-of-fold scores): its first arm is the best single arm, the comparator of
        ``policy_gain`` and the default; the first non-reference arm is the ``ate``
        comparison (more than two arms). Without it they are chosen on these patients
        (in-sample, optimistic for the single arm), and the report says so.
    candidates : array-like of bool, shape (n, K), optional
        Per patient, the arms not clearly worse than their best (one arm where the
        recommendation is clear). The evaluated policy is :func:`followed_policy`. Without
        it every patient gets the arm with the best point estimate.

    Returns
    -------
    dict
        ``test`` (``policy_value``, ``policy_gain``, ``ate``, ``qini`` for two arms, ``pehe``
        and ``ate_error`` with the truth, and ``arm_contrasts``: ``{"<arm b> vs <arm a>":
        {"value", "ci_low", "ci_high"}}`` for every pair of arms, ``b`` after ``a`` in
        ``arms``, the difference of their doubly-robust values), ``value_by_arm``,
        ``ate_by_arm`` (each ``{"value", "ci_low", "ci_high"}``), ``best_single_arm``,
        ``best_single_arm_chosen_on``, ``ate_comparison``, ``policy_rule``,
        ``policy_arm_share``, ``best_arm_share``,
        ``best_estimate_policy`` (``rule``, ``value``, ``gain``: every patient gets their
        best point estimate) and ``qini_curve`` (two arms).

    Notes
    -----
    ``policy_gain`` is the gain over treating everyone with the best single arm; that arm is
    fixed before resampling, so the gain is a paired difference in outcome units, positive
    when following permed does better. Where the recommendation is unclear the followed
    policy usually gives the best single arm itself, so the gain comes from the patients with
    a clear recommendation.
    """
    arm = np.asarray(arm, dtype=int)
    scores = np.asarray(scores, dtype=float)
    outcomes = np.asarray(outcomes, dtype=float)
    sign = 1.0 if higher_is_better else -1.0
    estimate = np.argmax(sign * outcomes, axis=1)
    chosen_on = "development" if ranking is not None else IN_SAMPLE
    ranking = list(ranking) if ranking is not None else arm_ranking(scores, higher_is_better)
    if candidates is None:
        candidates = np.eye(len(arms), dtype=bool)[estimate]
    policy = followed_policy(candidates, ranking)
    effects = outcomes[:, 1:] - outcomes[:, :1]
    has_truth = true_effects is not None
    truth = (np.asarray(true_effects, dtype=float).reshape(len(arm), -1) if has_truth
             else np.zeros_like(effects))
    comparator = ranking[0]
    # two arms: arm 1 vs arm 0; more: the best non-reference arm vs the reference
    ate_arm = next(k for k in ranking if k != 0)
    binary = len(arms) == 2

    def statistic(a: Floats, s: Floats, p: Floats, b: Floats, e: Floats,
                  t: Floats) -> dict[str, float]:
        return _statistics(a, s, p, b, e, t, sign, comparator, binary, has_truth, ate_arm)

    result = bootstrap_dict(statistic, arm, scores, policy.astype(float),
                            estimate.astype(float), effects, truth, n_boot=n_boot, seed=seed)
    test: dict[str, Any] = {k: v for k, v in result.items() if ":" not in k}
    # every pair of arms, later vs earlier (as the ATE: "1 vs 0"), from the same replicates
    test["arm_contrasts"] = {f"{arms[k]} vs {arms[j]}": result[f"contrast:{k}:{j}"]
                             for k in range(len(arms)) for j in range(k)}

    def shares(choice: NDArray[np.int_]) -> dict[str, float]:
        counts = np.bincount(choice, minlength=len(arms)) / len(choice)
        return {arms[k]: float(c) for k, c in enumerate(counts)}

    report: dict[str, Any] = {
        "test": test,
        "value_by_arm": {arms[k]: result[f"value:{k}"] for k in range(len(arms))},
        "ate_by_arm": {arms[k]: result[f"ate:{k}"] for k in range(1, len(arms))},
        "best_single_arm": arms[comparator],
        "best_single_arm_chosen_on": chosen_on,
        "ate_comparison": f"{arms[ate_arm]} vs {arms[0]}",
        "policy_rule": POLICY_RULE,
        "policy_arm_share": shares(policy),
        "best_arm_share": shares(estimate),
        "best_estimate_policy": {"rule": ESTIMATE_RULE, "value": result["estimate:value"],
                                 "gain": result["estimate:gain"]},
    }
    if binary:
        report["qini_curve"] = qini_curve(sign * effects[:, 0],
                                          sign * (scores[:, 1] - scores[:, 0]))
    return report


def standardized_mean_differences(features: ArrayLike, arm: ArrayLike,
                                  weights: ArrayLike | None = None) -> Floats:
    """Largest absolute standardized mean difference of each feature between any two arms.

    ``|mean_a - mean_b| / sqrt((var_a + var_b) / 2)``, means weighted by ``weights`` within
    each arm (e.g. inverse propensities, for the balance after weighting), variances
    unweighted so that before and after share one scale. Below 0.1 is conventionally balanced.

    Parameters
    ----------
    features : array-like of shape (n, p)
        Numeric features (one-hot categories).
    arm : array-like of int, shape (n,)
    weights : array-like of shape (n,), optional

    Returns
    -------
    ndarray of shape (p,)
    """
    X = np.asarray(features, dtype=float)
    arm = np.asarray(arm, dtype=int)
    w = np.ones(len(X)) if weights is None else np.asarray(weights, dtype=float)
    levels = np.unique(arm)
    means = np.array([np.average(X[arm == k], axis=0, weights=w[arm == k]) for k in levels])
    variances = np.array([X[arm == k].var(axis=0) for k in levels])
    worst = np.zeros(X.shape[1])
    for a in range(len(levels)):
        for b in range(a + 1, len(levels)):
            scale = np.sqrt((variances[a] + variances[b]) / 2.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                smd = np.where(scale > 0, np.abs(means[a] - means[b]) / scale, 0.0)
            worst = np.maximum(worst, smd)
    return worst


def overlap_summary(propensity: ArrayLike, arm: ArrayLike, arms: list[str],
                    threshold: float) -> dict[str, Any]:
    """Overlap diagnostics: propensity ranges, shares below ``threshold`` and histograms.

    Parameters
    ----------
    propensity : array-like of shape (n, K), or (n,) for the received arm only
    arm : array-like of int, shape (n,)
    arms : list of str
    threshold : float

    Returns
    -------
    dict
        ``threshold``; ``by_arm``: for each arm its ``share`` of patients, ``min``, ``mean``,
        ``max`` propensity, ``below`` (share of all patients whose propensity for that arm is
        under the threshold) and ``histogram`` (``edges``; ``received`` / ``other``: counts of
        that arm's propensity among patients who received it / did not).
    """
    e = np.asarray(propensity, dtype=float)
    arm = np.asarray(arm, dtype=int)
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    by_arm: dict[str, Any] = {}
    for k, name in enumerate(arms):
        values = e[:, k] if e.ndim == 2 else e[arm == k]
        received = values[arm == k] if e.ndim == 2 else values
        other = values[arm != k] if e.ndim == 2 else np.array([])
        by_arm[name] = {
            "share": float(np.mean(arm == k)),
            "min": float(values.min()) if len(values) else math.nan,
            "mean": float(values.mean()) if len(values) else math.nan,
            "max": float(values.max()) if len(values) else math.nan,
            "below": float(np.mean(values < threshold)) if len(values) else 0.0,
            "histogram": {"edges": edges.round(3).tolist(),
                          "received": np.histogram(received, edges)[0].tolist(),
                          "other": np.histogram(other, edges)[0].tolist()},
        }
    return {"threshold": threshold, "by_arm": by_arm,
            "scope": "every arm" if e.ndim == 2 else "the arm received (known propensity)"}


