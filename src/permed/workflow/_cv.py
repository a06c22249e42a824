"""Cross-validated comparison (and optional Optuna tuning) of candidate models.

Preprocessing is part of each candidate's pipeline, so it is fitted inside every fold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from permed.engine import Engine, Progress, as_items
from permed.evaluate import cv_summary, point_metrics
from permed.models.diagnose import DIAGNOSE_MODELS, make_model
from permed.preprocess import make_preprocessor
from permed.study import FittedSchema
from permed.workflow._tuning import TuningVerdict, search

__all__ = ["CVResult", "FoldData", "build_pipeline", "cross_validate", "describe_fold", "tune"]

CLIP_QUANTILES = (0.005, 0.995)


@dataclass
class FoldData:
    """Development data and folds shared by every candidate."""

    features: pd.DataFrame
    y: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    schema: FittedSchema
    clip: bool
    seed: int
    device: str


@dataclass
class CVResult:
    """One model's out-of-fold predictions and per-fold metrics."""

    name: str
    params: dict[str, Any]
    oof: np.ndarray
    fold_metrics: list[dict[str, float]]
    seconds: float
    trials: int = 0
    summary: dict[str, dict[str, float]] = field(default_factory=dict)


def build_pipeline(name: str, schema: FittedSchema, seed: int, device: str, clip: bool,
                   params: dict[str, Any] | None = None) -> Pipeline:
    """Preprocessing + one estimator, unfitted."""
    preprocess = make_preprocessor(schema.numeric, schema.categorical,
                                   CLIP_QUANTILES if clip else None, schema.genes, schema.notes,
                                   schema.text_encoder or "tfidf")
    model = make_model(name, seed, device, params)
    if getattr(model, "reads_events", False):  # the GRU over --events: models/deep/_sequence.py
        from permed.models.deep._sequence import with_events

        preprocess, model = with_events(preprocess, model, schema.events)
    return Pipeline([("preprocess", preprocess), ("model", model)])


def _fit_fold(task: tuple[FoldData, str, dict[str, Any], int]) -> tuple[int, np.ndarray, float]:
    data, name, params, k = task
    train, val = data.folds[k]
    started = time.perf_counter()
    pipeline = build_pipeline(name, data.schema, data.seed, data.device, data.clip, params)
    pipeline.fit(data.features.iloc[train], data.y[train])
    return k, pipeline.predict_proba(data.features.iloc[val]), time.perf_counter() - started


def describe_fold(task: tuple[Any, str, dict[str, Any], int]) -> str:
    """A failed (data, model, settings, fold) task by its model, fold and settings: never its
    data, which holds the patients' table."""
    _, name, params, k = task
    return f"model={name} fold={k + 1} params={params}"


def _collect(data: FoldData, name: str, params: dict[str, Any],
             results: list[tuple[int, np.ndarray, float]]) -> CVResult:
    n_classes = len(data.schema.classes)
    oof = np.zeros((len(data.y), n_classes))
    fold_metrics, seconds = [], 0.0
    for k, proba, spent in sorted(results, key=lambda r: r[0]):
        val = data.folds[k][1]
        oof[val] = proba
        fold_metrics.append(point_metrics(data.y[val], proba, threshold=0.5))
        seconds += spent
    result = CVResult(name, params, oof, fold_metrics, seconds)
    result.summary = cv_summary(fold_metrics)
    return result


def cross_validate(data: FoldData, names: list[str], engine: Engine, progress: Progress,
                   params: dict[str, dict[str, Any]] | None = None) -> dict[str, CVResult]:
    """Fit every (model, fold) pair through the engine; return each model's CV result."""
    params = params or {}
    tasks = [(data, name, params.get(name, {}), k)
             for name, k in as_items(names, range(len(data.folds)))]
    outputs = engine.map(_fit_fold, tasks, label="cross-validation", progress=progress,
                         describe=describe_fold)
    by_model: dict[str, list] = {name: [] for name in names}
    for (_, name, _, _), output in zip(tasks, outputs, strict=True):
        by_model[name].append(output)
    return {name: _collect(data, name, params.get(name, {}), by_model[name]) for name in names}


def tune(data: FoldData, names: list[str], budget: float, engine: Engine, progress: Progress,
         base: dict[str, dict[str, Any]]) -> dict[str, tuple[dict[str, Any], TuningVerdict]]:
    """Optuna search per model within ``budget`` seconds in all; scored by mean CV AUROC.

    Each model's ``base`` settings (its defaults) are scored first on the same folds, and a
    trial's settings go on top of them. The best trial replaces the defaults only when clearly
    better after allowing for the optimism of picking it
    (:data:`~permed.workflow._tuning.TUNING_RULE`). Returns each model's settings and the
    verdict behind them.
    """
    share = budget / max(1, len(names))
    best: dict[str, tuple[dict[str, Any], TuningVerdict]] = {}

    def folds(name: str, params: dict[str, Any], label: str) -> list[float]:
        tasks = [(data, name, params, k) for k in range(len(data.folds))]
        outputs = engine.map(_fit_fold, tasks, label=label, describe=describe_fold)
        return [m["auroc"] for m in _collect(data, name, params, outputs).fold_metrics]

    with progress.step("tuning", total=len(names)) as advance:
        for name in names:
            best[name] = search(name, lambda params, label, name=name: folds(name, params, label),
                                DIAGNOSE_MODELS[name].space, share, data.seed,
                                mean=lambda found: float(np.nanmean(found)),
                                base=base.get(name, {}))
            advance()
    return best
