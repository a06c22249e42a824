"""Risk benchmark: would another learner lift permed's default boosted Cox trees?

Run: .venv/bin/python benchmarks/risk_alternatives.py [--seeds 20] [--datasets metabric,gbsg]

On each of the seeds 1..N and 42, one 80/20 split of the pycox CSV stratified by event (the
learners are fitted on the 80% with their defaults, no tuning, no model selection) and the test
Harrell's C-index of:

- ``boosted``: permed's gradient-boosted Cox trees (``SurvivalBoosting``, the family the CV
  selection picks most often on METABRIC);
- ``boosted_slow``: the same with 600 trees at learning rate 0.01;
- ``forest`` / ``forest_500``: permed's random survival forest with 100 / 500 trees;
- ``logistic_hazard``: a discrete-time model without proportional hazards, LightGBM on
  person-period rows over 20 intervals at the quantiles of the event times (the interval is a
  feature), scored by the summed cumulative hazard. It exists only here, to test whether a
  non-proportional-hazards learner ranks patients better;
- ``splines``: permed's spline Cox model (``SplineCox``, the opt-in ``coxph_splines``);
- ``rank_mean``: the mean of the test patients' risk ranks under ``boosted``, ``forest`` and
  ``splines`` (an unweighted ensemble of three families, fitted as above);
- ``ensemble``: permed's ``RankEnsemble`` of the same three (each member's score as its
  percentile among its training patients' scores, so that one patient can be scored alone),
  the ``ensemble`` risk family;
- ``ensemble_curve``: the same fit, scored by its mean survival curve's cumulative hazard
  summed over the training event times (the forest's ensemble mortality) instead.

Each learner's mean is set against ``boosted`` on the same splits (paired differences and their
SD), the comparison that says whether a change of learner would lift the protocol rather than one
split; the table also shows seed 42, the split permed's own default (``--seed 42``) draws.
Writes benchmarks/results/risk_alternatives.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from scipy.stats import rankdata
from sklearn.model_selection import train_test_split
from sksurv.metrics import concordance_index_censored

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import SHARED_DATA, print_table, write_results  # noqa: E402
from permed.models.risk import (  # noqa: E402
    RankEnsemble,
    SplineCox,
    SurvivalBoosting,
    SurvivalForest,
    survival_y,
)

SAVED = Path(__file__).resolve().parent / "results" / "risk_alternatives.json"
Learner = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def _fitted(model: object) -> Learner:
    def score(X: np.ndarray, time: np.ndarray, event: np.ndarray, X_test: np.ndarray,
              seed: int) -> np.ndarray:
        estimator = model(seed)
        return estimator.fit(X, survival_y(time, event)).predict(X_test)
    return score


def logistic_hazard(X: np.ndarray, time: np.ndarray, event: np.ndarray, X_test: np.ndarray,
                    seed: int, intervals: int = 20) -> np.ndarray:
    """Summed cumulative hazard of a discrete-time LightGBM hazard model."""
    grid = np.unique(np.quantile(time[event], np.linspace(0, 1, intervals + 1)[1:]))
    last = np.minimum(np.searchsorted(grid, time, side="left"), len(grid) - 1)
    patient = np.repeat(np.arange(len(time)), last + 1)
    period = np.concatenate([np.arange(k + 1) for k in last])
    happened = np.zeros(len(patient))
    happened[np.cumsum(last + 1) - 1] = event
    model = LGBMClassifier(n_estimators=300, learning_rate=0.03, num_leaves=7,
                           subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                           random_state=seed, verbose=-1, n_jobs=1)
    model.fit(np.column_stack([X[patient], period]), happened)
    m = len(grid)
    rows = np.column_stack([np.repeat(X_test, m, axis=0), np.tile(np.arange(m), len(X_test))])
    hazard = model.predict_proba(rows)[:, 1].reshape(len(X_test), m)
    survival = np.cumprod(1.0 - hazard, axis=1)
    return -np.log(np.clip(survival, 1e-12, 1.0)).sum(axis=1)


def rank_mean(X: np.ndarray, time: np.ndarray, event: np.ndarray, X_test: np.ndarray,
              seed: int) -> np.ndarray:
    """Mean risk rank of the test patients under the boosted trees, the forest and the spline
    Cox model."""
    y = survival_y(time, event)
    members = (SurvivalBoosting(random_state=seed), SurvivalForest(random_state=seed),
               SplineCox())
    return np.mean([rankdata(m.fit(X, y).predict(X_test)) for m in members], axis=0)


def ensemble_curve(X: np.ndarray, time: np.ndarray, event: np.ndarray, X_test: np.ndarray,
                   seed: int) -> np.ndarray:
    """The shipped ensemble's mean survival curve, scored as a forest's ensemble mortality:
    the cumulative hazard -log S summed over the training event times."""
    model = RankEnsemble(random_state=seed).fit(X, survival_y(time, event))
    survival = model.predict_survival_function(X_test)
    return -np.log(np.clip(survival, 1e-12, 1.0)).sum(axis=1)


LEARNERS: dict[str, Learner] = {
    "boosted": _fitted(lambda s: SurvivalBoosting(random_state=s)),
    "boosted_slow": _fitted(lambda s: SurvivalBoosting(n_estimators=600, learning_rate=0.01,
                                                       random_state=s)),
    "forest": _fitted(lambda s: SurvivalForest(random_state=s)),
    "forest_500": _fitted(lambda s: SurvivalForest(n_estimators=500, random_state=s)),
    "logistic_hazard": logistic_hazard,
    "splines": _fitted(lambda s: SplineCox()),
    "rank_mean": rank_mean,
    "ensemble": _fitted(lambda s: RankEnsemble(random_state=s)),
    "ensemble_curve": ensemble_curve,
}


def _table(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.read_csv(SHARED_DATA / "survival_pycox_csv" / f"{name}.csv")
    frame = frame.drop(columns=[c for c in frame.columns if not c or c.startswith("Unnamed")])
    frame = frame[frame["duration"] > 0]
    return (frame.drop(columns=["duration", "event"]).to_numpy(dtype=float),
            frame["duration"].to_numpy(dtype=float), frame["event"].to_numpy().astype(bool))


def run(name: str, seeds: list[int], learners: list[str], saved: dict | None) -> dict:
    X, time_, event = _table(name)
    scores: dict[str, list[float]] = {learner: [] for learner in learners}
    for seed in seeds:
        train, test = train_test_split(np.arange(len(time_)), test_size=0.2, stratify=event,
                                       random_state=seed)
        for learner in learners:
            risk = LEARNERS[learner](X[train], time_[train], event[train], X[test], seed)
            scores[learner].append(
                float(concordance_index_censored(event[test], time_[test], risk)[0]))
    if saved is not None and saved["seeds"] == seeds:  # the learners not run this time
        scores = {**saved["test_c_index"], **scores}
    base = np.array(scores["boosted"])
    summary = {}
    for learner, values in scores.items():
        diff = np.array(values) - base
        summary[learner] = {"mean": float(np.mean(values)), "seed_42": values[seeds.index(42)],
                            "paired_diff_mean": float(diff.mean()),
                            "paired_diff_sd": float(diff.std(ddof=1))}
    return {"seeds": seeds, "test_c_index": scores, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--datasets", default="metabric,gbsg")
    parser.add_argument("--learners", default=",".join(LEARNERS),
                        help="run these only (boosted, the baseline, always); the others' "
                             "figures are kept from the saved results of the same seeds")
    args = parser.parse_args()
    seeds = [*range(1, args.seeds + 1), 42]
    learners = ["boosted", *(n for n in args.learners.split(",") if n != "boosted")]
    saved = json.loads(SAVED.read_text())["results"] if SAVED.exists() else {}
    started = time.perf_counter()
    results = {name: run(name, seeds, learners, saved.get(name))
               for name in args.datasets.split(",")}
    rows = [{"dataset": name, "learner": learner, "mean C": f"{s['mean']:.4f}",
             "seed 42": f"{s['seed_42']:.4f}",
             "vs boosted": f"{s['paired_diff_mean']:+.4f}",
             "SD": f"{s['paired_diff_sd']:.4f}"}
            for name, result in results.items() for learner, s in result["summary"].items()]
    print_table(rows, ["dataset", "learner", "mean C", "seed 42", "vs boosted", "SD"])
    path = write_results("risk_alternatives", {
        "protocol": __doc__, "seconds": round(time.perf_counter() - started, 1),
        "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
