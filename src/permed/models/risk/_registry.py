"""The risk model families permed compares, with their tuning search spaces."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from permed.exceptions import PermedError
from permed.models._names import unknown_model
from permed.models.diagnose import ModelFamily
from permed.models.risk._boosting import SurvivalBoosting
from permed.models.risk._cox import PenalizedCox
from permed.models.risk._cox_splines import SplineCox
from permed.models.risk._ensemble import RankEnsemble
from permed.models.risk._forest import SurvivalForest

__all__ = ["RISK_MODELS", "available_models", "default_models", "make_model"]


def _cox(seed: int, device: str) -> BaseEstimator:
    return PenalizedCox(alpha=1.0)


def _cox_splines(seed: int, device: str) -> BaseEstimator:
    return SplineCox(alpha=1.0, n_knots=4)


def _forest(seed: int, device: str) -> BaseEstimator:
    return SurvivalForest(random_state=seed)


def _boosting(seed: int, device: str) -> BaseEstimator:
    return SurvivalBoosting(random_state=seed)


def _ensemble(seed: int, device: str) -> BaseEstimator:
    return RankEnsemble(random_state=seed)


def _deepsurv(seed: int, device: str) -> BaseEstimator:
    from permed.models.deep import DeepSurv

    return DeepSurv(random_state=seed, device=device)


def _ft_transformer(seed: int, device: str) -> BaseEstimator:
    from permed.models.deep import FTTransformerSurvival

    # the class's 10 epochs are a quick fit; a model family trains until early stopping
    return FTTransformerSurvival(max_epochs=100, patience=15, random_state=seed, device=device)


RISK_MODELS: dict[str, ModelFamily] = {
    f.name: f
    for f in (
        ModelFamily(
            "coxph", "Cox proportional hazards, ridge-penalized (scikit-survival)", _cox,
            lambda t: {"alpha": t.suggest_float("alpha", 1e-2, 1e3, log=True)}),
        ModelFamily(
            "random_survival_forest", "random survival forest (scikit-survival)", _forest,
            lambda t: {
                "min_samples_leaf": t.suggest_int("min_samples_leaf", 3, 50, log=True),
                "max_features": t.suggest_float("max_features", 0.1, 1.0),
            }),
        ModelFamily(
            "gradient_boosting", "gradient-boosted Cox model (LightGBM trees)", _boosting,
            lambda t: {
                "n_estimators": t.suggest_int("n_estimators", 50, 600, log=True),
                "learning_rate": t.suggest_float("learning_rate", 0.01, 0.3, log=True),
                "num_leaves": t.suggest_int("num_leaves", 3, 31, log=True),
                "min_child_samples": t.suggest_int("min_child_samples", 5, 100, log=True),
            }),
        ModelFamily(
            "deepsurv", "DeepSurv: Cox model with a 32-32 network (torch)", _deepsurv,
            lambda t: {
                "learning_rate": t.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
                "weight_decay": t.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
                "hidden_layer_sizes": (t.suggest_int("width", 8, 64, log=True),) * 2,
            },
            needs="torch"),
        ModelFamily(
            "ft_transformer", "FT-Transformer Cox model: feature tokens + 2 transformer blocks "
            "(torch)", _ft_transformer,
            lambda t: {
                "learning_rate": t.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
                "d_token": t.suggest_categorical("d_token", [16, 32, 64]),
                "n_layers": t.suggest_int("n_layers", 1, 3),
                "ffn_dropout": t.suggest_float("ffn_dropout", 0.0, 0.3),
            },
            needs="torch"),
        ModelFamily(
            "coxph_splines", "ridge-penalized Cox model (scikit-survival) with restricted "
            "cubic spline terms for continuous predictors", _cox_splines,
            lambda t: {"alpha": t.suggest_float("alpha", 1e-2, 1e3, log=True),
                       "n_knots": t.suggest_int("n_knots", 3, 6)}),
        # not tuned: its members keep their defaults, so that its CV score carries no
        # optimism from settings chosen on the same folds
        ModelFamily(
            "ensemble", "mean of the gradient-boosted Cox trees, the random survival forest "
            "and the spline Cox model (their risk percentiles and survival curves)", _ensemble,
            None),
    )
}


def available_models() -> list[str]:
    """Risk model names whose dependencies are installed."""
    return [name for name, family in RISK_MODELS.items() if family.available]


# Compared only when asked for: ft_transformer costs minutes of CPU per cross-validation
# (--models ft_transformer); coxph_splines is the Cox model with bendable continuous effects,
# for an analysis that asks for it (--models coxph,coxph_splines), not a default candidate.
_OPT_IN = ("coxph_splines", "ft_transformer")


def default_models() -> list[str]:
    """The risk models compared when ``--models`` is not given."""
    return [name for name in available_models() if name not in _OPT_IN]


def make_model(name: str, seed: int, device: str = "auto",
               params: dict[str, Any] | None = None) -> BaseEstimator:
    """A fresh, unfitted risk estimator of one family.

    Raises
    ------
    PermedError
        For an unknown family, or one whose optional dependency is missing.
    """
    if name not in RISK_MODELS:
        raise PermedError(unknown_model("risk", name, RISK_MODELS))
    family = RISK_MODELS[name]
    if not family.available:
        raise PermedError(f"--models: '{name}' needs the optional dependency '{family.needs}': "
                          "pip install 'permed[deep]'")
    return family.build(seed, device).set_params(**(params or {}))
