"""FT-Transformer benchmark: tabular transformer vs MLP / LightGBM (diagnose), vs DeepSurv (risk).

Run: .venv/bin/python benchmarks/transformer.py
Needs ../shared/data (uci_heart_cleveland, deepsurv_h5) and h5py (the `dev` extra). Prints a
table and writes benchmarks/results/transformer.json.

Protocol
--------
cleveland (diagnose)
    UCI Cleveland, binary target diagnosis > 0 (303 patients; missing values imputed inside
    the folds). 5-fold stratified CV (seed 0); in each fold permed's preprocessing
    (the feature kinds permed's validation infers, fitted on the training rows) and each
    family's ``permed train`` settings (``make_model``: no tuning). AUROC per fold, mean and
    standard deviation; fit seconds per fold (mean).
metabric (risk)
    The DeepSurv paper's METABRIC train/test split (../shared/data/deepsurv_h5): each family
    fitted once on the published train split with its default settings, Harrell's C-index on
    the test split with a 95% bootstrap CI (as benchmarks/risk.py). DeepSurv paper: 0.655.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import cleveland, print_table, write_results  # noqa: E402

SEED, FOLDS = 0, 5
DIAGNOSE = ("ft_transformer", "mlp", "lightgbm")
RISK = ("ft_transformer", "deepsurv")


def cleveland_cv() -> dict | None:
    """5-fold CV AUROC and fit time of each diagnose family on Cleveland."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from permed.study import FittedSchema, Study, validate
    from permed.workflow._cv import build_pipeline

    frame = cleveland()
    if frame is None:
        return None
    study = Study(task="diagnose", target="disease")
    validation = validate(frame, study)
    validation.raise_errors()
    schema = FittedSchema.from_frame(frame, validation.kinds, study, [])
    features, y = schema.coerce(frame), frame["disease"].to_numpy()
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(features, y)
    folds = list(folds)
    results = {}
    for name in DIAGNOSE:
        aurocs, seconds = [], []
        for train, test in folds:
            started = time.perf_counter()
            pipeline = build_pipeline(name, schema, SEED, "cpu", clip=True)
            pipeline.fit(features.iloc[train], y[train])
            seconds.append(time.perf_counter() - started)
            aurocs.append(roc_auc_score(y[test], pipeline.predict_proba(features.iloc[test])[:, 1]))
        results[name] = {"cv_auroc_mean": float(np.mean(aurocs)),
                         "cv_auroc_std": float(np.std(aurocs)),
                         "cv_auroc_folds": [float(a) for a in aurocs],
                         "fit_seconds_mean": float(np.mean(seconds))}
        print(f"cleveland {name}: done", file=sys.stderr)
    return {"rows": len(frame), "folds": FOLDS, "seed": SEED, "models": results}


def metabric_test() -> dict | None:
    """Test C-index (bootstrap CI) and fit time of each risk family on METABRIC."""
    from permed.models.risk import survival_y
    from permed.study import FittedSchema, Study, validate
    from permed.workflow import TrainConfig
    from permed.workflow._risk import _default_horizons, build_risk_pipeline
    from risk import _test_c_index, load_split

    split = load_split("metabric")
    if split is None:
        return None
    train, test = split
    study = Study(task="risk", time="duration", event="event")
    validation = validate(train, study)
    validation.raise_errors()
    train = train[train["duration"] > 0].reset_index(drop=True)
    config = TrainConfig(seed=42, device="cpu")
    schema = FittedSchema.from_frame(train, validation.kinds, study, [])
    features = schema.coerce(train)
    time_, event = train["duration"].to_numpy(), train["event"].to_numpy(bool)
    reference = survival_y(time_, event)
    horizons = np.asarray(_default_horizons(time_, event))
    results = {}
    for name in RISK:
        started = time.perf_counter()
        pipeline = build_risk_pipeline(name, schema, config, {}).fit(features, reference)
        seconds = time.perf_counter() - started
        results[name] = {"test_c_index": _test_c_index(pipeline, schema, test, reference,
                                                       horizons),
                         "fit_seconds": seconds,
                         "epochs": int(getattr(pipeline[-1], "n_epochs_", 0))}
        print(f"metabric {name}: done", file=sys.stderr)
    return {"train_rows": len(train), "test_rows": len(test), "published_deepsurv": 0.655,
            "models": results}


def _rows(diagnose: dict | None, risk: dict | None) -> list[dict]:
    rows = []
    for name, r in (diagnose or {}).get("models", {}).items():
        rows.append({"dataset": "cleveland (5-fold CV)", "model": name,
                     "metric": f"AUROC {r['cv_auroc_mean']:.3f} ± {r['cv_auroc_std']:.3f}",
                     "fit s": f"{r['fit_seconds_mean']:.1f} per fold"})
    for name, r in (risk or {}).get("models", {}).items():
        c = r["test_c_index"]
        rows.append({"dataset": "metabric (test split)", "model": name,
                     "metric": f"C {c['value']:.3f} ({c['ci_low']:.3f}-{c['ci_high']:.3f})",
                     "fit s": f"{r['fit_seconds']:.1f}"})
    return rows


def main() -> int:
    started = time.perf_counter()
    diagnose, risk = cleveland_cv(), metabric_test()
    print_table(_rows(diagnose, risk), ["dataset", "model", "metric", "fit s"])
    print("\nDeepSurv paper (Katzman et al. 2018) METABRIC test C-index: DeepSurv 0.655, "
          "CPH 0.632. CPU, 2 shared cores.")
    path = write_results("transformer", {"protocol": __doc__, "cleveland": diagnose,
                                         "metabric": risk,
                                         "seconds": round(time.perf_counter() - started, 1)})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
