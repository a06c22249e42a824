"""Explanations of a trained diagnose model, and the summary a run directory keeps of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from permed.exceptions import BundleError
from permed.explain._shap import (
    DEFAULT_PERMUTATIONS,
    SCALES,
    Explanation,
    _logit,
    choose_method,
    explain_function,
    explain_pipeline,
)
from permed.explain._text import (
    _output_index,
    explanation_frame,
    patient_factors,
    patient_text,
    withhold_text,
)

__all__ = ["EXPLAINERS", "calibrated_contributions", "explain_model", "explain_model_frame",
           "explanation_summary", "outcome_label"]

EXPLAINERS = {
    "tree": "SHAP TreeExplainer (exact TreeSHAP)",
    "linear": "SHAP LinearExplainer (exact for a linear model, independent features)",
    "permutation": "permutation SHAP (model-agnostic; SHAP's PermutationExplainer estimator, "
                   "vectorized over patients; exactly additive)",
}
_DIGITS = 6
# An explained output this close to its base has no secant slope through the calibration.
_FLAT = 1e-12


def feature_units(model: Any) -> dict[str, str | None]:
    return {f.name: f.unit for f in model.schema.features}


def model_background(model: Any) -> pd.DataFrame:
    """The explanation background a trained model carries (BundleError when it has none)."""
    background = getattr(model, "background", None)
    if background is None:
        raise BundleError("this model carries no explanation background (it was trained by a "
                          "permed without explanations): train it again to explain it")
    return background


def outcome_label(target: str | None, label: str) -> str:
    """How a class reads in a sentence: ``malignant``, but ``disease = 1`` for a code."""
    try:
        float(label)
    except ValueError:
        return label if label.lower() not in ("true", "false", "yes", "no") or not target \
            else f"{target} = {label}"
    return f"{target} = {label}" if target else label


def _calibrator(model: Any) -> Any:
    """The model's calibration map, or None where its answers are the pipeline's own."""
    calibrator = getattr(model, "calibrator", None)
    return None if calibrator is None or calibrator.method == "none" else calibrator


def _description(model: Any, scale: str) -> str:
    """What an explanation of ``model`` on ``scale`` adds up to, and in which unit."""
    target, classes = model.schema.target or "the outcome", model.classes
    calibrated = "calibrated " if _calibrator(model) is not None else ""
    if len(classes) == 2:
        what, column = f"of {target} = {classes[1]}", f"prob_{classes[1]}"
    else:
        what, column = f"of each class of {target}", "prob_<class>"
    if scale == "probability":
        return (f"the model's {calibrated}probability {what} ({column}), from 0 to 1; the "
                "sentences tell each factor in percentage points")
    return f"the {scale} of the model's {calibrated}probability {what} ({column})"


def _probabilities(explained: np.ndarray, scale: str, n_classes: int) -> np.ndarray:
    """Class probabilities (n, K) from explained outputs on ``scale`` (the positive class of
    a binary model, every class otherwise)."""
    p = explained if scale == "probability" else 1.0 / (1.0 + np.exp(-explained))
    return np.column_stack([1.0 - p[:, 0], p[:, 0]]) if n_classes == 2 else p


def _on_scale(proba: np.ndarray, scale: str, indices: Sequence[int]) -> np.ndarray:
    p = proba[:, list(indices)]
    return p if scale == "probability" else _logit(p)


def calibrated_contributions(model: Any, values: np.ndarray, base_values: np.ndarray,
                             scale: str) -> tuple[np.ndarray, np.ndarray]:
    """Contributions to the model's output before calibration carried to its calibrated one.

    An exact tree or linear explainer cannot take the calibration map in: each patient's
    contributions are multiplied by the map's slope between the base and the patient (its
    secant), and the base is the calibrated base. The factors then add up to the calibrated
    output; calibration is monotone (a binary model's), so every factor keeps its direction
    and its rank. Where the patient's output equals the base the factors are kept as they are.
    """
    calibrator = _calibrator(model)
    if calibrator is None:
        return values, base_values
    n, n_classes = len(values), len(model.classes)
    indices = [1] if n_classes == 2 else list(range(n_classes))
    explained = base_values + values.sum(axis=1)
    both = np.concatenate([explained, base_values])  # one call of the calibrator
    mapped = _on_scale(calibrator.transform(_probabilities(both, scale, n_classes)), scale,
                       indices)
    change, before = mapped[:n] - mapped[n:], explained - base_values
    flat = np.abs(before) < _FLAT
    slope = np.where(flat, 1.0, change / np.where(flat, 1.0, before))
    return values * slope[:, None, :], mapped[n:]


def explain_model(model: Any, frame: pd.DataFrame, *, scale: str = "probability",
                  method: str = "auto", permutations: int = DEFAULT_PERMUTATIONS,
                  seed: int = 0) -> Explanation:
    """SHAP values of a trained diagnose model for some patients, per original feature.

    What is explained is what the model answers: its calibrated probability (``prob_<class>``
    of ``predict_frame``), so a patient's base value plus contributions equals that answer.
    The model-agnostic (permutation) explainer explains the calibrated probability itself;
    an exact tree or linear explainer explains the probability before calibration, and its
    contributions are carried through the calibration (:func:`calibrated_contributions`:
    each patient's are scaled by the same positive factor, so directions and ranks are kept).

    A note is explained as a whole, against no note (the background's notes are empty), and
    its text is never kept: the explanation's ``data`` holds ``(free text)`` or ``(no text)``
    in its place (:func:`permed.explain._text.withhold_text`), so neither its sentences,
    explanations.json nor ``permed predict --explain`` can repeat a note.

    Parameters
    ----------
    model : DiagnoseModel
        A trained model (``permed.bundle.load_bundle``) with its explanation background.
    frame : DataFrame
        Patients with the columns the model was trained on (others are ignored).
    scale : {"probability", "log-odds"}, default "probability"
        The output explained: the model's calibrated probability of the positive class (of
        each class with more than two), from 0 to 1, or its log-odds.
    method : {"auto", "tree", "linear", "permutation"}, default "auto"
        See :func:`permed.explain.explain_pipeline`.
    permutations : int, default 3
        Permutations per patient for the model-agnostic explainer.
    seed : int, default 0

    Returns
    -------
    Explanation

    Raises
    ------
    SchemaMismatchError
        When columns the model needs are missing.
    BundleError
        When the model was saved without an explanation background.
    """
    background = model_background(model)
    model.schema.check(frame)
    classes = model.classes
    indices = [1] if len(classes) == 2 else list(range(len(classes)))
    options: dict[str, Any] = {
        "outputs": [outcome_label(model.schema.target, str(classes[k])) for k in indices],
        "description": _description(model, scale), "permutations": permutations, "seed": seed}
    features, calibrator = model.schema.coerce(frame), _calibrator(model)
    chosen = choose_method(model.pipeline, scale) if method == "auto" else method
    if calibrator is not None and chosen == "permutation" and scale in SCALES:
        pipeline = model.pipeline

        def answered(rows: pd.DataFrame) -> np.ndarray:
            return _on_scale(calibrator.transform(pipeline.predict_proba(rows)), scale, indices)

        explanation = explain_function(answered, features, background, scale=scale, **options)
        return withhold_text(explanation, model.schema.notes)
    explanation = explain_pipeline(model.pipeline, features, background, scale=scale,
                                   classes=indices, method=method, **options)
    explanation.values, explanation.base_values = calibrated_contributions(
        model, explanation.values, explanation.base_values, scale)
    return withhold_text(explanation, model.schema.notes)


def explain_model_frame(model: Any, frame: pd.DataFrame, top: int = 3,
                        **options: Any) -> pd.DataFrame:
    """Explanation columns for a prediction table, one row per row of ``frame``.

    ``options`` go to :func:`explain_model`; see :func:`permed.explain.explanation_frame` for
    the columns.
    """
    explanation = explain_model(model, frame, **options)
    return explanation_frame(explanation, top, feature_units(model))


def _json_value(value: object) -> object:
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return None
    if isinstance(value, np.integer | np.floating):
        return value.item()
    return value if isinstance(value, int | float | str | bool) else str(value)


def _color(column: pd.Series) -> list[float | None]:
    """Feature values as ranks in [0, 1] for the beeswarm colours (None: missing or text)."""
    if not pd.api.types.is_numeric_dtype(column):
        return [None] * len(column)
    ranks = column.rank(pct=True, method="average")
    return [None if np.isnan(r) else round(float(r), 3) for r in ranks]


def explanation_summary(explanation: Explanation, rows: Sequence[int], *,
                        units: Mapping[str, str | None] | None = None, top: int = 3,
                        background_rows: int | None = None,
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a run keeps of an explanation: global importance, and per-patient values.

    Parameters
    ----------
    explanation : Explanation
        Of a sample of test patients.
    rows : sequence of int
        The ``row`` of each explained patient in ``predictions.csv``.
    units : mapping, optional
        Feature units for the sentences.
    top : int, default 3
        Factors told per patient.
    background_rows : int, optional
        Background patients used (recorded).

    Returns
    -------
    (dict, dict)
        The ``explanations`` entry of metrics.json (method, scale, global importance) and
        the content of explanations.json (per-patient contributions, sentences and the
        feature-value ranks the beeswarm is coloured by); see docs/run-directory.md.
    """
    importance = explanation.importance()
    order = [explanation.features.index(f) for f in importance.index]
    entry = {
        "method": explanation.method,
        "explainer": EXPLAINERS.get(explanation.method, explanation.method),
        "scale": explanation.scale,
        "output": explanation.description,
        "patients": len(rows),
        "background_rows": background_rows,
        "importance": {f: round(float(v), _DIGITS) for f, v in importance.items()},
        "file": "explanations.json",
    }
    told = [_output_index(explanation, i) for i in range(len(rows))]
    predicted = explanation.predicted()
    patients = []
    for i, row in enumerate(rows):
        k = told[i]
        patients.append({
            "row": int(row), "output": explanation.outputs[k],
            "base_value": round(float(explanation.base_values[i, k]), _DIGITS),
            "prediction": round(float(predicted[i, k]), _DIGITS),
            "text": patient_text(explanation, i, top, units),
            "factors": [{"feature": f.feature, "value": _json_value(f.value),
                         "contribution": round(f.contribution, _DIGITS)}
                        for f in patient_factors(explanation, i, max(top, 5))],
        })
    values = np.stack([explanation.values[i, order, told[i]] for i in range(len(rows))]) \
        if len(rows) else np.zeros((0, len(order)))
    colors = [_color(explanation.data.iloc[:, j]) for j in order]
    content = {
        "scale": explanation.scale, "output": explanation.description,
        "method": explanation.method, "outputs": explanation.outputs,
        "features": list(importance.index),
        "patients": patients,
        "values": np.round(values, _DIGITS).tolist(),
        "color": [list(c) for c in zip(*colors, strict=True)] if colors else [],
    }
    return entry, content
