import numpy as np
import pytest
from scipy.special import expit, logit

from permed.uncertainty import ProbabilityCalibrator, choose_calibration


def _binary_cohort(n, seed, risk):
    """Predicted probabilities ``p`` and outcomes drawn with the true risk ``risk(p)``."""
    rng = np.random.default_rng(seed)
    p = expit(rng.normal(0.0, 1.5, n))
    y = (rng.random(n) < risk(p)).astype(int)
    return np.column_stack([1 - p, p]), y


def _brier(y, proba):
    return float(np.mean((proba[:, 1] - y) ** 2))


def test_isotonic_with_a_tiny_noisy_gain_is_not_chosen():
    # 140 patients whose probabilities are right: isotonic's cross-fitted Brier score is the
    # lowest by 0.0005, far less than one standard error of the paired difference
    proba, y = _binary_cohort(140, 50, risk=lambda p: p)
    method, cross_fitted = choose_calibration(proba, y)
    brier = {m: _brier(y, q) for m, q in cross_fitted.items()}
    assert min(brier, key=brier.get) == "isotonic"
    assert min(brier["none"], brier["sigmoid"]) - brier["isotonic"] < 0.001
    assert method == "none"


@pytest.mark.parametrize(("risk", "expected"), [
    (lambda p: np.where(p < 0.7, 0.3, 0.9), "isotonic"),  # a plateau, then a jump: not logistic
    (lambda p: expit(0.5 * logit(p)), "sigmoid"),  # over-confident on the logit scale
])
def test_a_clear_gain_on_a_few_thousand_patients_is_still_taken(risk, expected):
    proba, y = _binary_cohort(3000, 0, risk)
    method, _ = choose_calibration(proba, y)
    assert method == expected


def test_cross_fitted_probabilities_are_returned_for_every_method():
    proba, y = _binary_cohort(140, 50, risk=lambda p: p)
    _, cross_fitted = choose_calibration(proba, y)
    assert list(cross_fitted) == ["none", "sigmoid", "isotonic"]
    np.testing.assert_array_equal(cross_fitted["none"], proba)


def test_isotonic_two_class_probabilities_stay_off_zero_and_one():
    # every patient below 0.3 is a control and every one above 0.7 a case: unbounded, the
    # isotonic map gives them 0 and 1
    n = 80
    p = np.linspace(0.01, 0.99, n)
    y = np.where(p < 0.3, 0, np.where(p > 0.7, 1, np.arange(n) % 2))
    calibrator = ProbabilityCalibrator("isotonic").fit(np.column_stack([1 - p, p]), y)
    grid = np.linspace(0.0, 1.0, 201)
    out = calibrator.transform(np.column_stack([1 - grid, grid]))
    assert out[:, 1].min() == pytest.approx(1 / (n + 1), abs=1e-15)
    assert out[:, 1].max() == pytest.approx(n / (n + 1), abs=1e-15)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-15)


def test_isotonic_multiclass_probabilities_stay_within_the_renormalized_bound():
    # three classes, each alone where its own probability is highest
    n, k = 90, 3
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(k), n)
    y = proba.argmax(axis=1)
    calibrator = ProbabilityCalibrator("isotonic").fit(proba, y)
    out = calibrator.transform(np.vstack([proba, np.eye(k)]))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
    assert out.min() >= 1 / (1 + (k - 1) * n) - 1e-15
    assert out.max() <= n / (n + k - 1) + 1e-15
