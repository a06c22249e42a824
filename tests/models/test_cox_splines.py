"""SplineCox (the coxph_splines family): continuous effects that bend (restricted cubic
splines, linear beyond the outer knots), the rest linear."""

from __future__ import annotations

import io
import json

import joblib
import numpy as np
import pandas as pd
import pytest

from permed.exceptions import PermedError
from permed.models.risk import (
    PenalizedCox,
    SplineCox,
    default_models,
    make_model,
    survival_y,
)
from permed.models.risk._cox_splines import restricted_cubic_basis
from permed.testing import assert_valid_survival
from permed.testing import run_permed as permed


def _u_shaped(n: int, seed: int):
    """Log hazard 1.2 age^2 - 0.5 treated, age uniform on (-2, 2): the youngest and oldest
    patients fare worst, so no single slope of age ranks them."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(-2.0, 2.0, n)
    treated = rng.integers(0, 2, n).astype(float)
    time = rng.exponential(np.exp(-(1.2 * age**2 - 0.5 * treated)))
    censor = rng.exponential(3.0, n)
    return np.column_stack([age, treated]), survival_y(np.minimum(time, censor), time <= censor)


def test_survival_curves_are_probabilities_that_never_rise():
    X, y = _u_shaped(300, 0)
    times = np.quantile(y["time"], np.linspace(0.0, 1.0, 25))
    survival = SplineCox().fit(X, y).predict_survival_function(X, times)
    assert_valid_survival(survival, 300, 25)


def test_a_u_shaped_effect_is_ranked_better_than_by_the_linear_cox_model():
    X, y = _u_shaped(400, 0)
    X_test, y_test = _u_shaped(400, 1)
    linear = PenalizedCox().fit(X, y).score(X_test, y_test)
    splines = SplineCox().fit(X, y).score(X_test, y_test)
    # seed 0/1: linear 0.527 (age's slope is near 0), splines 0.773
    assert linear < 0.56
    assert splines > linear + 0.2


def test_only_columns_with_more_than_ten_values_are_expanded():
    rng = np.random.default_rng(0)
    n = 200
    X = np.column_stack([
        rng.integers(0, 2, n),            # binary (a missing-value indicator, a one-hot level)
        rng.normal(size=n),               # continuous
        rng.integers(0, 10, n),           # 10 values: a score, entered linearly
        rng.integers(0, 11, n),           # 11 values: expanded
    ]).astype(float)
    y = survival_y(rng.exponential(1.0, n), rng.random(n) < 0.7)
    model = SplineCox(n_knots=4).fit(X, y)
    assert model.spline_columns_.tolist() == [1, 3]
    assert model.linear_columns_.tolist() == [0, 2]
    # 2 linear columns, then per expanded column x and 4 knots - 2 truncated-power terms
    assert model.cox_.coef_.shape == (2 + 2 * 3,)
    assert model.design_columns_.tolist() == [0, 2, 1, 1, 1, 3, 3, 3]
    np.testing.assert_array_equal(model._expand(X)[:, :2], X[:, [0, 2]])
    np.testing.assert_array_equal(model._expand(X)[:, [2, 5]], X[:, [1, 3]])


@pytest.mark.parametrize(("n_knots", "quantiles"), [
    (3, [0.10, 0.50, 0.90]),
    (4, [0.05, 0.35, 0.65, 0.95]),
    (5, [0.05, 0.275, 0.50, 0.725, 0.95]),
    (6, [0.05, 0.23, 0.41, 0.59, 0.77, 0.95]),
])
def test_knots_are_at_harrells_default_quantiles(n_knots, quantiles):
    X, y = _u_shaped(300, 0)
    model = SplineCox(n_knots=n_knots).fit(X, y)
    np.testing.assert_allclose(model.knots_[0], np.quantile(X[:, 0], quantiles))
    assert model.cox_.coef_.shape == (1 + n_knots - 1,)


def test_the_basis_spans_the_natural_cubic_splines_of_a_reference():
    # patsy's cr() is a natural cubic regression spline basis (Wood 2006) with the same knots:
    # with a constant, the two bases span the same space (residual 4e-15 on this grid)
    patsy = pytest.importorskip("patsy")
    knots = np.array([0.0, 1.0, 3.0, 7.0, 10.0])
    x = np.linspace(0.0, 10.0, 101)
    reference = np.asarray(patsy.cr(x, knots=(1, 3, 7), lower_bound=0, upper_bound=10))
    basis = np.column_stack([np.ones_like(x), restricted_cubic_basis(x, knots)])
    coef = np.linalg.lstsq(reference, basis, rcond=None)[0]
    np.testing.assert_allclose(reference @ coef, basis, atol=1e-10)
    # Harrell's normalisation: the first term at the last knot
    assert restricted_cubic_basis(np.array([10.0]), knots)[0, 1] == pytest.approx(
        (10.0**3 - 3.0**3 * 10.0 / 3.0) / 100.0)


def test_the_log_hazard_is_linear_beyond_the_outer_knots_and_in_extrapolation():
    X, y = _u_shaped(400, 0)
    model = SplineCox().fit(X, y)
    low, high = model.knots_[0][0], model.knots_[0][-1]
    for grid in (np.linspace(high, 6.0, 50), np.linspace(-6.0, low, 50)):  # training: -2..2
        risk = model.predict(np.column_stack([grid, np.zeros_like(grid)]))
        np.testing.assert_allclose(np.diff(risk, 2), 0.0, atol=1e-9)
    inside = np.linspace(low, high, 50)
    risk = model.predict(np.column_stack([inside, np.zeros_like(inside)]))
    assert np.abs(np.diff(risk, 2)).max() > 1e-4  # between them it bends (the U)


def test_a_column_dominated_by_one_value_stays_linear():
    # the reviewer's noise column: 93% zeros, 41 distinct values; tied quantiles once gave it
    # a free cubic on 7% of patients and hazard ratios of 0.45 to 3.6
    rng = np.random.default_rng(0)
    n = 600
    noise = np.where(rng.random(n) < 0.93, 0.0, rng.integers(1, 41, n).astype(float))
    age = rng.normal(size=n)
    X = np.column_stack([noise, age])
    y = survival_y(rng.exponential(np.exp(-0.5 * age)), rng.random(n) < 0.7)
    model = SplineCox().fit(X, y)
    assert len(np.unique(noise)) > 10
    assert model.spline_columns_.tolist() == [1]
    assert model.linear_columns_.tolist() == [0]
    grid = np.column_stack([np.arange(0.0, 41.0), np.zeros(41)])
    np.testing.assert_allclose(np.diff(model.predict(grid), 2), 0.0, atol=1e-9)


def test_it_round_trips_through_joblib():
    X, y = _u_shaped(200, 0)
    model = SplineCox().fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    loaded = joblib.load(io.BytesIO(buffer.getvalue()))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_survival_function(X, [0.5, 1.0]),
                                  model.predict_survival_function(X, [0.5, 1.0]))


@pytest.mark.parametrize(("params", "message"), [
    ({"n_knots": 2}, r"n_knots=2 must be 3, 4, 5 or 6 \(the knot counts Harrell gives "
                     r"default quantiles for\)"),
    ({"n_knots": 7}, r"n_knots=7 must be 3, 4, 5 or 6"),
    ({"linear_up_to": 0}, r"linear_up_to=0 must be a finite integer above 0"),
    ({"alpha": -1.0}, r"alpha=-1.0 must be a finite number 0 or more"),
])
def test_bad_parameters_are_refused(params, message):
    X, y = _u_shaped(50, 0)
    with pytest.raises(PermedError, match=message):
        SplineCox(**params).fit(X, y)


def test_the_family_is_opt_in():
    assert "coxph_splines" not in default_models()
    model = make_model("coxph_splines", seed=0, params={"n_knots": 5})
    assert isinstance(model, SplineCox)
    assert model.n_knots == 5


def test_train_and_predict_from_the_command_line(tmp_path):
    assert permed("datasets", "export", "gbsg2", tmp_path / "gbsg.csv").returncode == 0
    result = permed("train", tmp_path / "gbsg.csv", "--task", "risk", "--time", "time",
                    "--event", "cens", "--models", "coxph_splines", "--cv", "3",
                    "--bootstrap", "100", "--quiet", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["selected_model"] == "coxph_splines"
    assert metrics["test"]["c_index"]["value"] > 0.6
    ph = metrics["proportional_hazards"]
    assert (ph["model"], ph["selected_assumes_proportional_hazards"]) == ("coxph_splines", True)
    assert ph["features"]["pnodes"]["df"] == 3  # its spline basis, one term
    cohort = pd.read_csv(tmp_path / "gbsg.csv")
    cohort.drop(columns=["time", "cens"]).to_csv(tmp_path / "new.csv", index=False)
    result = permed("predict", tmp_path / "run", tmp_path / "new.csv", "--out",
                    tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(tmp_path / "p.csv")
    risks = predictions.filter(like="risk_at_").to_numpy()
    assert risks.shape == (len(cohort), 3)
    assert np.all(np.diff(risks, axis=1) >= 0)  # the risk by a later horizon is never lower
    # unrestricted B-splines with knots at the min and max: 3-year risks 0.000016 to 0.99995,
    # the patient with the most nodes (51) at 0.007 and "low", 20-30 nodes at 0.92; now
    # 0.04 to 0.95, and every patient with 20 or more nodes in the high group
    assert risks[:, -1].min() > 0.01
    assert risks[:, -1].max() < 0.99
    most_nodes = cohort["pnodes"] >= 20
    assert set(predictions.loc[most_nodes, "risk_group"]) == {"high"}
    assert risks[cohort["pnodes"].idxmax(), -1] > 0.5
