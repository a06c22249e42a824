"""permed's survival estimators: the outcome, the risk vocabulary, and references."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored
from sksurv.nonparametric import kaplan_meier_estimator

from permed.exceptions import PermedError
from permed.models.risk import (
    PenalizedCox,
    SurvivalBoosting,
    SurvivalForest,
    make_model,
    split_survival_y,
    survival_y,
)
from permed.models.risk._boosting import cox_gradient
from permed.models.risk._forest import coarsen_times
from permed.testing import assert_valid_absolute_risk, assert_valid_survival

ESTIMATORS = [PenalizedCox(), SurvivalForest(n_estimators=30, random_state=0),
              SurvivalBoosting(random_state=0)]


def _synthetic(n: int = 300, seed: int = 0):
    """Exponential times with log hazard 0.8 x0 - 0.5 x1, about 30% censored."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    time = rng.exponential(np.exp(-(0.8 * X[:, 0] - 0.5 * X[:, 1])))
    censor = rng.exponential(2.5, n)
    return X, survival_y(np.minimum(time, censor), time <= censor)


def _deep():
    pytest.importorskip("torch")
    from permed.models.deep import DeepSurv

    return DeepSurv(random_state=0, device="cpu", max_epochs=30)


def _all_estimators():
    return [*ESTIMATORS, "deepsurv"]


def _get(estimator):
    return _deep() if estimator == "deepsurv" else clone(estimator)


def test_survival_y_is_scikit_survival_structured_outcome():
    y = survival_y([3.0, 1.5], [1, 0])
    assert y.dtype.names == ("event", "time")
    time, event = split_survival_y(y)
    assert time.tolist() == [3.0, 1.5]
    assert event.tolist() == [True, False]


def test_plain_times_are_read_as_observed_events():
    time, event = split_survival_y(np.array([2.0, 5.0]))
    assert time.tolist() == [2.0, 5.0]
    assert event.all()


@pytest.mark.parametrize(("y", "message"), [
    (None, "requires y to be passed, but the target y is None"),
    (survival_y([1.0, -2.0], [1, 0]), r"y has 1 negative times \(min -2\)"),
    (survival_y([1.0, 2.0], [0, 0]), r"y has no event \(every patient is censored\)"),
    (np.array([1.0, np.nan]), "y has 1 missing or infinite times"),
    (np.ones((3, 2)), r"y has shape \(3, 2\)"),
])
def test_bad_outcomes_are_refused(y, message):
    with pytest.raises(PermedError, match=message):
        split_survival_y(y)


@pytest.mark.parametrize("estimator", _all_estimators(), ids=lambda e: str(e)[:20])
def test_outputs_follow_the_risk_vocabulary(estimator):
    X, y = _synthetic()
    model = _get(estimator).fit(X[:200], y[:200])
    risk = model.predict(X[200:])
    assert risk.shape == (100,)
    times = np.array([0.1, 0.5, 1.0, 2.0])
    survival = model.predict_survival_function(X[200:], times)
    assert_valid_survival(survival, 100, 4)
    assert_valid_absolute_risk(1.0 - survival)
    assert_valid_survival(model.predict_survival_function(X[200:]), 100, len(model.event_times_))
    # higher risk score = earlier event: the model learned the direction of the hazard
    assert model.score(X[200:], y[200:]) > 0.65


@pytest.mark.parametrize("estimator", _all_estimators(), ids=lambda e: str(e)[:20])
def test_same_seed_gives_the_same_predictions(estimator):
    X, y = _synthetic(150)
    first = _get(estimator).fit(X, y).predict(X)
    second = _get(estimator).fit(X, y).predict(X)
    np.testing.assert_array_equal(first, second)


def test_survival_is_one_before_the_first_event():
    X, y = _synthetic()
    model = PenalizedCox().fit(X, y)
    first = model.event_times_[0]
    assert np.all(model.predict_survival_function(X[:5], [0.0, first / 2]) == 1.0)


def test_penalized_cox_matches_scikit_survival():
    X, y = _synthetic()
    model = PenalizedCox(alpha=2.0).fit(X, y)
    reference = CoxPHSurvivalAnalysis(alpha=2.0, ties="efron").fit(
        model.scaler_.transform(X), y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-8)
    expected = np.vstack([f(np.array([0.5, 1.0])) for f in
                          reference.predict_survival_function(model.scaler_.transform(X[:3]))])
    np.testing.assert_allclose(model.predict_survival_function(X[:3], [0.5, 1.0]), expected,
                               rtol=1e-10)


def test_cox_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    time = np.round(rng.exponential(1.0, 40), 1) + 0.1  # rounding makes tied times
    event = rng.random(40) < 0.7
    eta = rng.normal(size=40)

    def loss(eta):  # negative Breslow log partial likelihood
        at_risk = np.array([np.exp(eta[time >= t]).sum() for t in time])
        return -np.sum((eta - np.log(at_risk))[event])

    grad, hess = cox_gradient(np.where(event, time, -time), eta)
    step = 1e-6
    numeric = np.array([(loss(eta + step * e) - loss(eta - step * e)) / (2 * step)
                        for e in np.eye(40)])
    np.testing.assert_allclose(grad, numeric, atol=1e-6)
    wide = 1e-3
    second = np.array([(loss(eta + wide * e) - 2 * loss(eta) + loss(eta - wide * e)) / wide**2
                       for e in np.eye(40)])
    np.testing.assert_allclose(hess, second, atol=1e-5)


def test_coarsened_times_move_events_to_the_nearest_point_and_censoring_down():
    # grid: 1 and 3; the event at 1.5 had moved up to 3
    time = np.array([1.0, 1.5, 2.5, 3.0, 2.0, 0.5])
    event = np.array([True, True, True, True, False, False])
    coarse = coarsen_times(time, event, 2)
    assert coarse.tolist() == [1.0, 1.0, 3.0, 3.0, 1.0, 0.5]
    assert coarsen_times(time, event, None) is time


def _km_risk(time: np.ndarray, event: np.ndarray, at: np.ndarray) -> np.ndarray:
    steps, survival = kaplan_meier_estimator(event, time)
    index = np.searchsorted(steps, at, side="right") - 1
    return 1.0 - np.where(index >= 0, survival[np.maximum(index, 0)], 1.0)


def test_coarsened_times_leave_the_kaplan_meier_risk_unbiased():
    # events moved up to the next of 50 grid points came on average half a cell late: the
    # Kaplan-Meier risk here was 0.0065 too low on average (the forest's mean predicted risk
    # on METABRIC at the median event time 0.291 against 0.299 uncoarsened); to the nearest
    # of the default 100 points it is 0.0004 too high
    rng = np.random.default_rng(0)
    latent, censor = rng.weibull(1.5, 3000) * 10, rng.uniform(0, 25, 3000)
    time, event = np.minimum(latent, censor), latent <= censor
    at = np.quantile(time[event], np.linspace(0.1, 0.9, 41))
    coarse = coarsen_times(time, event, SurvivalForest().time_bins)
    assert len(np.unique(coarse[event])) <= 100
    gap = _km_risk(coarse, event, at) - _km_risk(time, event, at)
    assert abs(gap.mean()) < 0.0015
    assert np.abs(gap).max() < 0.01


def test_forest_with_coarse_times_ranks_like_the_full_forest():
    X, y = _synthetic(400)
    full = SurvivalForest(n_estimators=50, time_bins=None, random_state=0).fit(X[:300], y[:300])
    coarse = SurvivalForest(n_estimators=50, time_bins=20, random_state=0).fit(X[:300], y[:300])
    assert abs(full.score(X[300:], y[300:]) - coarse.score(X[300:], y[300:])) < 0.03


def test_score_is_harrells_c_of_scikit_survival():
    X, y = _synthetic()
    model = SurvivalBoosting(random_state=0).fit(X, y)
    expected = concordance_index_censored(y["event"], y["time"], model.predict(X))[0]
    assert model.score(X, y) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("params", "message"), [
    ({"alpha": -1.0}, r"alpha=-1.0 must be a finite number 0 or more"),
    ({"n_iter": 0}, r"n_iter=0 must be a finite integer above 0"),
])
def test_bad_parameters_are_refused(params, message):
    X, y = _synthetic(50)
    with pytest.raises(PermedError, match=message):
        PenalizedCox(**params).fit(X, y)


def test_unknown_model_name_lists_the_families():
    with pytest.raises(PermedError, match="--models: unknown risk model 'cox'; did you mean "
                                          "'coxph'\\? available: coxph, random_survival_forest"):
        make_model("cox", seed=0)
    with pytest.raises(PermedError, match="--models: unknown risk model 'svm'; available: "):
        make_model("svm", seed=0)  # nothing close: no guess
