"""Explanation benchmark: per-patient SHAP latency for each diagnose model family.

Run: .venv/bin/python benchmarks/explain.py
Prints a table and writes benchmarks/results/explain.json.

For each family (fitted as permed fits it: preprocessing + estimator) one patient at a time is
explained, as `permed predict --explain` or the service does for a single patient: median and
95th percentile over 40 patients, after one warm-up call. Also: the cost per patient when 100
are explained at once (the report), and the additivity error (max |base + sum - output|).
Reference rows time SHAP's own PermutationExplainer with the same budget (3 permutations,
50 background rows), first call included (it compiles its maskers with numba), to justify
permed's vectorized permutation explainer (permed/explain/_shap.py).
Datasets: breast cancer (30 numeric features) and UCI Cleveland (../shared/data, if present;
numeric and coded categorical features, missing values).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import cleveland, print_table, write_results  # noqa: E402
from permed.explain import background_sample, explain_pipeline  # noqa: E402
from permed.ingest import load_dataset  # noqa: E402
from permed.models.diagnose import available_models  # noqa: E402
from permed.models.diagnose._registry import READS_EVENTS  # noqa: E402
from permed.study import FittedSchema, Study, validate  # noqa: E402
from permed.workflow._cv import build_pipeline  # noqa: E402

SEED, SINGLE, BATCH = 42, 40, 100


def _prepare(frame: pd.DataFrame, target: str) -> tuple[FittedSchema, pd.DataFrame, np.ndarray]:
    study = Study(task="diagnose", target=target)
    kinds = validate(frame, study).kinds
    labels = frame[target].astype(str)
    classes = sorted(labels.unique())
    schema = FittedSchema.from_frame(frame, kinds, study, classes)
    return schema, schema.coerce(frame), (labels == classes[-1]).to_numpy().astype(int)


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _family(name: str, schema: FittedSchema, features: pd.DataFrame, y: np.ndarray) -> dict:
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(features))
    train, test = features.iloc[order[:-BATCH]], features.iloc[order[-BATCH:]]
    pipeline = build_pipeline(name, schema, SEED, "cpu", False).fit(train, y[order[:-BATCH]])
    background = background_sample(train, 100, SEED)
    explain_pipeline(pipeline, test.iloc[[0]], background)  # warm-up: imports, first calls
    single = [_timed(lambda i=i: explain_pipeline(pipeline, test.iloc[[i]], background))
              for i in range(SINGLE)]
    started = time.perf_counter()
    batch = explain_pipeline(pipeline, test, background)
    per_patient_batch = (time.perf_counter() - started) / len(test)
    error = np.abs(batch.predicted()[:, 0] - pipeline.predict_proba(test)[:, 1]).max()
    return {"model": name, "explainer": batch.method, "features": len(batch.features),
            "median_ms": 1000 * float(np.median(single)),
            "p95_ms": 1000 * float(np.percentile(single, 95)),
            "batch_ms_per_patient": 1000 * per_patient_batch,
            "additivity_error": float(error)}


def _shap_reference(name: str, schema: FittedSchema, features: pd.DataFrame,
                    y: np.ndarray) -> dict:
    """SHAP's PermutationExplainer on the same function, budget and background."""
    import shap

    from permed.explain._shap import _Codec

    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(features))
    train, test = features.iloc[order[:-BATCH]], features.iloc[order[-BATCH:]]
    pipeline = build_pipeline(name, schema, SEED, "cpu", False).fit(train, y[order[:-BATCH]])
    background = background_sample(train, 100, SEED).iloc[:50]
    codec = _Codec(test, background)
    evals = 3 * (2 * len(codec.columns) + 1)
    explainer = shap.PermutationExplainer(
        lambda m: pipeline.predict_proba(codec.decode(m))[:, 1],
        shap.maskers.Independent(codec.encode(background), max_samples=50), seed=SEED)
    patients = codec.encode(test)
    first = _timed(lambda: explainer(patients[:1], max_evals=evals, batch_size=evals,
                                     silent=True))
    single = [_timed(lambda i=i: explainer(patients[i:i + 1], max_evals=evals,
                                           batch_size=evals, silent=True))
              for i in range(1, SINGLE)]
    return {"model": f"{name} (shap.PermutationExplainer)", "explainer": "shap permutation",
            "features": len(codec.columns), "median_ms": 1000 * float(np.median(single)),
            "p95_ms": 1000 * float(np.percentile(single, 95)), "first_call_ms": 1000 * first}


def main() -> None:
    datasets = {"breast_cancer": (load_dataset("breast_cancer"), "diagnosis")}
    heart = cleveland()
    if heart is not None:
        datasets["cleveland"] = (heart, "disease")
    results: dict[str, list[dict]] = {}
    for dataset, (frame, target) in datasets.items():
        schema, features, y = _prepare(frame, target)
        rows = [_family(name, schema, features, y) for name in available_models()
                if name not in READS_EVENTS]  # gru reads an events column these tables lack
        rows += [_shap_reference(name, schema, features, y) for name in ("logistic", "mlp")
                 if name in available_models()]
        results[dataset] = rows
        print(f"\n{dataset}: per-patient explanation latency (ms), one patient at a time")
        print_table([{**r, **{k: f"{r[k]:.1f}" for k in ("median_ms", "p95_ms",
                                                         "batch_ms_per_patient", "first_call_ms")
                              if k in r},
                      "additivity_error": f"{r['additivity_error']:.1e}"
                      if "additivity_error" in r else ""} for r in rows],
                    ["model", "explainer", "features", "median_ms", "p95_ms",
                     "batch_ms_per_patient", "first_call_ms", "additivity_error"])
    path = write_results("explain", {
        "protocol": f"{SINGLE} patients explained one at a time after a warm-up call; "
                    f"{BATCH} at once for the batch figure; background 100 development rows "
                    "resampled column by column (permutation explainers use 50); probability "
                    "scale; seed 42",
        "results": results})
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
