"""Diagnose (classification) model families."""

from permed.models.diagnose._registry import (
    DIAGNOSE_MODELS,
    ModelFamily,
    available_models,
    default_models,
    make_model,
)
from permed.models.diagnose._scorecard import ScorecardClassifier

__all__ = ["DIAGNOSE_MODELS", "ModelFamily", "ScorecardClassifier", "available_models",
           "default_models", "make_model"]
