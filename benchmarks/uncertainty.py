"""Conformal prediction sets: permed's cross-fitted LAC vs MAPIE, on the same splits.

permed fits its sets on the out-of-fold probabilities its CV already computed, and keeps the
final model trained on every development patient. MAPIE's SplitConformalClassifier must hold
patients out of training to conformalize; its CrossConformalClassifier refits one model per fold.
This compares held-out coverage, mean set size and time at 90% and 95% coverage (permed's time
includes the cross-validation that, inside permed, is already done for model selection).

Run: .venv/bin/python benchmarks/uncertainty.py  (writes benchmarks/results/uncertainty.json)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from mapie.classification import CrossConformalClassifier, SplitConformalClassifier
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import cleveland, print_table, write_results  # noqa: E402
from permed.uncertainty import ConformalSets  # noqa: E402

SEEDS = range(20)


def _model():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _permed(X_dev, y_dev, X_test, level, seed):
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    oof = cross_val_predict(_model(), X_dev, y_dev, cv=folds, method="predict_proba")
    sets = ConformalSets(level, allow_empty=True).fit(oof, y_dev)
    return sets.predict_set(_model().fit(X_dev, y_dev).predict_proba(X_test))


def _mapie_split(X_dev, y_dev, X_test, level, seed):
    X_fit, X_conf, y_fit, y_conf = train_test_split(X_dev, y_dev, test_size=0.25,
                                                    stratify=y_dev, random_state=seed)
    mapie = SplitConformalClassifier(_model().fit(X_fit, y_fit), confidence_level=level,
                                     prefit=True)
    return mapie.conformalize(X_conf, y_conf).predict_set(X_test)[1][:, :, 0]


def _mapie_cross(X_dev, y_dev, X_test, level, seed):
    mapie = CrossConformalClassifier(_model(), confidence_level=level, cv=5, random_state=seed)
    return mapie.fit_conformalize(X_dev, y_dev).predict_set(X_test)[1][:, :, 0]


METHODS = {"permed cross-fitted LAC": _permed, "MAPIE split (25% held out)": _mapie_split,
           "MAPIE cross-conformal": _mapie_cross}


def main() -> None:
    bc = load_breast_cancer(return_X_y=True)
    cohorts = {"breast_cancer": bc}
    heart = cleveland()
    if heart is not None:
        heart = heart.dropna()
        cohorts["cleveland"] = (heart.drop(columns="disease").to_numpy(),
                                heart["disease"].to_numpy())
    rows, payload = [], {}
    for name, (X, y) in cohorts.items():
        for level in (0.90, 0.95):
            for method, run in METHODS.items():
                coverage, size, seconds = [], [], 0.0
                for seed in SEEDS:
                    X_dev, X_test, y_dev, y_test = train_test_split(
                        X, y, test_size=0.3, stratify=y, random_state=seed)
                    started = time.perf_counter()
                    members = run(X_dev, y_dev, X_test, level, seed)
                    seconds += time.perf_counter() - started
                    coverage.append(members[np.arange(len(y_test)), y_test].mean())
                    size.append(members.sum(axis=1).mean())
                result = {"coverage_mean": float(np.mean(coverage)),
                          "coverage_std": float(np.std(coverage)),
                          "set_size_mean": float(np.mean(size)), "seconds": seconds}
                payload.setdefault(name, {}).setdefault(str(level), {})[method] = result
                rows.append({"dataset": name, "target": f"{level:.0%}", "method": method,
                             "coverage": f"{result['coverage_mean']:.3f} ± "
                                         f"{result['coverage_std']:.3f}",
                             "mean set size": f"{result['set_size_mean']:.3f}",
                             f"seconds ({len(SEEDS)} seeds)": f"{seconds:.1f}"})
    print_table(rows, ["dataset", "target", "method", "coverage", "mean set size",
                       f"seconds ({len(SEEDS)} seeds)"])
    print(f"wrote {write_results('uncertainty', payload)}")


if __name__ == "__main__":
    main()
