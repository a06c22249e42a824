"""The rank ensemble: its risk is the mean of its members' percentiles, its curve their mean."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored

from permed.exceptions import PermedError
from permed.models.risk import (
    PenalizedCox,
    RankEnsemble,
    SplineCox,
    SurvivalBoosting,
    SurvivalForest,
    survival_y,
)
from permed.models.risk._ensemble import mid_ranks
from permed.testing import assert_valid_survival


def _synthetic(n: int = 400, seed: int = 0):
    """Exponential times with log hazard 0.8 x0 + x1^2, about 30% censored."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    time = rng.exponential(np.exp(-(0.8 * X[:, 0] + X[:, 1] ** 2)))
    censor = rng.exponential(2.5, n)
    return X, survival_y(np.minimum(time, censor), time <= censor)


def test_percentile_is_the_mid_rank_among_the_training_scores():
    reference = np.array([2.0, 3.0, 1.0, 2.0])  # in any order
    found = np.interp(np.array([2.0, 1.0, 3.0, 0.0, 4.0, 2.5]), *mid_ranks(reference))
    # mid-ranks 1, 2.5, 4 of 4 (less one half): 0.125, 0.5, 0.875; linear between, held outside
    np.testing.assert_allclose(found, [0.5, 0.125, 0.875, 0.125, 0.875, 0.6875])


def test_risk_and_survival_are_the_means_over_the_members():
    X, y = _synthetic()
    members = [SurvivalBoosting(random_state=0), SurvivalForest(n_estimators=30, random_state=0),
               SplineCox()]
    ensemble = RankEnsemble(members=[(type(m).__name__, m) for m in members]).fit(X, y)
    fitted = [m.fit(X, y) for m in members]
    X_new, _ = _synthetic(50, seed=1)
    times = np.quantile(y["time"], [0.1, 0.5, 0.9])

    expected_risk = np.mean([np.interp(m.predict(X_new), *mid_ranks(m.predict(X)))
                             for m in fitted], axis=0)
    expected_survival = np.mean([m.predict_survival_function(X_new, times) for m in fitted],
                                axis=0)
    np.testing.assert_allclose(ensemble.predict(X_new), expected_risk, atol=1e-12)
    np.testing.assert_allclose(ensemble.predict_survival_function(X_new, times),
                               expected_survival, atol=1e-12)
    assert_valid_survival(ensemble.predict_survival_function(X_new), 50,
                          len(ensemble.event_times_))


def test_one_member_ranks_patients_as_that_member():
    X, y = _synthetic()
    alone = PenalizedCox().fit(X, y)
    ensemble = RankEnsemble(members=[("cox", PenalizedCox())]).fit(X, y)
    assert ensemble.score(X, y) == pytest.approx(alone.score(X, y), abs=1e-12)
    np.testing.assert_allclose(ensemble.predict_survival_function(X[:20]),
                               alone.predict_survival_function(X[:20], ensemble.event_times_))


def test_default_members_rank_a_nonlinear_hazard_well():
    X, y = _synthetic()
    X_new, y_new = _synthetic(400, seed=2)
    ensemble = RankEnsemble(random_state=0).fit(X, y)
    assert [name for name, _ in ensemble.members_] == [
        "gradient_boosting", "random_survival_forest", "coxph_splines"]
    c = concordance_index_censored(y_new["event"], y_new["time"], ensemble.predict(X_new))[0]
    linear = PenalizedCox().fit(X, y).score(X_new, y_new)
    assert c > linear + 0.05  # the Cox model linear in x1 misses its U-shaped effect


@pytest.mark.parametrize("members", [[], [("a", PenalizedCox()), ("a", SplineCox())]])
def test_members_need_distinct_names(members):
    X, y = _synthetic(50)
    with pytest.raises(PermedError, match="give one or more \\(name, estimator\\) pairs with "
                                          "distinct names"):
        RankEnsemble(members=members).fit(X, y)


def test_members_must_be_permed_risk_estimators():
    X, y = _synthetic(50)
    with pytest.raises(PermedError, match="member 'sk' is a CoxPHSurvivalAnalysis: give permed "
                                          "risk estimators \\(permed.models.risk\\)"):
        RankEnsemble(members=[("sk", CoxPHSurvivalAnalysis())]).fit(X, y)
