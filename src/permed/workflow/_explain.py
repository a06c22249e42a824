"""The explanation step of a diagnose run: SHAP on test patients, and the scorecard's table.

It runs after the test evaluation, on the final model: it never changes a prediction. It
stores the SHAP background and the actionable features in the model (so ``permed predict
--explain`` and counterfactuals work from the bundle), explains a sample of test patients
(``explanations`` in metrics.json, per-patient values in explanations.json), and, when the
points scorecard was compared, its points table and accuracy cost (``scorecard``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from permed.explain import background_sample, choose_method, explain_model
from permed.explain._groups import source_features
from permed.study import Study
from permed.workflow._cv import CVResult, FoldData, build_pipeline
from permed.workflow._explain_outcomes import actionable_features, summarize, test_sample
from permed.workflow._fitted import DiagnoseModel

__all__ = ["ExplainInputs", "explain_step", "scorecard_summary"]

BACKGROUND_ROWS = 100
# Test patients explained for the report: every one up to these numbers, else a seeded sample.
# The permutation explainer costs ~15-150 ms a patient on two cores (benchmarks/explain.py),
# TreeSHAP a few ms: 60 patients keep the step within a few seconds of `permed demo`.
MAX_PATIENTS = {"tree": 200, "linear": 200, "permutation": 60}
# Its cost grows with the features: thousands of genes would take hours (and memory).
MAX_PERMUTATION_FEATURES = 500
# The scorecard's risk table: the smallest total reaching each of these probabilities.
_RISK_LEVELS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass
class ExplainInputs:
    """What the explanation step reads from the diagnose protocol."""

    model: DiagnoseModel
    data: FoldData
    test: pd.DataFrame
    rows: np.ndarray
    study: Study
    results: dict[str, CVResult]
    seed: int


def explain_step(inputs: ExplainInputs) -> tuple[dict[str, Any], dict[str, Any]]:
    """Explain the final model; return new metrics.json entries and extra run files.

    Returns
    -------
    (dict, dict)
        ``{"explanations": ..., "scorecard": ...}`` (the latter when the scorecard was
        compared on a binary target) and ``{"explanations.json": ...}``.
    """
    model = inputs.model
    # notes are never copied into the bundle: the background's are empty (explain/_shap.py)
    model.background = background_sample(inputs.data.features, BACKGROUND_ROWS, inputs.seed,
                                         text_columns=model.schema.notes)
    model.actionable = actionable_features(inputs.study)
    method = choose_method(model.pipeline)
    if method == "permutation" and len(model.schema.features) > MAX_PERMUTATION_FEATURES:
        return {"explanations": {"skipped": (
            f"{len(model.schema.features)} features (genes) are too many for the "
            f"model-agnostic explainer (at most {MAX_PERMUTATION_FEATURES}); "
            "choose a linear or tree model (--models elasticnet,lightgbm) to explain it")}}, {}
    picked, sample = test_sample(inputs.test, MAX_PATIENTS[method], inputs.seed)
    explanation = explain_model(model, inputs.test.iloc[picked], seed=inputs.seed)
    entry, files = summarize(model, explanation, inputs.rows[picked], sample)
    metrics: dict[str, Any] = {"explanations": entry}
    if "scorecard" in inputs.results and len(model.classes) == 2:
        metrics["scorecard"] = scorecard_summary(inputs)
    return metrics, files


# ---- the scorecard's points table -------------------------------------------------------------


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def _feature_points(pipeline: Pipeline, base: pd.DataFrame, feature: str,
                    values: list[object], owned: np.ndarray) -> list[int]:
    probes = pd.concat([base] * len(values), ignore_index=True)
    probes[feature] = pd.Series(values, dtype=base[feature].dtype)
    points = pipeline[-1].column_points(pipeline[:-1].transform(probes))
    return [int(p) for p in points[:, owned].sum(axis=1)]


def _original_edges(pipeline: Pipeline, base: pd.DataFrame, feature: str, column: int,
                    reference: pd.Series) -> np.ndarray:
    """The scorecard's band edges of a numeric feature, mapped back to its own units.

    Preprocessing of one numeric column (clip, impute, scale) is affine between its clip
    quantiles, so two probe values give the inverse map.
    """
    low, high = np.nanquantile(reference, [0.25, 0.75])
    if low == high:
        low, high = np.nanmin(reference), np.nanmax(reference)
    probes = pd.concat([base, base], ignore_index=True)
    probes[feature] = [low, high]
    scaled = pipeline[:-1].transform(probes)[:, column]
    edges = pipeline[-1].band_edges_[column]
    if scaled[1] == scaled[0]:
        return np.asarray(edges, dtype=float)
    return low + (edges - scaled[0]) * (high - low) / (scaled[1] - scaled[0])


def _numeric_bands(pipeline: Pipeline, base: pd.DataFrame, spec: Any, column: int,
                   owned: np.ndarray, reference: pd.Series) -> list[dict[str, Any]]:
    edges = _original_edges(pipeline, base, spec.name, column, reference)
    low, high = float(spec.min), float(spec.max)
    bounds = [low, *edges, high]
    probes = [(bounds[i] + bounds[i + 1]) / 2 for i in range(len(edges) + 1)]
    if (low, high) == (0.0, 1.0) and np.allclose(edges, [1.0]):  # a 0/1 feature
        labels = ["= 0", "= 1"]
    else:
        labels = [f"< {_fmt(edges[0])}"] if len(edges) else ["any value"]
        labels += [f"{_fmt(edges[i])} to < {_fmt(edges[i + 1])}" for i in range(len(edges) - 1)]
        labels += [f">= {_fmt(edges[-1])}"] if len(edges) else []
    if len(owned) > 1:  # a missing-value indicator belongs to the feature too
        probes.append(np.nan)
        labels.append("missing")
    points = _feature_points(pipeline, base, spec.name, probes, owned)
    return [{"band": label, "points": p} for label, p in zip(labels, points, strict=True)]


def points_table(pipeline: Pipeline, schema: Any, background: pd.DataFrame
                 ) -> list[dict[str, Any]]:
    """Per original feature, the points of each band (or category) of a fitted scorecard."""
    preprocessor = pipeline.steps[0][1]
    owners = np.array(source_features(preprocessor))
    names = [str(n) for n in preprocessor.get_feature_names_out()]
    base = background.iloc[[0]].reset_index(drop=True)
    table = []
    for spec in schema.features:
        owned = np.flatnonzero(owners == spec.name)
        if spec.kind == "numeric":
            column = next(t for t in owned if names[t].split("__", 1)[-1] == spec.name)
            bands = _numeric_bands(pipeline, base, spec, column, owned, background[spec.name])
        else:
            levels: list[object] = list(spec.categories or [])
            labels = [f"= {level}" for level in levels]
            if spec.missing_share > 0:
                levels.append(None)
                labels.append("missing")
            bands = [{"band": label, "points": p} for label, p in zip(
                labels, _feature_points(pipeline, base, spec.name, levels, owned), strict=True)]
        table.append({"feature": spec.name, "unit": spec.unit, "bands": bands})
    return table


def _risk_rows(card: Any, table: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Total points -> probability: the lowest and highest totals, and where risk crosses
    each of ``_RISK_LEVELS``."""
    top = sum(max((b["points"] for b in f["bands"]), default=0) for f in table)
    low = sum(min((b["points"] for b in f["bands"]), default=0) for f in table)
    totals = np.arange(low, top + 1)
    risk = 1.0 / (1.0 + np.exp(-(card.intercept_ + card.slope_ * totals)))
    shown = {0, len(totals) - 1}
    for level in _RISK_LEVELS:
        reached = np.flatnonzero(risk >= level) if card.slope_ >= 0 else \
            np.flatnonzero(risk <= level)
        if len(reached):
            shown.add(int(reached[0]) if card.slope_ >= 0 else int(reached[-1]))
    return [{"points": int(totals[i]), "probability": round(float(risk[i]), 4)}
            for i in sorted(shown)]


def scorecard_summary(inputs: ExplainInputs) -> dict[str, Any]:
    """The scorecard's points table, its risk per total, and its CV AUROC cost."""
    model, data = inputs.model, inputs.data
    selected = model.name == "scorecard"
    pipeline = model.pipeline if selected else build_pipeline(
        "scorecard", data.schema, data.seed, data.device, data.clip,
        inputs.results["scorecard"].params).fit(data.features, data.y)
    table = points_table(pipeline, data.schema, model.background)
    auroc = {name: result.summary["auroc"]["mean"] for name, result in inputs.results.items()}
    others = {n: a for n, a in auroc.items() if n != "scorecard" and np.isfinite(a)}
    best = max(others, key=lambda n: others[n]) if others else None
    return {
        "model": "scorecard", "selected": selected,
        "positive_class": model.classes[1],
        "features": [f for f in table if len({b["points"] for b in f["bands"]}) > 1],
        "not_scored": [f["feature"] for f in table if len({b["points"] for b in f["bands"]}) <= 1],
        "risk": _risk_rows(pipeline[-1], table),
        "risk_note": "probability of the positive class from the total points, before the "
                     "run's calibration (a logistic fit on the development patients)",
        "cv_auroc": round(float(auroc["scorecard"]), 6),
        "best_other": None if best is None else {"model": best,
                                                 "cv_auroc": round(float(others[best]), 6)},
        "auroc_cost": None if best is None else round(float(others[best] - auroc["scorecard"]),
                                                      6),
    }
