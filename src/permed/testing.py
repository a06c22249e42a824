"""Shared checks of what a valid model output is, for permed's tests and for users' own models.

Each ``assert_*`` function raises ``AssertionError`` with the reason when an output is invalid.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

__all__ = [
    "assert_additive_explanation",
    "assert_effect_shapes",
    "assert_valid_absolute_risk",
    "assert_valid_proba",
    "assert_valid_survival",
    "run_permed",
    "shared_data",
    "site_diagnose_cohort",
    "site_risk_cohort",
]


def assert_valid_proba(proba: np.ndarray, n_rows: int, n_classes: int, atol: float = 1e-6) -> None:
    """Class probabilities: shape (n_rows, n_classes), each in [0, 1], rows summing to 1."""
    proba = np.asarray(proba)
    assert proba.shape == (n_rows, n_classes), f"shape {proba.shape}, expected " \
        f"{(n_rows, n_classes)}"
    assert np.all(np.isfinite(proba)), "probabilities contain NaN or infinity"
    assert proba.min() >= -atol, f"probability below 0: {proba.min()}"
    assert proba.max() <= 1 + atol, f"probability above 1: {proba.max()}"
    assert np.allclose(proba.sum(axis=1), 1.0, atol=atol), "rows do not sum to 1"


def assert_valid_survival(survival: np.ndarray, n_rows: int, n_times: int,
                          atol: float = 1e-9) -> None:
    """Survival curves: shape (n_rows, n_times), each value in [0, 1], non-increasing in time.

    ``survival[i, j]`` is patient i's probability of being event-free at the j-th of
    increasing times.
    """
    survival = np.asarray(survival, dtype=float)
    assert survival.shape == (n_rows, n_times), f"shape {survival.shape}, expected " \
        f"{(n_rows, n_times)}"
    assert np.all(np.isfinite(survival)), "survival contains NaN or infinity"
    assert survival.min() >= -atol, f"survival below 0: {survival.min()}"
    assert survival.max() <= 1 + atol, f"survival above 1: {survival.max()}"
    rises = np.diff(survival, axis=1)
    assert rises.max(initial=0.0) <= atol, \
        f"a survival curve increases over time (by {rises.max():.3g})"


def assert_valid_absolute_risk(risk: np.ndarray, atol: float = 1e-9) -> None:
    """Absolute risk at increasing horizons (one column each): in [0, 1], never decreasing."""
    risk = np.asarray(risk, dtype=float)
    assert np.all(np.isfinite(risk)), "risk contains NaN or infinity"
    assert risk.min() >= -atol, f"risk below 0: {risk.min()}"
    assert risk.max() <= 1 + atol, f"risk above 1: {risk.max()}"
    falls = np.diff(risk, axis=1)
    assert falls.min(initial=0.0) >= -atol, \
        f"risk at a later horizon is below an earlier one (by {-falls.min():.3g})"


def assert_effect_shapes(estimator, X: np.ndarray, n_arms: int, atol: float = 1e-6) -> None:
    """A fitted treatment-effect estimator's outputs agree in shape and with each other.

    Checks, for ``n`` rows and ``K = n_arms``: ``predict_outcomes`` is ``(n, K)`` and finite;
    ``effect`` is ``(n, K-1)`` and equals the outcome differences against the first arm;
    ``effect_interval`` and ``outcome_interval`` have those shapes with ``low <= point <=
    high``; ``effect(X, T0, T1)`` is ``(n,)``; ``recommend`` returns arms of ``arms_``, the
    best expected outcome (``higher_is_better``).
    """
    X = np.asarray(X)
    n = len(X)
    arms = list(estimator.arms_)
    assert len(arms) == n_arms, f"{len(arms)} arms, expected {n_arms}"
    outcomes = np.asarray(estimator.predict_outcomes(X))
    assert outcomes.shape == (n, n_arms), f"outcomes shape {outcomes.shape}, expected {(n, n_arms)}"
    assert np.all(np.isfinite(outcomes)), "expected outcomes contain NaN or infinity"
    effect = np.asarray(estimator.effect(X))
    assert effect.shape == (n, n_arms - 1), f"effect shape {effect.shape}, expected " \
        f"{(n, n_arms - 1)}"
    assert np.allclose(effect, outcomes[:, 1:] - outcomes[:, :1], atol=atol), \
        "effects are not the differences of the expected outcomes against the reference arm"
    for name, point, (low, high) in (
            ("effect_interval", effect, estimator.effect_interval(X)),
            ("outcome_interval", outcomes, estimator.outcome_interval(X))):
        low, high = np.asarray(low), np.asarray(high)
        assert low.shape == point.shape == high.shape, f"{name} shapes {low.shape}, {high.shape}"
        assert np.all(low <= point + atol), f"{name}: a lower bound lies above the estimate"
        assert np.all(point <= high + atol), f"{name}: an upper bound lies below the estimate"
    pair = np.asarray(estimator.effect(X, T0=arms[-1], T1=arms[0]))
    assert pair.shape == (n,), f"effect(X, T0, T1) shape {pair.shape}, expected {(n,)}"
    assert np.allclose(pair, outcomes[:, 0] - outcomes[:, -1], atol=atol), \
        "effect(X, T0, T1) is not the difference of the two arms' expected outcomes"
    recommended = np.asarray(estimator.recommend(X))
    sign = 1.0 if estimator.higher_is_better else -1.0
    best = np.asarray(arms, dtype=object)[np.argmax(sign * outcomes, axis=1)]
    assert recommended.shape == (n,), f"recommend shape {recommended.shape}"
    assert list(recommended) == list(best), "recommend is not the arm with the best outcome"


def assert_additive_explanation(explanation, output: np.ndarray, atol: float = 1e-6) -> None:
    """SHAP values (a ``permed.explain.Explanation``) add up to the explained output.

    ``base_values + values.sum(axis=1)`` must equal ``output`` (n_patients, n_outputs) or
    (n_patients,) within ``atol`` for every patient, and every value must be finite.
    """
    values = np.asarray(explanation.values)
    n, m = len(explanation.data), len(explanation.features)
    assert values.shape[:2] == (n, m), f"values shape {values.shape}, expected ({n}, {m}, K)"
    assert np.all(np.isfinite(values)), "SHAP values contain NaN or infinity"
    total = np.asarray(explanation.base_values) + values.sum(axis=1)
    output = np.asarray(output, dtype=float).reshape(total.shape)
    gap = np.abs(total - output)
    assert gap.max() <= atol, (f"SHAP values miss the output by up to {gap.max():.2e} (patient "
                               f"{int(np.argmax(gap.max(axis=1)))}), tolerance {atol:.0e}")


def shared_data(relative: str) -> Path:
    """A file of the project's shared real datasets, or skip the calling test saying why.

    The folder is ``$PERMED_SHARED_DATA``, else ``../shared/data`` beside the repository (where
    CI puts it).
    """
    import pytest

    default = Path(__file__).resolve().parents[3] / "shared" / "data"
    path = Path(os.environ.get("PERMED_SHARED_DATA", default)) / relative
    if not path.exists():
        pytest.skip(f"{path} not present (the shared data folder sits beside the clone in CI)")
    return path


def run_permed(*args: object, cwd: Path | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the ``permed`` command line as a user does, in a fresh interpreter.

    Fails the calling test when the command printed a traceback: a user error must get a
    message, never a stack trace. The exit status and output are the caller's to check.
    """
    result = subprocess.run([sys.executable, "-m", "permed.cli.main", *map(str, args)],
                            capture_output=True, text=True, cwd=cwd, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def site_diagnose_cohort(n: int, seed: int, shift: float = 0.0, grade: bool = False):
    """A simulated binary diagnose cohort of ``n`` patients (``x1``, ``x2``, ``disease`` yes/no;
    with ``grade``, a categorical ``grade`` cut from ``x1``) whose site adds ``shift`` to the
    log-odds: a second site for recalibration tests."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    disease = rng.random(n) < 1 / (1 + np.exp(-(shift - 0.5 + x1 + 0.8 * x2)))
    frame = pd.DataFrame({"x1": x1.round(3), "x2": x2.round(3)})
    if grade:
        frame["grade"] = np.where(x1 < -0.5, "low", np.where(x1 < 0.5, "mid", "high"))
    frame["disease"] = np.where(disease, "yes", "no")
    return frame


def site_risk_cohort(n: int, seed: int, hazard_ratio: float = 1.0):
    """A simulated survival cohort of ``n`` patients (``x1``, ``years``, ``died``) with
    exponential event times, censored uniformly on 1-6 years, whose site multiplies the
    baseline hazard by ``hazard_ratio``."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    event_time = rng.exponential(1 / (0.2 * hazard_ratio * np.exp(0.7 * x1)))
    censored = rng.uniform(1, 6, n)
    return pd.DataFrame({"x1": x1.round(3), "years": np.minimum(event_time, censored).round(3)
                         + 1e-3, "died": (event_time <= censored).astype(int)})
