"""The diagnose model families permed compares, with their tuning search spaces."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from permed.exceptions import PermedError
from permed.models._names import unknown_model

__all__ = ["DIAGNOSE_MODELS", "READS_EVENTS", "ModelFamily", "available_models", "default_models",
           "make_model", "require_events"]


@dataclass(frozen=True)
class ModelFamily:
    """How to build one model family and which hyper-parameters Optuna may tune."""

    name: str
    description: str
    build: Callable[[int, str], BaseEstimator]
    space: Callable[[Any], dict[str, Any]] | None  # None: not tuned
    needs: str | None = None  # an optional dependency
    extra: str = "deep"  # the permed extra that installs it
    # settings that replace the defaults on a large cohort (workflow/_large.py); tuning
    # trials go on top of them
    large_cohort: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return self.needs is None or importlib.util.find_spec(self.needs) is not None


def _logistic(seed: int, device: str) -> BaseEstimator:
    return LogisticRegression(C=1.0, max_iter=5000)


def _lightgbm(seed: int, device: str) -> BaseEstimator:
    return LGBMClassifier(
        # Regularized for clinical-size cohorts (hundreds to thousands of patients): on
        # Cleveland this raised 5-fold AUROC from 0.876 to 0.899 (mean of 3 seeds) at no cost on
        # breast cancer (0.994 vs 0.993). Larger cohorts can tune with --budget.
        n_estimators=300, learning_rate=0.03, num_leaves=7, min_child_samples=20,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.5, reg_lambda=5.0,
        random_state=seed, n_jobs=1, verbose=-1)


def _elasticnet(seed: int, device: str) -> BaseEstimator:
    # For p >> n (genes, TF-IDF terms): the L1 part selects a few features, the L2 part keeps
    # correlated ones (co-expressed genes) together instead of picking one at random.
    return LogisticRegression(l1_ratio=0.5, C=0.5, solver="saga", max_iter=5000,
                              random_state=seed)


def _lightgbm_pn(seed: int, device: str) -> BaseEstimator:
    # For p >> n: stumps on a few samples per leaf, 10% of the features per tree and strong
    # L1/L2, so no tree memorizes a handful of patients through one of thousands of genes.
    return LGBMClassifier(
        n_estimators=200, learning_rate=0.05, num_leaves=2, max_depth=1, min_child_samples=3,
        min_data_in_bin=1, subsample=0.8, subsample_freq=1, colsample_bytree=0.1,
        reg_alpha=1.0, reg_lambda=10.0, random_state=seed, n_jobs=1, verbose=-1)


def _random_forest(seed: int, device: str) -> BaseEstimator:
    return RandomForestClassifier(n_estimators=300, min_samples_leaf=2, random_state=seed,
                                  n_jobs=1)


def _scorecard(seed: int, device: str) -> BaseEstimator:
    from permed.models.diagnose._scorecard import ScorecardClassifier

    return ScorecardClassifier()


def _dp_mlp(seed: int, device: str) -> BaseEstimator:
    from permed.privacy._dp import DPMLPClassifier  # trains on the CPU

    return DPMLPClassifier(random_state=seed)


def _gru(seed: int, device: str) -> BaseEstimator:
    from permed.models.deep._sequence import EventGRUClassifier

    return EventGRUClassifier(random_state=seed, device=device)


def _mlp(seed: int, device: str) -> BaseEstimator:
    from permed.models.deep import MLPClassifier

    return MLPClassifier(random_state=seed, device=device)


def _ft_transformer(seed: int, device: str) -> BaseEstimator:
    from permed.models.deep import FTTransformerClassifier

    # the class's 10 epochs are a quick fit; a model family trains until early stopping
    return FTTransformerClassifier(max_epochs=100, patience=10, random_state=seed, device=device)


DIAGNOSE_MODELS: dict[str, ModelFamily] = {
    f.name: f
    for f in (
        ModelFamily(
            "logistic", "L2-penalized logistic regression",
            _logistic, lambda t: {"C": t.suggest_float("C", 1e-3, 1e2, log=True)}),
        ModelFamily(
            "lightgbm", "LightGBM gradient-boosted trees",
            _lightgbm,
            lambda t: {
                "n_estimators": t.suggest_int("n_estimators", 50, 600, log=True),
                "learning_rate": t.suggest_float("learning_rate", 0.01, 0.3, log=True),
                "num_leaves": t.suggest_int("num_leaves", 4, 63, log=True),
                "min_child_samples": t.suggest_int("min_child_samples", 5, 50),
                "reg_lambda": t.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
            },
            # Hundreds of thousands of patients need no small-cohort regularization: 100
            # trees of 31 leaves matched 300 trees of 7 leaves in test AUROC (0.7924 vs 0.7925;
            # 300k synthetic patients to train, 700k to test) with 38% less fitting time and
            # 2.1x faster ONNX scoring (benchmarks/lightgbm_large.py).
            large_cohort={"n_estimators": 100, "learning_rate": 0.1, "num_leaves": 31,
                          "min_child_samples": 100, "subsample": 0.5,
                          "colsample_bytree": 0.8, "reg_lambda": 1.0}),
        ModelFamily(
            "elasticnet", "elastic-net logistic regression (p >> n: genes, note terms)",
            _elasticnet,
            lambda t: {"C": t.suggest_float("C", 1e-2, 1e1, log=True),
                       "l1_ratio": t.suggest_float("l1_ratio", 0.05, 0.95)}),
        ModelFamily(
            "lightgbm_pn", "LightGBM stumps, strongly regularized for p >> n",
            _lightgbm_pn,
            lambda t: {"n_estimators": t.suggest_int("n_estimators", 50, 400, log=True),
                       "colsample_bytree": t.suggest_float("colsample_bytree", 0.02, 0.3),
                       "reg_lambda": t.suggest_float("reg_lambda", 1.0, 50.0, log=True)}),
        ModelFamily(
            "random_forest", "random forest",
            _random_forest,
            lambda t: {
                "max_features": t.suggest_float("max_features", 0.1, 1.0),
                "min_samples_leaf": t.suggest_int("min_samples_leaf", 1, 20),
            }),
        ModelFamily(
            "mlp", "multilayer perceptron 64-32-16 (torch)",
            _mlp,
            lambda t: {
                "learning_rate": t.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
                "max_epochs": t.suggest_int("max_epochs", 10, 100, log=True),
                "weight_decay": t.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
            },
            needs="torch"),
        ModelFamily(
            "gru", "GRU over each patient's time-ordered EHR events (--events) joined with the "
            "tabular features (torch)",
            _gru,
            lambda t: {
                "learning_rate": t.suggest_float("learning_rate", 1e-3, 1e-2, log=True),
                "hidden_size": t.suggest_int("hidden_size", 16, 64, log=True),
                "dropout": t.suggest_float("dropout", 0.0, 0.5),
                "weight_decay": t.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
            },
            needs="torch"),
        ModelFamily(
            "ft_transformer", "FT-Transformer: feature tokens + 2 transformer blocks (torch)",
            _ft_transformer,
            lambda t: {
                "learning_rate": t.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
                "d_token": t.suggest_categorical("d_token", [16, 32, 64]),
                "n_layers": t.suggest_int("n_layers", 1, 3),
                "ffn_dropout": t.suggest_float("ffn_dropout", 0.0, 0.3),
            },
            needs="torch"),
        ModelFamily(
            "scorecard", "points scorecard: integer points per feature band (binary only)",
            _scorecard,
            lambda t: {
                "n_bands": t.suggest_int("n_bands", 2, 6),
                "max_points": t.suggest_int("max_points", 5, 20),
                "max_features": t.suggest_int("max_features", 3, 15),
                "C": t.suggest_float("C", 1e-2, 1e2, log=True),
            }),
        ModelFamily(
            "dp_mlp", "multilayer perceptron 32-16 trained with DP-SGD (Opacus; epsilon in "
            "metrics.json)",
            _dp_mlp,
            # no search space: every tuning trial would spend privacy that is not counted
            lambda t: {},
            needs="opacus", extra="dp"),
    )
}


def available_models() -> list[str]:
    """Model names whose dependencies are installed."""
    return [name for name, family in DIAGNOSE_MODELS.items() if family.available]


# Glass-box models compared only when asked for (--models ...,scorecard): the scorecard is
# binary-only, and the default list must work for every target; elasticnet and lightgbm_pn are
# the p >> n settings for genes and note terms (--models elasticnet,lightgbm_pn); gru needs
# an events column (--events COL --models lightgbm,gru); ft_transformer costs minutes of CPU
# per cross-validation (--models ft_transformer).
_OPT_IN = ("scorecard", "dp_mlp", "elasticnet", "lightgbm_pn", "gru", "ft_transformer")


def default_models() -> list[str]:
    """The models compared when ``--models`` is not given."""
    return [name for name in available_models() if name not in _OPT_IN]


# Models that read the study's events column (--events) rather than only the table.
READS_EVENTS = ("gru",)
NO_EVENTS = ("--models gru reads each patient's event sequence, but the study names no events "
             "column: add --events COL (space-separated event tokens in time order, e.g. the "
             "'events' column of permed ingest mimic --events), or leave gru out of --models")


def require_events(names: list[str], events: str | None) -> None:
    """Refuse a sequence model (``gru``) in ``names`` when the study has no events column."""
    if not events and any(name in READS_EVENTS for name in names):
        raise PermedError(NO_EVENTS)


def make_model(name: str, seed: int, device: str = "auto",
               params: dict[str, Any] | None = None) -> BaseEstimator:
    """A fresh, unfitted estimator of one family."""
    if name not in DIAGNOSE_MODELS:
        raise PermedError(unknown_model(
            "diagnose", name, DIAGNOSE_MODELS, "; and fusion (two or more of the table, --note "
            "and --images); with --images, cnn or cnn_densenet"))
    family = DIAGNOSE_MODELS[name]
    if not family.available:
        raise PermedError(
            f"--models: '{name}' needs the optional dependency '{family.needs}': "
            f"pip install 'permed[{family.extra}]'")
    estimator = family.build(seed, device)
    return estimator.set_params(**(params or {}))
