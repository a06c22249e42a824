"""What every permed treatment-effect estimator shares: arms, the vocabulary, the intervals.

Vocabulary (``permed.models.base.TREAT_METHODS``): ``fit(X, y, treatment)``, ``effect``,
``effect_interval`` and ``recommend``; plus ``predict_outcomes`` / ``outcome_interval`` (the
expected outcome under each arm) and ``contrast_inference`` (any linear contrast of the arms'
expected outcomes, with its standard error), which the recommendation needs to compare the best
arm with every other one.

The arms are ``arms_``, the reference arm first (``reference`` or the first label in sorted
order); effects are those of ``arms_[1:]`` against ``arms_[0]``.

Why the estimators take their outcome model as a required argument: a treatment-effect
estimator is a meta-estimator, like EconML's, and it is fitted on ``(X, y, treatment)``, a
signature scikit-learn's ``check_estimator`` suite (which calls ``fit(X, y)``) cannot exercise.
``permed.models.treat.make_model`` builds each one with permed's defaults.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from permed.exceptions import PermedError

__all__ = ["MIN_ROWS_PER_ARM"]

# Fewest patients per arm an estimator accepts: its internal cross-fitting needs every arm in
# every fold (permed's study validation asks for 20 per arm before any model is fitted).
MIN_ROWS_PER_ARM = 6

Floats = NDArray[np.float64]
_MAX_SEED = 2**31 - 1


def _base_seed(random_state: Any) -> int:
    """One integer seed per fit (an int is used as is; None or a generator draws one)."""
    if isinstance(random_state, (int, np.integer)):
        return int(random_state) % _MAX_SEED
    return int(check_random_state(random_state).randint(0, _MAX_SEED))


class _TreatEstimator(BaseEstimator, ABC):
    """Base class: arm bookkeeping, bootstrap intervals and the treat vocabulary.

    Subclasses implement :meth:`_fit_one` (fit on arm codes ``0..K-1``, 0 = reference) and
    :meth:`_outcomes` (expected outcome under each arm, ``(n, K)``). Intervals come from
    ``n_bootstrap`` refits on arm-stratified bootstrap resamples (normal approximation with
    the bootstrap standard deviation) unless a subclass overrides :meth:`_contrast`.
    """

    # set by subclasses' __init__: higher_is_better, reference, n_bootstrap, random_state, n_jobs

    def fit(self, X: ArrayLike, y: ArrayLike, treatment: ArrayLike) -> _TreatEstimator:
        """Learn the expected outcome under each arm and the effects between arms.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Patient features, numeric (permed's workflow passes the preprocessed matrix).
        y : array-like of shape (n_samples,)
            Observed outcome (continuous, or 0/1 for a binary outcome: effects are then risk
            differences).
        treatment : array-like of shape (n_samples,)
            The arm each patient received (any labels, at least two arms).

        Returns
        -------
        self

        Raises
        ------
        PermedError
            If there is one arm only, an arm has fewer than 6 patients or the lengths differ.
        """
        X, y = validate_data(self, X, y, y_numeric=True)
        codes = self._encode_arms(np.asarray(treatment), len(y))
        seed = _base_seed(self.random_state)
        self.estimator_ = self._fit_one(X, y, codes, seed)
        self.bootstrap_estimators_ = self._fit_bootstrap(X, y, codes, seed)
        return self

    # ---- the vocabulary ------------------------------------------------------------------
    def predict_outcomes(self, X: ArrayLike) -> Floats:
        """Expected outcome under each arm, shape ``(n_samples, n_arms)``, columns = ``arms_``."""
        X = self._check_X(X)
        return self._outcomes(self.estimator_, X)

    def outcome_interval(self, X: ArrayLike, alpha: float = 0.05) -> tuple[Floats, Floats]:
        """Lower and upper ``1 - alpha`` bounds of :meth:`predict_outcomes`, each ``(n, K)``."""
        X = self._check_X(X)
        k = len(self.arms_)
        weights = np.broadcast_to(np.eye(k)[:, None, :], (k, len(X), k))
        point, stderr = self._contrast(X, weights)
        z = norm.ppf(1 - alpha / 2)
        return (point - z * stderr).T, (point + z * stderr).T

    def effect(self, X: ArrayLike, T0: Any = None, T1: Any = None) -> Floats:
        """Effect of moving from arm ``T0`` to arm ``T1`` on the expected outcome.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        T0, T1 : arm label or array-like of labels, optional
            Without them: every non-reference arm against the reference arm, shape
            ``(n_samples, n_arms - 1)`` (columns = ``arms_[1:]``). With them: ``(n_samples,)``.

        Returns
        -------
        ndarray
        """
        X = self._check_X(X)
        weights = self._effect_weights(len(X), T0, T1)
        outcomes = self._outcomes(self.estimator_, X)
        effects = np.einsum("mnk,nk->mn", weights, outcomes)
        return effects[0] if T0 is not None or T1 is not None else effects.T

    def effect_interval(self, X: ArrayLike, T0: Any = None, T1: Any = None,
                        alpha: float = 0.05) -> tuple[Floats, Floats]:
        """Lower and upper ``1 - alpha`` bounds of :meth:`effect` (same shapes)."""
        X = self._check_X(X)
        weights = self._effect_weights(len(X), T0, T1)
        point, stderr = self._contrast(X, weights)
        z = norm.ppf(1 - alpha / 2)
        low, high = point - z * stderr, point + z * stderr
        if T0 is not None or T1 is not None:
            return low[0], high[0]
        return low.T, high.T

    def contrast_inference(self, X: ArrayLike, weights: ArrayLike) -> tuple[Floats, Floats]:
        """Point estimate and standard error of linear contrasts of the arms' outcomes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        weights : array-like of shape (n_arms,), (n_samples, n_arms) or
            (n_contrasts, n_samples, n_arms)
            Weight of each arm's expected outcome (``[-1, 1, 0]`` is arm 1 minus arm 0).

        Returns
        -------
        point, stderr : ndarray of shape (n_samples,) or (n_contrasts, n_samples)
        """
        X = self._check_X(X)
        w = np.asarray(weights, dtype=float)
        single = w.ndim < 3
        w = np.broadcast_to(w if w.ndim == 3 else w.reshape(1, -1, len(self.arms_)),
                            (len(w) if w.ndim == 3 else 1, len(X), len(self.arms_)))
        point, stderr = self._contrast(X, w)
        return (point[0], stderr[0]) if single else (point, stderr)

    def recommend(self, X: ArrayLike) -> NDArray[Any]:
        """The arm with the best expected outcome for each patient (``higher_is_better``)."""
        outcomes = self.predict_outcomes(X)
        sign = 1.0 if self.higher_is_better else -1.0
        return self.arms_[np.argmax(sign * outcomes, axis=1)]

    # ---- for subclasses ------------------------------------------------------------------
    @abstractmethod
    def _fit_one(self, X: Floats, y: Floats, codes: NDArray[np.int64], seed: int) -> Any:
        """Fit one model on arm codes ``0..K-1`` (0 = reference) and return it."""

    @abstractmethod
    def _outcomes(self, fitted: Any, X: Floats) -> Floats:
        """Expected outcome under each arm, ``(n, K)``, from one fitted model."""

    def _contrast(self, X: Floats, weights: Floats) -> tuple[Floats, Floats]:
        """``(point, stderr)`` of ``weights @ outcomes`` for weights ``(m, n, K)``."""
        point = np.einsum("mnk,nk->mn", weights, self._outcomes(self.estimator_, X))
        if not self.bootstrap_estimators_:
            raise PermedError(
                f"{type(self).__name__} was fitted with n_bootstrap=0, so it has no intervals: "
                "refit with n_bootstrap=50 (or more) to get them")
        draws = np.stack([self._outcomes(b, X) for b in self.bootstrap_estimators_])
        contrasts = np.einsum("mnk,bnk->bmn", weights, draws)
        return point, contrasts.std(axis=0, ddof=1)

    # ---- helpers -------------------------------------------------------------------------
    def _encode_arms(self, treatment: NDArray[Any], n: int) -> NDArray[np.int64]:
        if treatment.ndim != 1 or len(treatment) != n:
            raise PermedError(f"treatment must be one arm label per patient: {n} labels "
                              f"expected, got shape {treatment.shape}")
        labels, counts = np.unique(treatment, return_counts=True)
        if len(labels) < 2:
            raise PermedError(f"treatment has one arm only ('{labels[0]}'): an effect compares "
                              "at least two arms")
        if self.reference is not None and self.reference not in labels:
            raise PermedError(f"reference arm '{self.reference}' is not one of the arms "
                              f"{labels.tolist()}: pass one of them or None")
        small = labels[counts < MIN_ROWS_PER_ARM]
        if len(small):
            raise PermedError(f"arms {small.tolist()} have fewer than {MIN_ROWS_PER_ARM} "
                              "patients: too few to estimate their outcomes; merge or drop them")
        reference = labels[0] if self.reference is None else self.reference
        self.arms_ = np.array([reference, *[a for a in labels if a != reference]],
                              dtype=labels.dtype)
        index = {a: i for i, a in enumerate(self.arms_.tolist())}
        return np.array([index[a] for a in treatment.tolist()], dtype=np.int64)

    def _fit_bootstrap(self, X: Floats, y: Floats, codes: NDArray[np.int64],
                       seed: int) -> list[Any]:
        n_boot = int(getattr(self, "n_bootstrap", 0) or 0)
        if n_boot <= 0:
            return []
        rng = np.random.default_rng(seed)
        by_arm = [np.flatnonzero(codes == k) for k in range(len(self.arms_))]
        samples = [np.concatenate([rng.choice(rows, len(rows)) for rows in by_arm])
                   for _ in range(n_boot)]
        jobs = (delayed(self._fit_one)(X[idx], y[idx], codes[idx], (seed + 1 + b) % _MAX_SEED)
                for b, idx in enumerate(samples))
        return list(Parallel(n_jobs=self.n_jobs)(jobs))

    def _check_X(self, X: ArrayLike) -> Floats:
        check_is_fitted(self, "estimator_")
        return validate_data(self, X, reset=False)

    def _effect_weights(self, n: int, T0: Any, T1: Any) -> Floats:
        k = len(self.arms_)
        if T0 is None and T1 is None:
            eye = np.eye(k)
            weights = eye[1:] - eye[0]
            return np.broadcast_to(weights[:, None, :], (k - 1, n, k))
        index = {a: i for i, a in enumerate(self.arms_.tolist())}
        start = self._arm_codes(self.arms_[0] if T0 is None else T0, n, index)
        end = self._arm_codes(self.arms_[1] if T1 is None else T1, n, index)
        weights = np.zeros((1, n, k))
        weights[0, np.arange(n), end] += 1.0
        weights[0, np.arange(n), start] -= 1.0
        return weights

    @staticmethod
    def _arm_codes(arms: Any, n: int, index: dict[Any, int]) -> NDArray[np.int64]:
        values = np.broadcast_to(np.asarray(arms, dtype=object), (n,))
        unknown = sorted({str(a) for a in values if a not in index})
        if unknown:
            raise PermedError(f"unknown arm(s) {unknown}: the arms are {list(index)}")
        return np.array([index[a] for a in values], dtype=np.int64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
