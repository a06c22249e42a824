"""The explanation steps of risk and treat runs: SHAP of the absolute risk, of the benefit.

Like the diagnose step (workflow/_explain.py) they run on the final model after the test
evaluation and never change a prediction: they store a background sample of development
patients in the model (so ``permed predict --explain`` works from the bundle) and explain a
seeded sample of test patients (``explanations`` in metrics.json, per-patient values in
explanations.json, read by the report's explanation section).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from permed.explain import background_sample, explanation_summary
from permed.explain._model import feature_units
from permed.explain._outcomes import explain_effect, explain_risk
from permed.study import Study

__all__ = ["actionable_features", "explain_risk_step", "explain_treat_step", "summarize",
           "test_sample"]

BACKGROUND_ROWS = 100
# Test patients explained for the report. The permutation explainer scores about
# 300 x (features + 1) rows a patient: 40 patients keep the step within seconds for the
# forest and boosting families on a few thousand patients.
MAX_PATIENTS = 40


def actionable_features(study: Study) -> dict[str, str | None]:
    """The study's actionable features with their monotone constraint (None: either way),
    kept in the model for counterfactuals."""
    return {c: (study.columns[c].monotone if c in study.columns else None)
            for c in study.actionable}


def test_sample(test: pd.DataFrame, limit: int, seed: int) -> tuple[np.ndarray, str]:
    """Positions of at most ``limit`` test patients drawn at random (sorted), and the words
    for metrics.json's ``sample``."""
    n = min(len(test), limit)
    picked = np.sort(np.random.default_rng(seed).choice(len(test), n, replace=False))
    sample = ("every test patient" if n == len(test)
              else f"{n} of {len(test)} test patients, drawn at random")
    return picked, sample


def summarize(model: Any, explanation: Any, rows: np.ndarray, sample: str
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``explanations`` entry of metrics.json and ``{"explanations.json": ...}``."""
    entry, content = explanation_summary(explanation, rows, units=feature_units(model),
                                         background_rows=len(model.background))
    entry["sample"] = sample
    return entry, {"explanations.json": content}


def explain_risk_step(model: Any, development: pd.DataFrame, test: pd.DataFrame,
                      rows: np.ndarray, study: Study,
                      seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Explain a risk model's absolute risk by its middle horizon on test patients.

    Parameters
    ----------
    model : RiskModel
        Gets its ``background``.
    development : DataFrame
        The development features (typed by the schema).
    test : DataFrame
        The test rows as read.
    rows : ndarray
        The ``row`` of each test patient in ``predictions.csv``.
    study : Study
        Its actionable features are kept in the model for counterfactuals.
    seed : int

    Returns
    -------
    (dict, dict)
        The ``explanations`` entry of metrics.json and ``{"explanations.json": ...}``.
    """
    model.background = background_sample(development, BACKGROUND_ROWS, seed)
    model.actionable = actionable_features(study)
    picked, sample = test_sample(test, MAX_PATIENTS, seed)
    explanation = explain_risk(model, test.iloc[picked], time_unit=model.time_unit, seed=seed)
    return summarize(model, explanation, rows[picked], sample)


def explain_treat_step(model: Any, development: pd.DataFrame, test: pd.DataFrame,
                       rows: np.ndarray, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Explain a treat model's expected benefit of each arm on test patients.

    As :func:`explain_risk_step`, for a TreatModel.
    """
    model.background = background_sample(development, BACKGROUND_ROWS, seed)
    picked, sample = test_sample(test, MAX_PATIENTS, seed)
    explanation = explain_effect(model, test.iloc[picked], seed=seed)
    return summarize(model, explanation, rows[picked], sample)
