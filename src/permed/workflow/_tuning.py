"""Whether a hyper-parameter search's best trial replaces a model family's default settings.

An Optuna search keeps the best of many trials, so the best trial's mean CV score is
optimistic: the more trials, the more fold noise the winner has been chosen for. On 1,523
METABRIC patients the best of 168 boosted-tree trials beat the defaults by 0.002 in CV C-index
and lost 0.010 on the held-out test split (benchmarks/results/risk.json, before this rule).
The best trial therefore replaces the defaults only when its paired gain over them on the same
folds, less Tibshirani & Tibshirani's (2009) estimate of that selection optimism, still exceeds
one standard error of the gain. The estimate needs no extra fits: on each fold, how far the
best score any trial reached there lies above the selected trial's score, averaged over folds.

With few folds both halves of that rule are too lenient: the folds' training sets overlap, so
their gains are correlated and the plain standard error is too small, and the optimism, a mean
over 3 folds, is itself noisy. The standard error is therefore Nadeau & Bengio's (2003)
corrected one (variance times ``1/K + 1/(K-1)`` instead of ``1/K`` for K folds; ``1/J +
1/(K-1)`` when only J of them have a score), and "one standard error" is read on Student's t
with J - 1 degrees of freedom (the 84th percentile, 1.32
for 3 folds). In simulation (tests/workflow/test_tuning_rule.py), trials no better than the
defaults replaced them in 35% of 3-fold searches under the plain rule and in 17% under this one;
a setting truly better by 0.05 still replaced them in over 99%.

Model selection after tuning compares families on the same footing: a tuned family's CV score is
its best trial's, so :func:`selection_score` takes the optimism off it before it is set against
the families that kept their defaults.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from permed.engine import EngineTaskError

TUNING_RULE = ("the best Optuna trial replaces a family's default settings only when its mean "
               "per-fold gain over the defaults on the same folds, less the optimism of picking "
               "the best of many trials (Tibshirani & Tibshirani 2009), exceeds one standard "
               "error of that gain (Nadeau & Bengio's corrected standard error for overlapping "
               "folds, on Student's t with folds - 1 degrees of freedom); a tuned family then "
               "competes in model selection with that optimism taken off its CV score")

# "One standard error" as a one-sided level: the share of a normal beyond one SD.
_ONE_SE_LEVEL = float(stats.norm.cdf(1.0))


@dataclass(frozen=True)
class TuningVerdict:
    """The figures behind one family's tuned-vs-default decision (CV scores, higher better)."""

    replace: bool
    trials: int
    gain: float  # the best trial's mean per-fold gain over the defaults
    optimism: float  # the estimated selection optimism of the best trial's mean CV score
    standard_error: float  # of the mean per-fold gain, corrected for overlapping folds
    threshold: float = float("nan")  # what gain - optimism had to exceed

    def as_json(self) -> dict[str, Any]:
        return {"trials": self.trials, "replaced_defaults": self.replace,
                "cv_gain": _rounded(self.gain), "selection_optimism": _rounded(self.optimism),
                "gain_standard_error": _rounded(self.standard_error),
                "threshold": _rounded(self.threshold)}


def _rounded(value: float) -> float | None:
    return round(value, 5) if math.isfinite(value) else None


def selection_optimism(scores: np.ndarray, best: int) -> float:
    """Tibshirani & Tibshirani's estimate of how far trial ``best``'s mean CV score overstates
    its true score, from ``scores`` (trials x folds; NaN where a trial failed on a fold)."""
    scores = np.asarray(scores, dtype=float)
    reached = np.isfinite(scores).any(axis=0) & np.isfinite(scores[best])
    if not reached.any():
        return float("nan")
    per_fold_best = np.nanmax(scores[:, reached], axis=0)
    return float(np.mean(per_fold_best - scores[best, reached]))


def judge(trial_scores: Sequence[Sequence[float]], best: int,
          default: Sequence[float]) -> TuningVerdict:
    """Whether trial ``best`` (of ``trial_scores``, trials x folds) replaces the defaults,
    whose per-fold scores are ``default`` (see the module docstring)."""
    scores = np.asarray(trial_scores, dtype=float).reshape(len(trial_scores), -1)
    gain = scores[best] - np.asarray(default, dtype=float)
    scored = np.isfinite(gain)  # a fold where either has no score (one class only) is left out
    if scored.sum() < 2:
        nan = float("nan")
        return TuningVerdict(False, len(scores), nan, nan, nan, nan)
    gain = gain[scored]
    # the mean is over the scored folds; the overlap of training sets (test/train share
    # 1/(K-1)) is that of the K folds the CV was run with
    scored_folds, folds = len(gain), scores.shape[1]
    mean = float(gain.mean())
    error = float(gain.std(ddof=1) * math.sqrt(1 / scored_folds + 1 / (folds - 1)))
    threshold = float(stats.t.ppf(_ONE_SE_LEVEL, scored_folds - 1)) * error
    optimism = selection_optimism(scores[:, scored], best)
    return TuningVerdict(bool(mean - optimism > threshold), len(scores), mean, optimism, error,
                         threshold)


def selection_score(cv_mean: float, verdict: TuningVerdict | None) -> float:
    """A family's mean CV score for model selection: less its selection optimism when its
    tuned settings replaced the defaults (their CV score is the best trial's)."""
    if verdict is None or not verdict.replace or not math.isfinite(verdict.optimism):
        return cv_mean
    return cv_mean - verdict.optimism


Scores = Callable[[dict[str, Any], str], list[float]]


def search(name: str, scores: Scores, space: Callable[[Any], dict[str, Any]], seconds: float,
           seed: int, *, mean: Callable[[list[float]], float],
           base: dict[str, Any] | None = None) -> tuple[dict[str, Any], TuningVerdict]:
    """Tune model ``name`` for about ``seconds``: score its ``base`` settings (its defaults),
    then Optuna trials of ``space`` on top of them, each scored by ``scores(params, label)``
    (per-fold, higher better; a trial's objective is ``mean`` of them), until the time is
    spent. Return the best trial's settings when they replace the defaults ({} otherwise) and
    the :func:`judge_search` verdict.
    """
    import optuna

    base = base or {}
    started = time.perf_counter()
    default = scores(base, f"defaults {name}")

    def objective(trial: Any) -> float:
        found = scores({**base, **space(trial)}, f"trial {trial.number} {name}")
        trial.set_user_attr("folds", found)
        return mean(found)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, timeout=max(1.0, seconds - (time.perf_counter() - started)),
                   n_trials=None, catch=(ValueError, EngineTaskError))
    verdict = judge_search(study, default)
    return (space(study.best_trial) if verdict.replace else {}), verdict


def judge_search(study: Any, default: Sequence[float]) -> TuningVerdict:
    """:func:`judge` an Optuna study whose trials recorded their per-fold scores in the user
    attribute ``folds``."""
    completed = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not completed:
        nan = float("nan")
        return TuningVerdict(False, 0, nan, nan, nan, nan)
    best = [t.number for t in completed].index(study.best_trial.number)
    return judge([t.user_attrs["folds"] for t in completed], best, default)


def tuning_details(tuned: dict[str, tuple[dict[str, Any], TuningVerdict]],
                   name: str) -> dict[str, Any]:
    """The ``cv_details`` entries of family ``name``: its number of trials and, when it was
    tuned, the figures its settings were chosen by."""
    if name not in tuned:
        return {"tuning_trials": 0}
    verdict = tuned[name][1]
    return {"tuning_trials": verdict.trials, "tuning": verdict.as_json()}
