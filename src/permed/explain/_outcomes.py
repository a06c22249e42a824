"""Explanations of the risk and treat answers: absolute risk at a horizon, treatment benefit.

A survival model's risk score has no unit a clinician can weigh, so a risk model is explained
on the absolute risk of the event by one horizon ("age 72 raises the risk of death by 1825
days by 4.1 points"), and a treat model on each arm's expected benefit over the reference arm
("CD4 count 210 raises the expected gain in cd4_20 with zidovudine + didanosine by 12.3").
Both are functions of the whole pipeline, so they use the model-agnostic permutation
explainer (:func:`permed.explain.explain_function`), exactly additive per patient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from permed.explain._model import feature_units, model_background
from permed.explain._shap import DEFAULT_PERMUTATIONS, Explanation, explain_function
from permed.explain._text import explanation_frame

__all__ = ["explain_effect", "explain_outcome_frame", "explain_risk", "middle_horizon",
           "risk_output"]


def middle_horizon(model: Any) -> float:
    """The horizon a risk model is explained at by default: the middle one of its horizons."""
    return float(sorted(model.horizons)[len(model.horizons) // 2])


def _horizon_text(horizon: float) -> str:
    return str(int(horizon)) if float(horizon).is_integer() else f"{horizon:g}"


def risk_output(model: Any, horizon: float, time_unit: str | None = None) -> str:
    """``risk of the event (status = dead) by 1825 days``: what a risk explanation's
    contributions add up to (the event value is a code, not a noun: 'risk of dead')."""
    event = (f"{model.event_column} = {model.event_value}" if model.event_value
             else model.event_column)
    unit = f" {time_unit}" if time_unit else ""
    return f"risk of the event ({event}) by {_horizon_text(horizon)}{unit}"


def explain_risk(model: Any, frame: pd.DataFrame, *, horizon: float | None = None,
                 time_unit: str | None = None, permutations: int = DEFAULT_PERMUTATIONS,
                 seed: int = 0) -> Explanation:
    """SHAP values of a risk model's absolute risk by ``horizon``, per original feature.

    Parameters
    ----------
    model : RiskModel
        A trained risk model with its explanation background.
    frame : DataFrame
        Patients with the columns the model was trained on.
    horizon : float, optional
        Default: the model's middle horizon.
    time_unit : str, optional
        Shown after the horizon in the sentences.
    permutations : int, default 3
    seed : int, default 0

    Returns
    -------
    Explanation
        On the ``"risk"`` scale (a probability, told in percentage points).

    Raises
    ------
    SchemaMismatchError
        When columns the model needs are missing.
    BundleError
        When the model was saved without an explanation background.
    """
    background = model_background(model)
    model.schema.check(frame)
    if horizon is None:
        horizon = middle_horizon(model)
    times = np.asarray([horizon], dtype=np.float64)

    def absolute_risk(features: pd.DataFrame) -> np.ndarray:
        return 1.0 - model.survival(features, times)[:, 0]

    output = risk_output(model, horizon, time_unit)
    return explain_function(absolute_risk, model.schema.coerce(frame), background,
                            outputs=[output], scale="risk",
                            description=f"the model's absolute {output}",
                            permutations=permutations, seed=seed)


def _benefit(model: Any) -> tuple[Callable[[pd.DataFrame], np.ndarray], list[str]]:
    """Each arm's expected benefit over the reference arm (positive = better), and labels."""
    sign = 1.0 if model.higher_is_better else -1.0
    change = "gain" if model.higher_is_better else "reduction"
    labels = [f"expected {change} in {model.outcome} with {arm} instead of {model.arms[0]}"
              for arm in model.arms[1:]]

    def benefit(features: pd.DataFrame) -> np.ndarray:
        effects = np.asarray(model.estimator.effect(model.preprocess.transform(features)))
        return sign * effects.reshape(len(features), -1)

    return benefit, labels


def explain_effect(model: Any, frame: pd.DataFrame, *,
                   permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0) -> Explanation:
    """SHAP values of a treat model's expected benefit of each arm over the reference arm.

    One output per non-reference arm; a patient's sentence tells the output of the arm with
    the largest benefit. For a binary outcome the benefit is a difference of probabilities,
    told in percentage points.

    Raises
    ------
    SchemaMismatchError
        When columns the model needs are missing.
    BundleError
        When the model was saved without an explanation background.
    """
    background = model_background(model)
    model.schema.check(frame)
    benefit, labels = _benefit(model)
    return explain_function(benefit, model.schema.coerce(frame), background, outputs=labels,
                            scale="risk" if model.binary_outcome else "output",
                            description="each arm's expected benefit over "
                                        f"{model.arms[0]} ({model.outcome})",
                            permutations=permutations, seed=seed)


def explain_outcome_frame(explanation: Explanation, model: Any, top: int = 3) -> pd.DataFrame:
    """Explanation columns for a prediction table (see :func:`permed.explain.explanation_frame`)."""
    return explanation_frame(explanation, top, feature_units(model))
