"""Risk (time-to-event) models: ``predict`` gives a risk score (higher = earlier event) and
``predict_survival_function`` the probability of being event-free at chosen times.

The outcome is scikit-survival's structured array, built with :func:`survival_y`.
"""

from permed.models.risk._boosting import SurvivalBoosting
from permed.models.risk._cox import PenalizedCox
from permed.models.risk._cox_splines import SplineCox
from permed.models.risk._ensemble import RankEnsemble
from permed.models.risk._forest import SurvivalForest
from permed.models.risk._outcome import split_survival_y, survival_y
from permed.models.risk._registry import (
    RISK_MODELS,
    available_models,
    default_models,
    make_model,
)

__all__ = [
    "RISK_MODELS",
    "PenalizedCox",
    "RankEnsemble",
    "SplineCox",
    "SurvivalBoosting",
    "SurvivalForest",
    "available_models",
    "default_models",
    "make_model",
    "split_survival_y",
    "survival_y",
]
