"""Whether a hyper-parameter search's best trial replaces a model family's default settings.

An Optuna search keeps the best of many trials, so the best trial's mean CV score is
optimistic: the more trials, the more fold noise the winner has been chosen for. On 1,523
METABRIC patients the best of 168 boosted-tree trials beat the defaults by 0.002 in CV C-index
and lost 0.010 on the held-out test split (benchmarks/results/risk.json, before this rule).
The best trial therefore replaces the defaults only when its paired gain over them on the same
folds, less Tibshirani & Tibshirani's (2009) estimate of that selection optimism, still exceeds
one standard error of the gain. The estimate needs no extra fits: on each fold, how far the
best score any trial reached there lies above the selected trial's score, averaged over folds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from permed.engine import EngineTaskError

TUNING_RULE = ("the best Optuna trial replaces a family's default settings only when its mean "
               "per-fold gain over the defaults on the same folds, less the optimism of picking "
               "the best of many trials (Tibshirani & Tibshirani 2009), exceeds one standard "
               "error of that gain")


@dataclass(frozen=True)
class TuningVerdict:
    """The figures behind one family's tuned-vs-default decision (CV scores, higher better)."""

    replace: bool
    trials: int
    gain: float  # the best trial's mean per-fold gain over the defaults
    optimism: float  # the estimated selection optimism of the best trial's mean CV score
    standard_error: float  # of the per-fold gain

    def as_json(self) -> dict[str, Any]:
        return {"trials": self.trials, "replaced_defaults": self.replace,
                "cv_gain": _rounded(self.gain), "selection_optimism": _rounded(self.optimism),
                "gain_standard_error": _rounded(self.standard_error)}


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
        return TuningVerdict(False, len(scores), nan, nan, nan)
    gain = gain[scored]
    mean, error = float(gain.mean()), float(gain.std(ddof=1) / math.sqrt(len(gain)))
    optimism = selection_optimism(scores[:, scored], best)
    return TuningVerdict(bool(mean - optimism > error), len(scores), mean, optimism, error)


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
        return TuningVerdict(False, 0, nan, nan, nan)
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
