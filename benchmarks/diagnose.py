"""Diagnose benchmark: permed's protocol vs plain scikit-learn and LightGBM on the same folds.

Run: .venv/bin/python benchmarks/diagnose.py
Prints a side-by-side table and writes benchmarks/results/diagnose.json.
Datasets: breast cancer (ships with scikit-learn) and UCI Cleveland (../shared/data, if present).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import cleveland, print_table, write_results  # noqa: E402
from permed.ingest import load_dataset  # noqa: E402
from permed.study import Study  # noqa: E402
from permed.utils.jsonio import read_json  # noqa: E402
from permed.workflow import TrainConfig, train_run  # noqa: E402

SEED, FOLDS, TEST_SIZE = 42, 5, 0.2


def _baselines(frame: pd.DataFrame, target: str, sensitive: list[str]) -> dict[str, dict]:
    """Plain pipelines on permed's development split and folds (same seed, same rows)."""
    y = frame[target].astype(str)
    features = frame.drop(columns=[target, *sensitive])
    dev, _ = train_test_split(np.arange(len(frame)), test_size=TEST_SIZE, stratify=y,
                              random_state=SEED)
    X, y = features.iloc[dev], (y.iloc[dev] == sorted(y.unique())[-1]).astype(int)
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    numeric = X.select_dtypes("number").columns.tolist()
    categorical = [c for c in X.columns if c not in numeric]
    encode = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), categorical)])
    candidates = {
        "sklearn LogisticRegression": make_pipeline(encode, LogisticRegression(max_iter=5000)),
        "plain LightGBM": LGBMClassifier(random_state=SEED, verbose=-1),
    }
    results = {}
    for name, estimator in candidates.items():
        started = time.perf_counter()
        data = X if name != "plain LightGBM" else X.astype(
            dict.fromkeys(categorical, "category"))
        scores = cross_val_score(estimator, data, y, cv=folds, scoring="roc_auc")
        results[name] = {"cv_auroc_mean": float(scores.mean()), "cv_auroc_std": float(scores.std()),
                         "seconds": time.perf_counter() - started}
    return results


def _permed(frame: pd.DataFrame, target: str, sensitive: list[str], workdir: Path) -> dict:
    data = workdir / "data.csv"
    frame.to_csv(data, index=False)
    started = time.perf_counter()
    run = train_run(data, Study(task="diagnose", target=target, sensitive=sensitive),
                    TrainConfig(seed=SEED, cv=FOLDS, test_size=TEST_SIZE), workdir / "run")
    seconds = time.perf_counter() - started
    metrics = read_json(run / "metrics.json")
    selected = metrics["selected_model"]
    return {"selected_model": selected,
            "cv_auroc_mean": metrics["cv"][selected]["auroc"]["mean"],
            "cv_auroc_std": metrics["cv"][selected]["auroc"]["std"],
            "cv_auroc_by_model": {m: v["auroc"]["mean"] for m, v in metrics["cv"].items()},
            "test_auroc": metrics["test"]["auroc"],
            "seconds": seconds, "timings": metrics["timings"]}


def main() -> None:
    cohorts = {"breast_cancer": (load_dataset("breast_cancer"), "diagnosis", [])}
    heart = cleveland()
    if heart is not None:
        cohorts["cleveland"] = (heart, "disease", ["sex"])
    rows, payload = [], {"seed": SEED, "folds": FOLDS, "test_size": TEST_SIZE, "datasets": {}}
    for name, (frame, target, sensitive) in cohorts.items():
        with tempfile.TemporaryDirectory() as tmp:
            ours = _permed(frame, target, sensitive, Path(tmp))
        base = _baselines(frame, target, sensitive)
        payload["datasets"][name] = {"permed": ours, **base}
        reference = base["sklearn LogisticRegression"]["seconds"]
        entries = {f"permed ({ours['selected_model']}, full protocol)": ours, **base}
        for method, result in entries.items():
            auroc = f"{result['cv_auroc_mean']:.4f} ± {result['cv_auroc_std']:.4f}"
            rows.append({"dataset": name, "method": method, "CV AUROC": auroc,
                         "wall s": f"{result['seconds']:.2f}",
                         "time vs sklearn LR": f"{result['seconds'] / reference:.1f}x"})
    print_table(rows, ["dataset", "method", "CV AUROC", "wall s", "time vs sklearn LR"])
    print("\npermed's wall time covers the whole protocol: 4 models x 5 folds, calibration, "
          "threshold, 1000-replicate bootstrap CIs, fairness audit, report.")
    print(f"wrote {write_results('diagnose', payload)}")


if __name__ == "__main__":
    main()
