"""Treatment-effect estimators: per-patient effects, their intervals and a recommendation.

Every estimator is fitted on ``(X, y, treatment)`` and speaks one vocabulary: ``effect``,
``effect_interval``, ``recommend`` (plus ``predict_outcomes`` / ``outcome_interval``, the
expected outcome under each arm). See ``permed.models.treat._base`` for the conventions.
"""

from permed.models.treat._causal_forest import CausalForest
from permed.models.treat._drlearner import DRLearner
from permed.models.treat._registry import (
    OUTCOME_MODELS,
    PROPENSITY_MODELS,
    TREAT_MODELS,
    TreatFamily,
    default_models,
    make_model,
    make_outcome_model,
    make_propensity_model,
)
from permed.models.treat._tlearner import TLearner
from permed.models.treat._xlearner import XLearner

__all__ = [
    "OUTCOME_MODELS",
    "PROPENSITY_MODELS",
    "TREAT_MODELS",
    "CausalForest",
    "DRLearner",
    "TLearner",
    "TreatFamily",
    "XLearner",
    "default_models",
    "make_model",
    "make_outcome_model",
    "make_propensity_model",
]
