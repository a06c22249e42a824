"""SplineCox (the coxph_splines family): continuous effects that bend, the rest linear."""

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
    # 2 linear columns, then 4 knots + 2 cubic basis functions per expanded column
    assert model.cox_.coef_.shape == (2 + 2 * 6,)
    np.testing.assert_array_equal(model._expand(X)[:, :2], X[:, [0, 2]])


def test_tied_quantiles_do_not_collapse_the_basis():
    rng = np.random.default_rng(0)
    dose = np.where(rng.random(300) < 0.7, 0.0, rng.exponential(5.0, 300))  # 70% zeros
    y = survival_y(rng.exponential(np.exp(-0.1 * dose)), rng.random(300) < 0.7)
    model = SplineCox(n_knots=5).fit(dose[:, None], y)
    assert np.all(np.isfinite(model.predict(dose[:, None])))
    assert model.cox_.coef_.shape == (5,)  # knots at 0, q75, max: 3 + 2 basis functions


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
    ({"n_knots": 1}, r"n_knots=1 must be 2 or more"),
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
    assert (ph["model"], ph["selected_assumes_proportional_hazards"]) == ("coxph", True)
    new = pd.read_csv(tmp_path / "gbsg.csv").drop(columns=["time", "cens"]).head(20)
    new.to_csv(tmp_path / "new.csv", index=False)
    result = permed("predict", tmp_path / "run", tmp_path / "new.csv", "--out",
                    tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(tmp_path / "p.csv")
    risks = predictions.filter(like="risk_at_").to_numpy()
    assert risks.shape == (20, 3)
    assert np.all((risks >= 0) & (risks <= 1))
    assert np.all(np.diff(risks, axis=1) >= 0)  # the risk by a later horizon is never lower
