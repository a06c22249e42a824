"""Explanations: SHAP values on the original features, plain-words factors, counterfactuals.

>>> from permed.bundle import load_bundle
>>> model, _ = load_bundle("runs/heart")  # doctest: +SKIP
>>> explain_model_frame(model, new_patients).explanation[0]  # doctest: +SKIP
'thalach 108 raises the probability of disease = 1 by 9.3 points; ...'
>>> counterfactual(model, new_patients.iloc[[0]]).best.text()  # doctest: +SKIP
'lower chol from 290 to 231'

The building blocks are generic, so a risk score or a treatment effect is explained the same
way: :func:`explain_pipeline` with ``scale=lambda est, X: est.predict(X)``, or
:func:`explain_function` for any function of the original features, and
:func:`search_counterfactuals` with any score and goal.
"""

from permed.explain._counterfactual import (
    Change,
    Counterfactual,
    CounterfactualSearch,
    FeatureMoves,
    counterfactual,
    risk_counterfactual,
    search_counterfactuals,
)
from permed.explain._groups import group_columns, source_features
from permed.explain._model import (
    EXPLAINERS,
    explain_model,
    explain_model_frame,
    explanation_summary,
    outcome_label,
)
from permed.explain._shap import (
    SCALES,
    Explanation,
    background_sample,
    choose_method,
    explain_function,
    explain_pipeline,
)
from permed.explain._text import (
    Factor,
    explanation_frame,
    factor_text,
    patient_factors,
    patient_text,
    value_text,
)

__all__ = [
    "EXPLAINERS",
    "SCALES",
    "Change",
    "Counterfactual",
    "CounterfactualSearch",
    "Explanation",
    "Factor",
    "FeatureMoves",
    "background_sample",
    "choose_method",
    "counterfactual",
    "explain_function",
    "explain_model",
    "explain_model_frame",
    "explain_pipeline",
    "explanation_frame",
    "explanation_summary",
    "factor_text",
    "group_columns",
    "outcome_label",
    "patient_factors",
    "patient_text",
    "risk_counterfactual",
    "search_counterfactuals",
    "source_features",
    "value_text",
]
