"""An unweighted ensemble of survival models: the mean of their risk percentiles and curves."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone

from permed.exceptions import PermedError
from permed.models.risk._base import _SurvivalEstimator, step_values
from permed.models.risk._boosting import SurvivalBoosting
from permed.models.risk._cox_splines import SplineCox
from permed.models.risk._forest import SurvivalForest
from permed.models.risk._outcome import survival_y

__all__ = ["RankEnsemble"]


class RankEnsemble(_SurvivalEstimator):
    """Mean of several survival models: their risk percentiles, and their survival curves.

    Each member is fitted on the same patients. A member's risk score is read as its
    percentile among the member's own scores of the training patients (mid-ranks,
    interpolated between them), so that members whose scores live on different scales (a log
    hazard ratio, a forest's ensemble mortality) weigh the same; the ensemble's risk score is
    the mean percentile. Its survival curve is the mean of the members' curves, a mixture: it
    stays in [0, 1] and non-increasing, and does not assume proportional hazards even when
    every member does.

    The default members are permed's gradient-boosted Cox trees, random survival forest and
    spline Cox model. Over 21 paired 80/20 splits of the pycox cohorts, their mean ranks
    scored a test C-index higher than the boosted trees alone by +0.0031 (SD 0.0050) on
    METABRIC and +0.0060 (SD 0.0035) on GBSG (``benchmarks/risk_alternatives.py``).

    Parameters
    ----------
    members : list of (str, estimator) or None, default=None
        permed risk estimators (subclasses of permed's survival estimator base), each fitted
        as a clone; None: the three families above, seeded with ``random_state``.
    random_state : int, RandomState instance or None, default=None
        Seed of the default members.

    Attributes
    ----------
    members_ : list of (str, estimator)
        The fitted members.
    reference_ranks_ : list of (ndarray, ndarray)
        Each member's distinct scores of the training patients and their mid-rank percentiles
        (:func:`mid_ranks`).
    event_times_ : ndarray
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from permed.models.risk import RankEnsemble, survival_y
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3))
    >>> y = survival_y(rng.exponential(np.exp(-X[:, 0])), rng.random(300) < 0.7)
    >>> RankEnsemble(random_state=0).fit(X, y).score(X, y) > 0.6
    True
    """

    def __init__(self, members: list[tuple[str, Any]] | None = None,
                 random_state=None) -> None:
        self.members = members
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.members is None:
            return
        names = [name for name, _ in self.members]
        if not names or len(set(names)) != len(names):
            raise PermedError(f"members={names!r}: give one or more (name, estimator) pairs "
                              "with distinct names")
        for name, member in self.members:
            if not isinstance(member, _SurvivalEstimator):
                raise PermedError(f"member '{name}' is a {type(member).__name__}: give permed "
                                  "risk estimators (permed.models.risk)")

    def _member_list(self) -> list[tuple[str, Any]]:
        if self.members is not None:
            return [(name, clone(member)) for name, member in self.members]
        return [("gradient_boosting", SurvivalBoosting(random_state=self.random_state)),
                ("random_survival_forest", SurvivalForest(random_state=self.random_state)),
                ("coxph_splines", SplineCox(alpha=1.0, n_knots=4))]

    def _fit(self, X: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        y = survival_y(time, event)
        self.members_ = [(name, member.fit(X, y)) for name, member in self._member_list()]
        self.reference_ranks_ = [mid_ranks(member.predict(X)) for _, member in self.members_]

    def _risk(self, X: np.ndarray) -> np.ndarray:
        return np.mean([np.interp(member.predict(X), *reference) for (_, member), reference
                        in zip(self.members_, self.reference_ranks_, strict=True)], axis=0)

    def _survival(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # each member's curve steps on its own grid (a forest's coarsened times): the mean is
        # exact on the union of the grids
        curves = [member._survival(X) for _, member in self.members_]
        grid = np.unique(np.concatenate([member_grid for member_grid, _ in curves]))
        mean = np.zeros((X.shape[0], len(grid)))
        for member_grid, values in curves:
            mean += step_values(member_grid, values, grid)
        return grid, mean / len(curves)


def mid_ranks(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``reference`` scores and their mid-rank percentiles: a new score's
    percentile is ``np.interp(score, *mid_ranks(reference))``, linear in between and held at
    the end values beyond them (continuous: a score within rounding of a reference score never
    jumps a rank)."""
    values, counts = np.unique(reference, return_counts=True)
    below = np.cumsum(counts) - counts  # how many reference scores lie below each value
    return values, (below + counts / 2) / len(reference)
