"""Estimate per-patient treatment effects, recommend an arm and value the recommendation.

Protocol (every step fitted on development data only; the test split is touched once):

1. A held-out test split, stratified by arm, is set aside.
2. Propensity: the probability of each arm given the features. Known arm shares with
   ``--randomized``, a known column with ``--propensity COL``, else the better of a logistic
   regression and LightGBM by cross-fitted log-loss. Overlap diagnostics (propensity ranges,
   histograms, shares below a threshold) and, with ``--trim``, trimming of patients whose
   propensity for an arm is too small.
3. Outcome nuisance: per arm, the outcome model family (ridge, splines, LightGBM) with the
   lowest cross-fitted squared error on the observed outcomes. With the propensities it gives
   each development patient doubly-robust (AIPW) scores from models not fitted on them.
4. Candidate estimators (T-, X-, DR-learner, causal forest) are compared on the same folds by
   the doubly-robust pseudo-outcome loss of their effects: it needs no counterfactual outcome.
   The lowest mean loss wins and is refitted on the whole development split, with intervals.
5. On the test split: the doubly-robust value of the policy permed tells the clinician (the
   recommended arm where the recommendation is clear, else the default: the best single arm
   chosen on development) against treating everyone with that default arm, the average
   effects, the Qini area (two arms), and PEHE / ATE error when true effects are known.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

from permed.engine import Engine, Progress, as_items
from permed.evaluate import cv_summary
from permed.evaluate.treatment import (
    MAX_WEIGHT_SHARE,
    MIN_ESS_SHARE,
    aipw_scores,
    arm_ranking,
    candidate_matrix,
    dr_loss,
    overlap_summary,
    policy_value,
    standardized_mean_differences,
    treatment_report,
    weight_summary,
)
from permed.exceptions import PermedError
from permed.explain import Explanation
from permed.explain._effects import effect_drivers, readable_design
from permed.explain._outcomes import explain_effect, explain_outcome_frame
from permed.fairness import bin_edges, bins_entry, group_labels
from permed.models.treat import (
    OUTCOME_MODELS,
    PROPENSITY_MODELS,
    TREAT_MODELS,
    default_models,
    make_model,
    make_outcome_model,
    make_propensity_model,
)
from permed.preprocess import make_preprocessor
from permed.study import FittedSchema, Study, ValidationReport, as_category, to_numeric
from permed.study._validate_treat import MIN_ARM_SIZE, randomization_imbalance
from permed.workflow._config import TrainConfig
from permed.workflow._cv import CLIP_QUANTILES
from permed.workflow._explain_outcomes import explain_treat_step
from permed.workflow._referral import referral, shared_reasons
from permed.workflow._result import RunResult, Timings

__all__ = ["NO_CLEAR_DIFFERENCE", "OUTSIDE_THE_DATA", "SUPPORT_FALSE_EDGES", "TreatModel",
           "arm_support", "score_arms", "train_treat"]

NO_CLEAR_DIFFERENCE = "no clear difference"
# The recommendation of a low-overlap patient: some arm was (almost) never given to patients
# like this one, so its expected outcome, and any comparison with it, is extrapolated.
OUTSIDE_THE_DATA = "outside the data"
# chance that a randomized run shows any arm's edge as a gap in its data (arm_support)
SUPPORT_FALSE_EDGES = 0.05
# Propensities below this, for any arm, are reported (and flagged at prediction time) as poor
# overlap: the effects of such patients are extrapolated from other patients.
OVERLAP_THRESHOLD = 0.05
LOW_OVERLAP_REASON = ("low overlap: few development patients like this one received every arm, "
                      "so the expected outcomes are extrapolated")
MIN_GROUP_SIZE = 30
# Balance: a standardized mean difference above BALANCE_THRESHOLD is conventionally imbalanced.
# Weighting warns when it leaves more than MAX_IMBALANCED_AFTER features imbalanced, or raises a
# feature's difference by MARKEDLY_WORSE or more to above the threshold (IHDP replication 1:
# x5 0.17 -> 0.45, x18 0.18 -> 0.39; 15 of 25 features above 0.1 after weighting).
BALANCE_THRESHOLD = 0.1
MAX_IMBALANCED_AFTER = 3
MARKEDLY_WORSE = 0.1
# A --trim above this leaves out too many patients to be worth suggesting.
MAX_SUGGESTED_TRIM = 0.2
SELECTION_RULE = ("lowest mean doubly-robust pseudo-outcome loss on held-out folds: the mean "
                  "squared difference between a model's effects and each patient's AIPW "
                  "pseudo-effect from cross-fitted outcome and propensity models (needs no "
                  "counterfactual outcome)")


# ---- the fitted model ------------------------------------------------------------------------


@dataclass
class TreatModel:
    """A trained treat model, ready to recommend an arm for new patients.

    Attributes
    ----------
    name : str
        The selected estimator (``t_learner``, ``x_learner``, ``dr_learner``, ``causal_forest``).
    schema : FittedSchema
    preprocess : sklearn ColumnTransformer, fitted
    estimator : permed treat estimator, fitted on arm codes ``0..K-1``
    arms : list of str
        Arm names, the reference arm first.
    treatment, outcome : str
        Column names.
    higher_is_better : bool
    binary_outcome : bool
        Expected outcomes are probabilities (clipped to [0, 1]).
    propensity : fitted classifier or None
        Estimated propensity model (on preprocessed features), for the ``low_overlap`` flag.
    overlap_threshold : float
    support : dict or None
        ``{arm: {feature: (min, max)}}``: the range of each numeric feature among the
        development patients of each arm (:func:`arm_support`); a patient outside it is
        ``low_overlap`` too.
    """

    name: str
    schema: FittedSchema
    preprocess: Any
    estimator: Any
    arms: list[str]
    treatment: str
    outcome: str
    higher_is_better: bool
    binary_outcome: bool
    propensity: Any = None
    overlap_threshold: float = OVERLAP_THRESHOLD
    background: pd.DataFrame | None = None  # development patients SHAP contributions start from
    support: dict[str, dict[str, tuple[float, float]]] | None = None

    def explain(self, frame: pd.DataFrame, **options: Any) -> Explanation:
        """SHAP values of each arm's expected benefit over the reference arm (the service
        calls this; options other than ``permutations`` and ``seed`` are ignored)."""
        keep = {k: v for k, v in options.items() if k in ("permutations", "seed")}
        with threadpool_limits(**_ONE_THREAD):
            return explain_effect(self, frame, **keep)

    def explain_frame(self, frame: pd.DataFrame, top: int = 3) -> pd.DataFrame:
        """Each row's top factors of its best arm's expected benefit over the reference arm,
        in words (``permed predict --explain``); see :func:`permed.explain.explain_effect`."""
        return explain_outcome_frame(self.explain(frame), self, top)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Preprocessed features of a table that passed ``schema.check``."""
        return self.preprocess.transform(self.schema.coerce(frame))

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Expected outcome under each arm (95% CI), the recommendation and flags, per row.

        Columns: the id (when the schema has one); ``outcome_<arm>``, ``outcome_<arm>_low``,
        ``outcome_<arm>_high`` for every arm; ``best_arm`` (best point estimate);
        ``recommended`` (the best arm; "no clear difference" when another arm's
        disadvantage has a 95% CI that includes 0; "outside the data" when ``low_overlap``);
        ``candidates`` (the arms not clearly worse than the best, separated by ``;``);
        ``advantage`` (best arm over its closest competitor, the other arm whose interval
        comes nearest 0, in outcome units, positive = better) with ``advantage_low`` /
        ``advantage_high``: ``recommended`` names an arm exactly when ``advantage_low`` is
        above 0 and the patient is not ``low_overlap``; ``low_overlap`` (an arm's estimated
        propensity is below the threshold, or a numeric feature lies outside its range among
        an arm's development patients: that arm's expected outcome is extrapolated);
        ``out_of_range`` and ``out_of_range_features``.

        Raises
        ------
        SchemaMismatchError
            When columns are missing or numeric columns hold text.
        """
        self.schema.check(frame)
        out = pd.DataFrame(index=frame.index)
        if self.schema.id and self.schema.id in frame.columns:
            out[self.schema.id] = frame[self.schema.id].to_numpy()
        coerced = self.schema.coerce(frame)
        with threadpool_limits(**_ONE_THREAD):
            X = self.preprocess.transform(coerced)
            scored = score_arms(self.estimator, X, self.arms, self.higher_is_better,
                                self.binary_outcome)
        low = self._low_overlap(X)
        unsupported = self._unsupported(coerced)
        flagged_low = low | (unsupported != "")
        scored["recommended"] = np.where(flagged_low, OUTSIDE_THE_DATA, scored["recommended"])
        for column, values in scored.items():
            out[column] = values.to_numpy()
        out["low_overlap"] = flagged_low
        flagged = self.schema.out_of_range(frame)
        out["out_of_range"] = flagged != ""
        out["out_of_range_features"] = flagged
        overlap = np.where(low, LOW_OVERLAP_REASON, "").astype(object)
        reasons = [*shared_reasons(self.schema, frame, flagged), overlap, unsupported]
        for column, values in referral(reasons).items():
            out[column] = values
        return out.reset_index(drop=True)

    def _low_overlap(self, X: np.ndarray) -> np.ndarray:
        if self.propensity is None:
            return np.zeros(len(X), dtype=bool)
        return self.propensity.predict_proba(X).min(axis=1) < self.overlap_threshold

    def _unsupported(self, coerced: pd.DataFrame) -> np.ndarray:
        """Per row, the arms whose development patients never had such a value, in words."""
        reasons = np.full(len(coerced), "", dtype=object)
        for arm, ranges in (self.support or {}).items():
            names = list(ranges)
            values = coerced[names].to_numpy(dtype=float)
            bounds = np.array([ranges[n] for n in names], dtype=float).reshape(-1, 2)
            outside = (values < bounds[:, 0]) | (values > bounds[:, 1])
            for i in np.flatnonzero(outside.any(axis=1)):
                found = ", ".join(f"{names[j]} {values[i, j]:g} (its patients: "
                                  f"{_edges_text(*bounds[j])})"
                                  for j in np.flatnonzero(outside[i]))
                text = f"outside the data of arm '{arm}': {found}"
                reasons[i] = f"{reasons[i]}; {text}" if reasons[i] else text
        return reasons


def _edges_text(low: float, high: float) -> str:
    """``0 to 400``, ``up to 400`` or ``from 40``: the edges an arm's data end at."""
    if np.isfinite(low) and np.isfinite(high):
        return f"{low:g} to {high:g}"
    return f"up to {high:g}" if np.isfinite(high) else f"from {low:g}"


def arm_support(features: pd.DataFrame, arm: np.ndarray, arms: list[str],
                numeric: list[str], false_edges: float = SUPPORT_FALSE_EDGES
                ) -> dict[str, dict[str, tuple[float, float]]]:
    """The range of each numeric feature among the patients of each arm, where its edge is
    a gap in the arm's data rather than chance at the end of everyone's.

    A patient beyond an arm's range is one that arm was never given to: its expected outcome
    there is an extrapolation, however smooth the propensity model that missed it. An edge is
    kept only when the development patients beyond it would have held ``m`` or more of the
    arm's patients had the arm been given as often there as overall, ``m = ln(E /
    false_edges)`` for the ``E`` edges (two per arm and feature): seeing none of ``m`` expected
    happens by chance with probability ``exp(-m) = false_edges / E``, so a randomized run shows
    a gap anywhere with probability about ``false_edges``. No ZDV+ddI patient above cd40 400
    among 180 others is a gap; a randomized arm whose oldest patient is 67 while the trial's is
    70 (2 patients older) is chance, and the edge is open.

    Parameters
    ----------
    features : pandas.DataFrame
        Development features, typed (``FittedSchema.coerce``).
    arm : ndarray of int
        Each patient's arm code ``0..K-1``.
    arms : list of str
    numeric : list of str
        The numeric features.
    false_edges : float, default=0.05
        Chance that a randomized run keeps any edge.

    Returns
    -------
    dict
        ``{arm: {feature: (min, max)}}``, ``-inf``/``inf`` for an open edge; a feature with
        both edges open, or missing for every patient of an arm, is left out of that arm's.

    Examples
    --------
    >>> frame = pd.DataFrame({"cd40": [200.0, 380.0, 250.0] * 4 + [700.0] * 20})
    >>> arm_support(frame, np.array([1, 1, 0] * 4 + [0] * 20), ["ZDV", "ZDV+ddI"], ["cd40"])
    {'ZDV+ddI': {'cd40': (-inf, 380.0)}}
    """
    min_expected = math.log(max(1, 2 * len(arms) * len(numeric)) / false_edges)
    out: dict[str, dict[str, tuple[float, float]]] = {}
    values = features[numeric].to_numpy(dtype=float)
    for k, name in enumerate(arms):
        ranges = {}
        for j, column in enumerate(numeric):
            known = ~np.isnan(values[:, j])
            mine = values[known & (arm == k), j]
            if not len(mine):
                continue
            share = len(mine) / known.sum()
            below = share * np.count_nonzero(values[known, j] < mine.min())
            above = share * np.count_nonzero(values[known, j] > mine.max())
            edges = (float(mine.min()) if below >= min_expected else -np.inf,
                     float(mine.max()) if above >= min_expected else np.inf)
            if np.isfinite(edges).any():
                ranges[column] = edges
        if ranges:
            out[name] = ranges
    return out


def score_arms(estimator: Any, X: np.ndarray, arms: list[str], higher_is_better: bool,
               binary_outcome: bool = False, alpha: float = 0.05) -> pd.DataFrame:
    """Expected outcome under each arm with its interval, and the recommendation.

    The recommended arm is the one with the best expected outcome. Another arm is a
    candidate too when the ``1 - alpha`` interval of its disadvantage against that best arm
    includes 0; with more than one candidate the recommendation is "no clear difference" and
    ``candidates`` names them (best first). ``advantage`` is the best arm's over its closest
    competitor (the other arm whose interval comes nearest 0), so an arm is recommended exactly
    when the advantage's interval excludes 0.

    Parameters
    ----------
    estimator : fitted permed treat estimator (arm codes ``0..K-1``)
    X : ndarray
        Preprocessed features.
    arms : list of str
        Arm names for codes ``0..K-1``.
    higher_is_better : bool
    binary_outcome : bool
        Clip expected outcomes (probabilities) and their bounds to [0, 1].
    alpha : float

    Returns
    -------
    pandas.DataFrame
        ``outcome_<arm>`` (+ ``_low``, ``_high``), ``best_arm``, ``recommended``,
        ``candidates``, ``advantage``, ``advantage_low``, ``advantage_high``.
    """
    sign = 1.0 if higher_is_better else -1.0
    n, k = len(X), len(arms)
    eye = np.eye(k)
    # every arm, and every arm minus every other, in one call: a causal forest then walks its
    # trees once (the latency of one patient's recommendation is mostly that walk)
    pairs = (eye[:, None, :] - eye[None, :, :]).reshape(k * k, k)  # [a * k + b] = a - b
    weights = np.concatenate([eye, pairs])[:, None, :].repeat(n, axis=1)
    point, stderr = estimator.contrast_inference(X, weights)
    order = np.argsort(-sign * point[:k].T, axis=1, kind="stable")
    best = order[:, 0]
    rows = np.arange(n)
    picked = k + best[None, :] * k + np.arange(k)[:, None]  # [j, i]: best arm of i minus arm j
    z = norm.ppf(1 - alpha / 2)
    out: dict[str, Any] = {}
    for j, arm in enumerate(arms):
        values = [point[j], point[j] - z * stderr[j], point[j] + z * stderr[j]]
        if binary_outcome:
            values = [np.clip(v, 0.0, 1.0) for v in values]
        out.update({f"outcome_{arm}": values[0], f"outcome_{arm}_low": values[1],
                    f"outcome_{arm}_high": values[2]})
    gap, gap_se = sign * point[picked, rows], stderr[picked, rows]
    candidate = (gap - z * gap_se <= 0) | (np.arange(k)[:, None] == best[None, :])
    names = np.asarray(arms, dtype=object)
    # the advantage is over the closest competitor: the other arm whose interval comes nearest
    # to 0 (not the runner-up by point estimate, whose interval may be the narrower one), so
    # that an arm is recommended exactly when the advantage's interval excludes 0
    lower = np.where(np.arange(k)[:, None] == best[None, :], np.inf, gap - z * gap_se)
    closest = lower.argmin(axis=0)
    clear = candidate.sum(axis=0) == 1
    out.update({
        "best_arm": names[best],
        "recommended": np.where(clear, names[best], NO_CLEAR_DIFFERENCE),
        "candidates": [";".join(names[order[i]][candidate[order[i], i]]) for i in range(n)],
        "advantage": gap[closest, rows],
        "advantage_low": gap[closest, rows] - z * gap_se[closest, rows],
        "advantage_high": gap[closest, rows] + z * gap_se[closest, rows],
    })
    return pd.DataFrame(out)


# ---- data preparation ------------------------------------------------------------------------


@dataclass
class _Prepared:
    """The rows a treat run uses, with the outcome, arms and optional truth as arrays."""

    frame: pd.DataFrame
    y: np.ndarray
    arm: np.ndarray
    arms: list[str]
    binary: bool
    event: str | None    # a binary outcome's level coded 1, whose probability is modelled
    other: str | None    # and its level coded 0
    known: np.ndarray | None
    truth: np.ndarray | None
    truth_columns: list[str]


def _arm_order(labels: list[str]) -> list[str]:
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def _outcome_values(series: pd.Series) -> tuple[pd.Series, list[str]]:
    """The outcome as numbers and, for a binary one, its levels coded 0 and 1."""
    levels = series.dropna().astype(str).unique()
    if len(levels) == 2:
        labels = as_category(series)
        order = _arm_order(sorted(labels.dropna().unique()))
        return labels.map({order[0]: 0.0, order[1]: 1.0}).astype(float), order
    return to_numeric(series), []


def _truth(frame: pd.DataFrame, study: Study, arms: list[str]) -> tuple[np.ndarray | None,
                                                                        list[str]]:
    if study.true_effect:
        if len(arms) != 2:
            raise PermedError(
                f"--true-effect '{study.true_effect}' gives one effect per patient, which needs "
                f"two arms; the treatment has {len(arms)}: give the true mean outcome under "
                f"each arm as columns {', '.join('mu' + a for a in arms)} instead")
        return to_numeric(frame[study.true_effect]).to_numpy()[:, None], []
    columns = [f"mu{a}" for a in arms]
    if all(c in frame.columns for c in columns):
        mu = np.column_stack([to_numeric(frame[c]).to_numpy() for c in columns])
        return mu[:, 1:] - mu[:, :1], columns
    return None, []


def _prepare(frame: pd.DataFrame, study: Study, config: TrainConfig) -> _Prepared:
    if config.randomized and study.propensity:
        raise PermedError(f"--randomized and --propensity '{study.propensity}' both say how "
                          "arms were assigned: give one of them")
    arms_series = as_category(frame[study.treatment])
    y, levels = _outcome_values(frame[study.outcome])
    keep = arms_series.notna() & y.notna()
    frame, arms_series, y = frame[keep], arms_series[keep], y[keep]
    arms = _arm_order(sorted(arms_series.unique()))
    arm = arms_series.map({a: i for i, a in enumerate(arms)}).to_numpy(dtype=int)
    known = to_numeric(frame[study.propensity]).to_numpy() if study.propensity else None
    truth, truth_columns = _truth(frame, study, arms)
    other, event = levels if levels else (None, None)
    return _Prepared(frame, y.to_numpy(dtype=float), arm, arms, bool(levels), event, other,
                     known, truth, truth_columns)


# ---- fold work (module-level functions: they run in worker processes) -------------------------


@dataclass
class _TreatData:
    """Development data and folds shared by every fold job."""

    features: pd.DataFrame
    y: np.ndarray
    arm: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    schema: FittedSchema
    clip: bool
    seed: int
    n_arms: int


def _design(data: _TreatData, train: np.ndarray, other: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    preprocess = make_preprocessor(data.schema.numeric, data.schema.categorical,
                                   CLIP_QUANTILES if data.clip else None)
    fitted = preprocess.fit(data.features.iloc[train])
    return fitted.transform(data.features.iloc[train]), fitted.transform(data.features.iloc[other])


def full_proba(model: Any, X: np.ndarray, n_arms: int) -> np.ndarray:
    """``predict_proba`` with one column per arm code ``0..n_arms-1``."""
    proba = np.zeros((len(X), n_arms))
    proba[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(X)
    return proba


def per_arm_outcomes(family: str, seed: int, X: np.ndarray, y: np.ndarray, arm: np.ndarray,
                     X_new: np.ndarray, n_arms: int) -> np.ndarray:
    """Expected outcome under each arm for ``X_new``: one ``family`` model per arm."""
    out = np.empty((len(X_new), n_arms))
    for k in range(n_arms):
        model = make_outcome_model(family, seed).fit(X[arm == k], y[arm == k])
        out[:, k] = model.predict(X_new)
    return out


# Small linear algebra on one core: with several BLAS threads per job the spline and ridge
# models ran up to 10 times slower on a 2-core machine (threads contend with the workers).
_ONE_THREAD = {"limits": 1}


def _propensity_job(task: tuple[_TreatData, str, int]) -> np.ndarray:
    data, kind, k = task
    train, val = data.folds[k]
    with threadpool_limits(**_ONE_THREAD):
        X_train, X_val = _design(data, train, val)
        model = make_propensity_model(kind, data.seed).fit(X_train, data.arm[train])
        return full_proba(model, X_val, data.n_arms)


def _outcome_job(task: tuple[_TreatData, str, int]) -> np.ndarray:
    data, family, k = task
    train, val = data.folds[k]
    with threadpool_limits(**_ONE_THREAD):
        X_train, X_val = _design(data, train, val)
        return per_arm_outcomes(family, data.seed, X_train, data.y[train], data.arm[train],
                                X_val, data.n_arms)


def _learner_job(task: tuple[_TreatData, str, str, str, int]) -> tuple[np.ndarray, float]:
    data, name, family, propensity, k = task
    train, val = data.folds[k]
    started = time.perf_counter()
    with threadpool_limits(**_ONE_THREAD):
        X_train, X_val = _design(data, train, val)
        estimator = make_model(name, data.seed, family, propensity, {"n_bootstrap": 0})
        estimator.fit(X_train, data.y[train], data.arm[train])
        return estimator.predict_outcomes(X_val), time.perf_counter() - started


def _out_of_fold(data: _TreatData, names: list[str], job: Any, engine: Engine,
                 progress: Progress, label: str) -> dict[str, np.ndarray]:
    """Run ``job`` for every (name, fold) and stitch each name's out-of-fold predictions."""
    tasks = [(data, name, k) for name, k in as_items(names, range(len(data.folds)))]
    outputs = engine.map(job, tasks, label=label, progress=progress)
    stitched = {name: np.zeros((len(data.y), data.n_arms)) for name in names}
    for (_, name, k), output in zip(tasks, outputs, strict=True):
        stitched[name][data.folds[k][1]] = output
    return stitched


# ---- protocol steps --------------------------------------------------------------------------


def _folds(arm: np.ndarray, y: np.ndarray, binary: bool, cv: int,
           seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    strata = arm * 2 + y.astype(int) if binary else arm
    counts = np.bincount(strata)
    if counts[counts > 0].min() < cv:
        strata = arm
    splitter = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(arm)), strata))


def _log_loss(arm: np.ndarray, proba: np.ndarray) -> float:
    picked = np.clip(proba[np.arange(len(arm)), arm], 1e-6, 1.0)
    return float(-np.mean(np.log(picked)))


@dataclass
class _Propensity:
    """Propensities of development (out-of-fold) and test patients, and how they were got."""

    kind: str            # the learners' propensity model: a key of PROPENSITY_MODELS
    source: str          # "randomized" | "known" | "estimated"
    dev: np.ndarray      # (n_dev, K), or (n_dev,) for a known column
    test: np.ndarray
    log_loss: dict[str, float]


def _propensity(data: _TreatData, prepared: _Prepared, dev_idx: np.ndarray,
                test_idx: np.ndarray, config: TrainConfig, engine: Engine,
                progress: Progress) -> _Propensity:
    if prepared.known is not None:
        return _Propensity("logistic", "known", prepared.known[dev_idx],
                           prepared.known[test_idx], {})
    if config.randomized:
        shares = np.bincount(data.arm, minlength=data.n_arms) / len(data.arm)
        return _Propensity("randomized", "randomized", np.tile(shares, (len(dev_idx), 1)),
                           np.tile(shares, (len(test_idx), 1)), {})
    kinds = ["logistic", "lightgbm"]
    oof = _out_of_fold(data, kinds, _propensity_job, engine, progress, "propensity")
    losses = {kind: _log_loss(data.arm, oof[kind]) for kind in kinds}
    kind = min(kinds, key=lambda k: losses[k])
    everyone = np.arange(len(data.y))
    X_dev, X_test = _design_for(data, everyone, prepared, test_idx)
    model = make_propensity_model(kind, data.seed).fit(X_dev, data.arm)
    return _Propensity(kind, "estimated", oof[kind], full_proba(model, X_test, data.n_arms),
                       losses)


def _design_for(data: _TreatData, train: np.ndarray, prepared: _Prepared,
                test_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    preprocess = make_preprocessor(data.schema.numeric, data.schema.categorical,
                                   CLIP_QUANTILES if data.clip else None)
    fitted = preprocess.fit(data.features.iloc[train])
    test = data.schema.coerce(prepared.frame.iloc[test_idx])
    return fitted.transform(data.features.iloc[train]), fitted.transform(test)


def _pct(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 else f"{share:.1%}"


def _overlap_warnings(overlap: dict[str, Any], trim: float) -> list[str]:
    threshold = overlap["threshold"]
    messages = []
    for arm, entry in overlap["by_arm"].items():
        if entry["below"] > 0 and trim < threshold:
            messages.append(
                f"{_pct(entry['below'])} of patients have propensity < {threshold:g} for arm "
                f"'{arm}': their effects are extrapolated; consider --trim {threshold:g}")
    return messages


def _weights(split: _Split, arm: np.ndarray, arms: list[str]) -> dict[str, Any]:
    """The test AIPW weights of each arm and a warning for each arm a few patients carry."""
    by_arm = weight_summary(arm, split.propensity.test, arms)
    warnings = []
    for name, entry in by_arm.items():
        if not entry["few_carry"]:
            continue
        heaviest = 1 / entry["max_weight"]
        # a --trim just above the heaviest patient's propensity leaves that patient out
        trim = max(OVERLAP_THRESHOLD, math.ceil(100 * heaviest) / 100)
        fix = f"consider --trim {trim:g}, or add" if trim <= MAX_SUGGESTED_TRIM else "add"
        warnings.append(
            f"the test figures of arm '{name}' rest on few patients: the effective sample size "
            f"of its inverse-propensity weights is {entry['ess']:.1f} of its {entry['n']} test "
            f"patients, and the heaviest patient carries {entry['max_weight_share']:.0%} of its "
            f"weight (propensity {heaviest:.3f}): the test policy value, average effect and arm "
            f"values can swing with a single outcome; {fix} patients who received '{name}'")
    return {"scope": "the test split's AIPW figures: each patient who received an arm weighs "
                     "1 / (propensity of that arm), clipped at 0.01",
            "min_ess_share": MIN_ESS_SHARE, "max_weight_share": MAX_WEIGHT_SHARE,
            "by_arm": by_arm, "warnings": warnings}


def _trim_mask(propensity: np.ndarray, trim: float) -> np.ndarray:
    lowest = propensity if propensity.ndim == 1 else propensity.min(axis=1)
    return lowest >= trim


def _check_trimmed(arm: np.ndarray, arms: list[str], trim: float) -> None:
    counts = np.bincount(arm, minlength=len(arms))
    small = [f"'{a}' ({c})" for a, c in zip(arms, counts, strict=True) if c < MIN_ARM_SIZE]
    if small:
        raise PermedError(
            f"--trim {trim:g} leaves arms with fewer than {MIN_ARM_SIZE} development patients: "
            f"{', '.join(small)}; lower --trim, or merge those arms")


@dataclass
class _Split:
    """Development and test rows after trimming, with everything computed on them so far.

    ``untrimmed`` holds every development patient (``data`` itself without ``--trim``): the
    bundle's overlap flag is fitted on them, so that it recognizes the patients trimming left
    out.
    """

    data: _TreatData
    dev_idx: np.ndarray
    test_idx: np.ndarray
    propensity: _Propensity
    overlap: dict[str, Any]
    trim: dict[str, Any]
    untrimmed: _TreatData


def _subset(data: _TreatData, keep: np.ndarray, config: TrainConfig, binary: bool) -> _TreatData:
    features = data.features[keep]
    y, arm = data.y[keep], data.arm[keep]
    return _TreatData(features, y, arm, _folds(arm, y, binary, config.cv, config.seed),
                      data.schema, data.clip, data.seed, data.n_arms)


def _split(prepared: _Prepared, schema: FittedSchema, config: TrainConfig, engine: Engine,
           progress: Progress) -> _Split:
    rows = np.arange(len(prepared.y))
    dev_idx, test_idx = train_test_split(rows, test_size=config.test_size,
                                         stratify=prepared.arm, random_state=config.seed)
    dev_idx, test_idx = np.sort(dev_idx), np.sort(test_idx)
    features = schema.coerce(prepared.frame.iloc[dev_idx])
    y, arm = prepared.y[dev_idx], prepared.arm[dev_idx]
    data = _TreatData(features, y, arm, _folds(arm, y, prepared.binary, config.cv, config.seed),
                      schema, config.clip, config.seed, len(prepared.arms))
    propensity = _propensity(data, prepared, dev_idx, test_idx, config, engine, progress)
    threshold = config.trim if config.trim > 0 else OVERLAP_THRESHOLD
    overlap = overlap_summary(propensity.dev, arm, prepared.arms, threshold)
    overlap["warnings"] = _overlap_warnings(overlap, config.trim)
    trim = {"threshold": config.trim, "dropped_development": 0, "dropped_test": 0}
    untrimmed = data
    if config.trim > 0:
        keep_dev = _trim_mask(propensity.dev, config.trim)
        keep_test = _trim_mask(propensity.test, config.trim)
        trim.update(dropped_development=int((~keep_dev).sum()),
                    dropped_test=int((~keep_test).sum()))
        _check_trimmed(arm[keep_dev], prepared.arms, config.trim)
        data = _subset(data, keep_dev, config, prepared.binary)
        dev_idx, test_idx = dev_idx[keep_dev], test_idx[keep_test]
        propensity.dev, propensity.test = propensity.dev[keep_dev], propensity.test[keep_test]
    return _Split(data, dev_idx, test_idx, propensity, overlap, trim, untrimmed)


@dataclass
class _Nuisance:
    family: str
    mse: dict[str, float]
    scores: np.ndarray   # AIPW scores of the development patients (out-of-fold)


def _nuisance(split: _Split, engine: Engine, progress: Progress) -> _Nuisance:
    data = split.data
    families = list(OUTCOME_MODELS)
    oof = _out_of_fold(data, families, _outcome_job, engine, progress, "outcome models")
    rows = np.arange(len(data.y))
    mse = {f: float(np.mean((oof[f][rows, data.arm] - data.y) ** 2)) for f in families}
    family = min(families, key=lambda f: mse[f])
    scores = aipw_scores(data.y, data.arm, oof[family], split.propensity.dev)
    return _Nuisance(family, mse, scores)


@dataclass
class _Candidate:
    name: str
    summary: dict[str, dict[str, float]]
    seconds: float


def _cross_validate(split: _Split, nuisance: _Nuisance, names: list[str], sign: float,
                    engine: Engine, progress: Progress) -> dict[str, _Candidate]:
    data = split.data
    tasks = [(data, name, nuisance.family, split.propensity.kind, k)
             for name, k in as_items(names, range(len(data.folds)))]
    outputs = engine.map(_learner_job, tasks, label="cross-validation", progress=progress)
    per_model: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    seconds = dict.fromkeys(names, 0.0)
    for (_, name, _, _, k), (outcomes, spent) in zip(tasks, outputs, strict=True):
        val = data.folds[k][1]
        scores = nuisance.scores[val]
        effects = outcomes[:, 1:] - outcomes[:, :1]
        policy = np.argmax(sign * outcomes, axis=1)
        per_model[name].append({"dr_loss": dr_loss(effects, scores),
                                "policy_value": policy_value(scores, policy)})
        seconds[name] += spent
    return {name: _Candidate(name, cv_summary(per_model[name]), seconds[name]) for name in names}


def _select(results: dict[str, _Candidate], names: list[str]) -> str:
    return min(names, key=lambda n: (np.nan_to_num(results[n].summary["dr_loss"]["mean"],
                                                   nan=np.inf), names.index(n)))


# ---- the final model and its evaluation ------------------------------------------------------


def _final_model(selected: str, split: _Split, nuisance: _Nuisance, prepared: _Prepared,
                 study: Study, config: TrainConfig, n_jobs: int
                 ) -> tuple[TreatModel, np.ndarray, np.ndarray]:
    """The selected estimator refitted on all development rows, and the test AIPW scores.

    The estimator learns from the development rows left after ``--trim``; the preprocessing
    and the propensity model that sets ``low_overlap`` learn from every development patient,
    so that a new patient like those trimming left out is flagged (with ``--trim``'s
    threshold when it is above the default one).
    """
    data, everyone = split.data, split.untrimmed
    preprocess = make_preprocessor(data.schema.numeric, data.schema.categorical,
                                   CLIP_QUANTILES if data.clip else None).fit(everyone.features)
    X_dev = preprocess.transform(data.features)
    estimator = make_model(selected, config.seed, nuisance.family, split.propensity.kind,
                           {"n_jobs": n_jobs}).fit(X_dev, data.y, data.arm)
    propensity = None
    if split.propensity.source == "estimated":
        propensity = make_propensity_model(split.propensity.kind, config.seed).fit(
            preprocess.transform(everyone.features), everyone.arm)
    # the rows the estimator learned from: after --trim its outcomes beyond them are
    # extrapolated too
    support = arm_support(data.features, data.arm, prepared.arms, data.schema.numeric)
    model = TreatModel(selected, data.schema, preprocess, estimator, prepared.arms,
                       study.treatment or "", study.outcome or "", config.higher_is_better,
                       prepared.binary, propensity,
                       max(config.trim, OVERLAP_THRESHOLD), support=support)
    test = prepared.frame.iloc[split.test_idx]
    X_test = model.transform(test)
    outcomes = per_arm_outcomes(nuisance.family, config.seed, X_dev, data.y, data.arm, X_test,
                                data.n_arms)
    scores = aipw_scores(prepared.y[split.test_idx], prepared.arm[split.test_idx], outcomes,
                         split.propensity.test)
    return model, X_dev, scores


def _balance(split: _Split, arms: list[str]) -> dict[str, Any]:
    data = split.data
    matrix, names = readable_design(data.features, data.schema.numeric, data.schema.categorical)
    e = split.propensity.dev
    received = e if e.ndim == 1 else e[np.arange(len(data.arm)), data.arm]
    weights = 1.0 / np.clip(received, 0.01, 1.0)
    before = standardized_mean_differences(matrix, data.arm)
    after = standardized_mean_differences(matrix, data.arm, weights)
    rows = [{"feature": n, "before": float(b), "after": float(a)}
            for n, b, a in zip(names, before, after, strict=True)]
    rows.sort(key=lambda r: -r["before"])
    return {"weights": "inverse propensity of the arm received (clipped at 0.01)",
            "comparison": "largest absolute standardized mean difference between any two arms"
            if len(arms) > 2 else f"arm '{arms[1]}' vs '{arms[0]}'",
            "threshold": BALANCE_THRESHOLD, "features": rows,
            "imbalanced_before": int(sum(r["before"] > BALANCE_THRESHOLD for r in rows)),
            "imbalanced_after": int(sum(r["after"] > BALANCE_THRESHOLD for r in rows)),
            "warnings": [] if split.propensity.source == "randomized" else _balance_warnings(
                rows, split.trim["threshold"])}


def _smd_list(rows: list[dict[str, Any]], limit: int = 5) -> str:
    shown = ", ".join(f"{r['feature']} ({r['before']:.2f} before, {r['after']:.2f} after)"
                      for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _balance_warnings(rows: list[dict[str, Any]], trim: float) -> list[str]:
    """Weighting that leaves the arms unlike, or makes them less alike, on some features.

    Either is the usual sign of a propensity model that is misspecified or of a few extreme
    weights; the doubly-robust figures then lean on the outcome model. Not for randomized
    runs, whose weights are all equal (the balance after is the balance before).
    """
    fix = (f"consider --trim {OVERLAP_THRESHOLD:g}" if trim < OVERLAP_THRESHOLD
           else "consider a higher --trim")
    worse = sorted((r for r in rows if r["after"] > BALANCE_THRESHOLD
                    and r["after"] - r["before"] >= MARKEDLY_WORSE),
                   key=lambda r: r["before"] - r["after"])
    left = sorted((r for r in rows if r["after"] > BALANCE_THRESHOLD),
                  key=lambda r: -r["after"])
    messages = []
    if worse:
        messages.append(
            "weighting by the inverse propensity makes the arms less alike: their standardized "
            f"mean difference rises on {_smd_list(worse)}; the propensity model does not "
            "balance them (misspecified, or a few extreme weights), so the doubly-robust "
            "figures lean on the outcome model; check the overlap and balance sections of the "
            f"report and {fix}")
    if len(left) > MAX_IMBALANCED_AFTER:
        messages.append(
            f"after weighting by the inverse propensity, {len(left)} of {len(rows)} features "
            f"still differ between the arms by a standardized mean difference above "
            f"{BALANCE_THRESHOLD:g}: {_smd_list(left)}; the arms are not made comparable on "
            f"them, so the doubly-robust figures lean on the outcome model; {fix}, and check "
            "that the features hold the reasons the arms were chosen")
    return messages


def _fairness(study: Study, prepared: _Prepared, split: _Split, scores: np.ndarray,
              outcomes: np.ndarray, config: TrainConfig, ranking: list[int],
              candidates: np.ndarray) -> dict[str, Any]:
    if not study.sensitive:
        return {"attributes": {}, "note": "no sensitive attribute declared (--sensitive COL)"}
    # one set of groups for the run, as in diagnose and risk: a numeric column is binned at the
    # development split's quartiles, not split into one group per distinct value
    edges = bin_edges(prepared.frame.iloc[split.dev_idx][study.sensitive])
    test = prepared.frame.iloc[split.test_idx]
    arm = prepared.arm[split.test_idx]
    default = prepared.arms[ranking[0]]
    attributes: dict[str, Any] = {}
    for column in study.sensitive:
        labels, levels, subject = _treat_groups(test[column], column, edges)
        groups, flags = {}, []
        for level in levels:
            rows = labels == level
            entry: dict[str, Any] = {"n": int(rows.sum()), "too_small": bool(
                rows.sum() < MIN_GROUP_SIZE)}
            if rows.sum() >= 2 and len(set(arm[rows])) == len(prepared.arms):
                figures = treatment_report(arm[rows], scores[rows], outcomes[rows], prepared.arms,
                                           higher_is_better=config.higher_is_better,
                                           n_boot=200, seed=config.seed, ranking=ranking,
                                           candidates=candidates[rows])["test"]
                entry.update(policy_value=figures["policy_value"],
                             policy_gain=figures["policy_gain"])
                high = figures["policy_gain"]["ci_high"]
                if not entry["too_small"] and high is not None and np.isfinite(high) and high < 0:
                    flags.append(f"{subject(level)}: following permed's recommendation does "
                                 f"worse than giving everyone {default} (policy gain "
                                 f"{figures['policy_gain']['value']:.3g}, 95% CI up to {high:.3g})")
            groups[str(level)] = entry
        attributes[column] = {"groups": groups, "disparities": {}, "flags": flags}
    binned = {column: edges[column] for column in study.sensitive if column in edges}
    note = ("Per group, on its test patients: the doubly-robust value of following permed (the "
            f"recommended arm where it is clear, else the best single arm {default}, chosen on "
            f"development patients) and its gain over giving everyone {default}; a group where "
            "following permed does clearly worse (95% CI of the gain below 0) is flagged.")
    for column, cuts in binned.items():
        note += (f" Numeric column '{column}' is binned at edges "
                 f"{', '.join(f'{e:g}' for e in cuts)}, the quartiles of the development split "
                 "(the test values beyond them fall in the outer groups).")
    return {"attributes": attributes, "min_group_size": MIN_GROUP_SIZE, "max_gap": None,
            "bins": bins_entry(binned), "note": note}


def _treat_groups(values: pd.Series, column: str, edges: dict[str, list[float]]
                  ) -> tuple[np.ndarray, list[str], Callable[[str], str]]:
    """Each test row's group, the groups in display order, and how a flag names a group.

    A column in ``edges`` is binned at them (labels such as ``"age < 48"`` that name the
    column already); any other column's values are its groups (``"sex=F"`` in a flag).
    """
    if column in edges:
        labels, levels, _ = group_labels(values.reset_index(drop=True), column, edges)
        return labels, levels, str
    labels = as_category(values).fillna("missing").to_numpy()
    return labels, sorted(set(labels)), lambda level: f"{column}={level}"


def _predictions(model: TreatModel, prepared: _Prepared, split: _Split,
                 study: Study) -> pd.DataFrame:
    test = prepared.frame.iloc[split.test_idx]
    frame = model.predict_frame(test)
    frame.insert(0, "row", test.index.to_numpy())
    position = 2 if study.id and study.id in frame.columns else 1
    frame.insert(position, "arm_received", np.asarray(prepared.arms, dtype=object)[
        prepared.arm[split.test_idx]])
    frame.insert(position + 1, "y_true", prepared.y[split.test_idx])
    return frame


def _truth_figures(model: TreatModel, X_dev: np.ndarray, prepared: _Prepared,
                   split: _Split) -> dict[str, float]:
    outcomes = model.estimator.predict_outcomes(X_dev)
    effects = outcomes[:, 1:] - outcomes[:, :1]
    truth = prepared.truth[split.dev_idx]
    return {"pehe": float(np.sqrt(np.mean((effects - truth) ** 2))),
            "ate_error": float(np.mean(np.abs(effects.mean(axis=0) - truth.mean(axis=0)))),
            "rows": len(truth)}


def _assignment(prepared: _Prepared, split: _Split, study: Study) -> str:
    source = split.propensity.source
    if source == "known":
        return f"known propensity (column '{study.propensity}')"
    if source == "randomized":
        return "randomized (--randomized): propensities are the arm shares"
    return (f"estimated propensity: {PROPENSITY_MODELS[split.propensity.kind][0]} (lowest "
            "cross-fitted log-loss)")


def train_treat(frame: pd.DataFrame, study: Study, validation: ValidationReport,
                config: TrainConfig, engine: Engine, progress: Progress) -> RunResult:
    """Run the whole treat protocol; return metrics, test predictions and the model."""
    timings = Timings()
    names = config.models or default_models()
    for name in names:
        make_model(name, config.seed)  # refuses unknown names up front
    prepared = _prepare(frame, study, config)
    kinds = {c: k for c, k in validation.kinds.items() if c not in prepared.truth_columns}
    if config.randomized:
        for column, message in randomization_imbalance(prepared.frame, pd.Series(
                np.asarray(prepared.arms)[prepared.arm], index=prepared.frame.index), kinds):
            progress.note(f"warning: {message}")
            validation.warn(message, column)
    schema = FittedSchema.from_frame(prepared.frame, kinds, study, [])
    if prepared.binary and config.higher_is_better and not config.direction_given:
        message = _direction_warning(study.outcome or "", prepared)
        progress.note(f"warning: {message}")
        validation.warn(message, study.outcome)
    sign = 1.0 if config.higher_is_better else -1.0
    with timings("propensity"):
        split = _split(prepared, schema, config, engine, progress)
    for message in split.overlap["warnings"]:
        progress.note(f"warning: {message}")
        validation.warn(message, study.treatment)
    with timings("nuisance"):
        nuisance = _nuisance(split, engine, progress)
    with timings("cv"):
        results = _cross_validate(split, nuisance, names, sign, engine, progress)
    selected = _select(results, names)
    with timings("final_fit"), threadpool_limits(**_ONE_THREAD):
        model, X_dev, scores = _final_model(selected, split, nuisance, prepared, study, config,
                                            getattr(engine, "n_jobs", 1))
    with timings("test"):
        outcomes = model.estimator.predict_outcomes(model.transform(
            prepared.frame.iloc[split.test_idx]))
        truth = prepared.truth[split.test_idx] if prepared.truth is not None else None
        predictions = _predictions(model, prepared, split, study)
        # the best single arm (default and comparator) is chosen on development patients
        ranking = arm_ranking(nuisance.scores, config.higher_is_better)
        candidates = candidate_matrix(predictions["candidates"], prepared.arms)
        # outside the data permed recommends nothing: the clinician gives the default arm
        candidates[(predictions["recommended"] == OUTSIDE_THE_DATA).to_numpy()] = True
        evaluation = treatment_report(prepared.arm[split.test_idx], scores, outcomes,
                                      prepared.arms, higher_is_better=config.higher_is_better,
                                      true_effects=truth, n_boot=config.n_boot, seed=config.seed,
                                      ranking=ranking, candidates=candidates)
        evaluation["recommendation_share"] = {
            str(k): float(v) for k, v in predictions["recommended"].value_counts(
                normalize=True).items()}
        weights = _weights(split, prepared.arm[split.test_idx], prepared.arms)
    for message in weights["warnings"]:
        progress.note(f"warning: {message}")
        validation.warn(message, study.treatment)
    with timings("explain"):
        effects = model.estimator.effect(X_dev)
        labels = [f"{a} vs {prepared.arms[0]}" for a in prepared.arms[1:]]
        heterogeneity = effect_drivers(split.data.features, schema.numeric, schema.categorical,
                                       effects, labels, seed=config.seed)
        test_rows = prepared.frame.iloc[split.test_idx]
        explained, files = explain_treat_step(model, split.data.features, test_rows,
                                              test_rows.index.to_numpy(), config.seed)
        balance = _balance(split, prepared.arms)
    for message in balance["warnings"]:
        progress.note(f"warning: {message}")
        validation.warn(message, study.treatment)
    with timings("fairness"):
        fairness = _fairness(study, prepared, split, scores, outcomes, config,
                             ranking, candidates)
    metrics = _metrics(prepared, split, nuisance, results, selected, evaluation, study, config)
    metrics.update(heterogeneity=heterogeneity, explanations=explained, aipw_weights=weights,
                   balance=balance, fairness=fairness, timings=dict(timings))
    if prepared.truth is not None:
        metrics["development"] = _truth_figures(model, X_dev, prepared, split)
    return RunResult("treat", metrics, predictions, model, schema, files=files)


def _direction_warning(column: str, prepared: _Prepared) -> str:
    # A binary outcome's levels are coded in sorted order, so 'dead' (after 'alive') or an event
    # column's 1 is the level modelled; with the default direction permed then recommends the
    # arm most likely to give it (ACTG status dead/alive: the inferior arm for 194 of 211)
    other = "" if prepared.other == "0" else (
        f" (the other level, '{prepared.other}', counts as 0)")
    return (f"outcome '{column}' is modelled as the probability of {column} = "
            f"'{prepared.event}'{other} and higher is taken as better: pass --lower-is-better "
            f"if '{prepared.event}' is the outcome to avoid")


def _metrics(prepared: _Prepared, split: _Split, nuisance: _Nuisance,
             results: dict[str, _Candidate], selected: str, evaluation: dict[str, Any],
             study: Study, config: TrainConfig) -> dict[str, Any]:
    counts = np.bincount(prepared.arm, minlength=len(prepared.arms))
    chosen_on = ("the development patients' mean out-of-fold doubly-robust (AIPW) score of each "
                 "arm, before the test split is looked at")
    means = {a: float(prepared.y[prepared.arm == k].mean()) for k, a in enumerate(prepared.arms)}
    sds = {a: float(prepared.y[prepared.arm == k].std(ddof=1)) for k, a in enumerate(prepared.arms)}
    metrics: dict[str, Any] = {
        "task": "treat",
        "target": {"column": study.outcome},
        "treatment": {"column": study.treatment, "arms": prepared.arms,
                      "reference": prepared.arms[0],
                      "counts": {a: int(c) for a, c in zip(prepared.arms, counts, strict=True)},
                      "assignment": _assignment(prepared, split, study)},
        "outcome": {"column": study.outcome, "kind": "binary" if prepared.binary else
                    "continuous", "coded_1": prepared.event,
                    "modelled_level": prepared.event,
                    "modelled_as": (f"the probability of {study.outcome} = '{prepared.event}'"
                                    if prepared.binary else f"the mean of {study.outcome}"),
                    "higher_is_better": config.higher_is_better, "mean_by_arm": means,
                    "sd_by_arm": sds,
                    "true_effects": study.true_effect or (prepared.truth_columns or None)},
        "selected_model": selected,
        "selection": {"metric": "dr_loss", "folds": config.cv, "rule": SELECTION_RULE},
        "test": evaluation["test"],
        "policy": {**{k: evaluation[k] for k in (
            "value_by_arm", "best_single_arm", "best_arm_share", "recommendation_share",
            "policy_rule", "policy_arm_share", "best_estimate_policy")},
            "best_single_arm_chosen_on": chosen_on,
            "development_value_by_arm": {a: float(v) for a, v in zip(
                prepared.arms, nuisance.scores.mean(axis=0), strict=True)}},
        "ate_by_arm": evaluation["ate_by_arm"],
        "ate_comparison": evaluation["ate_comparison"],
        "ate_comparison_chosen_on": "the only non-reference arm" if len(prepared.arms) == 2
        else "the non-reference arm ranked best by " + chosen_on,
        "cv": {n: results[n].summary for n in results},
        "cv_details": {n: {"fit_seconds": round(results[n].seconds, 3),
                           "description": TREAT_MODELS[n].description} for n in results},
        "nuisance": {"outcome_model": nuisance.family,
                     "outcome_description": OUTCOME_MODELS[nuisance.family][0],
                     "outcome_mse": nuisance.mse,
                     "propensity_model": split.propensity.kind,
                     "propensity_source": split.propensity.source,
                     "propensity_log_loss": split.propensity.log_loss},
        "overlap": split.overlap,
        "trim": split.trim,
        "bootstrap": {"replicates": config.n_boot, "confidence": 0.95,
                      "method": "percentile, stratified by arm", "seed": config.seed},
        "split": {"development_rows": len(split.dev_idx), "test_rows": len(split.test_idx)},
    }
    if "qini_curve" in evaluation:
        metrics["qini_curve"] = evaluation["qini_curve"]
    return metrics
