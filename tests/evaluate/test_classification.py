import math

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, logit
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.preprocessing import label_binarize

from permed.evaluate import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    PER_CLASS_METRICS,
    bootstrap_ci,
    bootstrap_many,
    calibration_slope_intercept,
    classification_report,
    cv_summary,
    expected_calibration_error,
    net_benefit,
    point_metrics,
    threshold_for_sensitivity,
    youden_threshold,
)
from permed.exceptions import PermedError

TOL = 1e-12


def _binary_data(n, seed, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = expit(1.5 * (y - 0.5) + rng.normal(0, 1, n))
    if ties:
        p = np.round(p, 1)
    return y, p


def _iris_like(n_train=150, n_test=150, seed=0):
    """Three Gaussian classes in four dimensions, probabilities from a logistic model."""
    x, y = make_blobs(
        n_samples=n_train + n_test, centers=3, n_features=4, cluster_std=2.5, random_state=seed
    )
    model = LogisticRegression(max_iter=1000).fit(x[:n_train], y[:n_train])
    return y[n_train:], model.predict_proba(x[n_train:])


@pytest.mark.parametrize(("seed", "ties"), [(0, False), (1, True), (2, False), (3, True)])
def test_binary_point_metrics_match_sklearn(seed, ties):
    y, p = _binary_data(120, seed, ties)
    threshold = 0.4
    label = (p >= threshold).astype(int)
    m = point_metrics(y, np.column_stack([1 - p, p]), threshold=threshold)
    assert list(m) == list(BINARY_METRICS)
    expected = {
        "auroc": roc_auc_score(y, p),
        "auprc": average_precision_score(y, p),
        "accuracy": accuracy_score(y, label),
        "sensitivity": recall_score(y, label),
        "specificity": recall_score(y, label, pos_label=0),
        "ppv": precision_score(y, label),
        "npv": precision_score(y, label, pos_label=0),
        "f1": f1_score(y, label),
        "brier": brier_score_loss(y, p),
    }
    for name, value in expected.items():
        assert m[name] == pytest.approx(value, abs=TOL), name


def test_one_dimensional_proba_is_the_positive_class():
    y, p = _binary_data(50, 4)
    assert point_metrics(y, p) == point_metrics(y, np.column_stack([1 - p, p]))


@pytest.mark.parametrize("seed", [0, 1])
def test_multiclass_point_metrics_match_sklearn(seed):
    y, proba = _iris_like(seed=seed)
    label = proba.argmax(axis=1)
    m = point_metrics(y, proba)
    assert list(m) == list(MULTICLASS_METRICS)
    onehot = label_binarize(y, classes=[0, 1, 2])
    expected = {
        "auroc": roc_auc_score(y, proba, multi_class="ovr", average="macro"),
        "auprc": average_precision_score(onehot, proba, average="macro"),
        "accuracy": accuracy_score(y, label),
        "sensitivity": recall_score(y, label, average="macro"),
        "ppv": precision_score(y, label, average="macro"),
        "f1": f1_score(y, label, average="macro"),
        "brier": brier_score_loss(y, proba),
        "brier_by_hand": np.mean(np.sum((proba - onehot) ** 2, axis=1)),
        "specificity": np.mean(
            [recall_score(y != c, label != c) for c in range(3)]
        ),
        "npv": np.mean([precision_score(y != c, label != c) for c in range(3)]),
    }
    for name, value in expected.items():
        assert m[name.replace("_by_hand", "")] == pytest.approx(value, abs=TOL), name


def test_calibration_slope_matches_sklearn_and_intercept_matches_offset_mle():
    y, p = _binary_data(300, 5)
    p = expit(0.6 * logit(p) + 0.3)  # miscalibrated on purpose
    result = calibration_slope_intercept(y, p)
    x = logit(p)
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x[:, None], y)
    assert result["slope"] == pytest.approx(reference.coef_[0, 0], abs=1e-6)

    def neg_loglik(a):
        eta = a + x
        return -np.sum(y * eta - np.logaddexp(0.0, eta))

    intercept = minimize_scalar(neg_loglik, bounds=(-5, 5), method="bounded",
                                options={"xatol": 1e-10}).x
    assert result["intercept"] == pytest.approx(intercept, abs=1e-6)


def test_calibration_of_well_calibrated_model_is_near_ideal():
    rng = np.random.default_rng(6)
    p = rng.uniform(0.05, 0.95, 20_000)
    y = (rng.random(p.size) < p).astype(int)
    result = calibration_slope_intercept(y, p)
    assert result["slope"] == pytest.approx(1.0, abs=0.06)
    assert result["intercept"] == pytest.approx(0.0, abs=0.05)
    assert expected_calibration_error(y, p) < 0.02


def _isotonic_like_cohort():
    """124 patients on five probabilities, 14 at exactly 0 and 27 at exactly 1 (3 of each wrong)."""
    levels = [(0.0, 11, 3), (0.2, 15, 5), (0.45, 13, 12), (0.7, 12, 26), (1.0, 3, 24)]
    p = np.concatenate([[value] * (neg + pos) for value, neg, pos in levels])
    y = np.concatenate([[0] * neg + [1] * pos for _, neg, pos in levels])
    return y, p


def _logistic_mle(y, x):
    """(a, b) of logit P(y=1) = a + b * x by BFGS on the log-likelihood."""
    def neg_loglik(theta):
        eta = theta[0] + theta[1] * x
        return -np.sum(y * eta - np.logaddexp(0.0, eta))

    def gradient(theta):
        resid = y - expit(theta[0] + theta[1] * x)
        return -np.array([resid.sum(), (resid * x).sum()])

    return minimize(neg_loglik, np.zeros(2), jac=gradient, method="BFGS",
                    options={"gtol": 1e-10}).x


def test_calibration_slope_with_probabilities_of_zero_and_one_matches_the_mle():
    # full Newton steps from (a, b) = (0, 1) at logits of +-23 diverged: the slope was nan
    y, p = _isotonic_like_cohort()
    result = calibration_slope_intercept(y, p)
    x = logit(np.clip(p, 1e-10, 1 - 1e-10))
    assert result["slope"] == pytest.approx(_logistic_mle(y, x)[1], abs=1e-6)
    assert result["slope"] == pytest.approx(0.0795023, abs=1e-6)
    intercept = minimize_scalar(lambda a: -np.sum(y * (a + x) - np.logaddexp(0.0, a + x)),
                                bounds=(-5, 5), method="bounded", options={"xatol": 1e-10}).x
    assert result["intercept"] == pytest.approx(intercept, abs=1e-6)


def test_calibration_slope_with_probabilities_of_zero_and_one_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    y, p = _isotonic_like_cohort()
    x = logit(np.clip(p, 1e-10, 1 - 1e-10))
    glm = sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit()
    assert calibration_slope_intercept(y, p)["slope"] == pytest.approx(glm.params[1], abs=1e-6)


@pytest.mark.parametrize("p", [
    [0.1, 0.2, 0.5, 0.5, 0.8, 0.9],  # quasi-complete: tied at the cut
    [0.9, 0.8, 0.7, 0.3, 0.2, 0.1],  # every positive below every negative
    [1e-12, 0.0, 1e-11, 0.0, 0.5, 0.9],  # overlapping until 0 and 1e-11 clip to one logit
])
def test_calibration_slope_is_nan_under_separation(p):
    y = np.array([0, 0, 0, 1, 1, 1])
    result = calibration_slope_intercept(y, np.array(p))
    assert math.isnan(result["slope"])
    assert math.isfinite(result["intercept"])  # calibration-in-the-large still exists


def test_ece_binary_by_hand():
    y = np.array([0, 1, 1, 0, 1])
    p1 = np.array([0.05, 0.15, 0.55, 0.58, 0.95])
    # bins: [0, .1): p .05 y 0 -> |0 - .05|; [.1, .2): |1 - .15|; [.5, .6): |.5 - .565| x 2;
    # [.9, 1]: |1 - .95|
    expected = (0.05 + 0.85 + 2 * 0.065 + 0.05) / 5
    assert expected_calibration_error(y, p1) == pytest.approx(expected, abs=TOL)
    assert expected_calibration_error(y, p1, n_bins=1) == pytest.approx(abs(0.6 - 0.456), abs=TOL)


def test_ece_multiclass_is_top_label():
    y = np.array([0, 1, 2, 2])
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.1, 0.3], [0.2, 0.2, 0.6]])
    # top probabilities .7 (right), .8 (right), .6 (wrong), .6 (right):
    # bin [.7, .8): |1 - .7|; bin [.8, .9): |1 - .8|; bin [.6, .7): |.5 - .6| x 2
    expected = (0.3 + 0.2 + 2 * 0.1) / 4
    assert expected_calibration_error(y, proba) == pytest.approx(expected, abs=TOL)


def test_perfect_predictor():
    y = np.array([0, 1] * 30)
    m = point_metrics(y, y.astype(float))
    assert m["auroc"] == 1.0
    assert m["auprc"] == 1.0
    assert m["ece"] == pytest.approx(0.0, abs=TOL)
    assert m["brier"] == 0.0
    assert m["accuracy"] == m["sensitivity"] == m["specificity"] == 1.0
    # the recalibration model does not exist under perfect separation
    assert math.isnan(m["calibration_slope"])
    assert math.isnan(m["calibration_intercept"])


def test_undefined_values_are_nan_not_errors():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4])
    m = point_metrics(y, p, threshold=0.9)  # nothing predicted positive
    assert math.isnan(m["ppv"])
    assert m["sensitivity"] == 0.0
    assert m["npv"] == 0.5
    one_class = point_metrics(np.zeros(4, dtype=int), p)
    assert math.isnan(one_class["auroc"])
    assert math.isnan(one_class["auprc"])
    assert math.isnan(one_class["sensitivity"])
    assert math.isnan(one_class["calibration_slope"])


def test_youden_threshold_known_example():
    y = [0, 0, 0, 1, 1, 1]
    p = [0.1, 0.3, 0.6, 0.4, 0.7, 0.9]
    # J at 0.7: 2/3 - 0; at 0.4: 1 - 1/3; at 0.6: 2/3 - 1/3 -> tie of 2/3, highest wins
    assert youden_threshold(y, p) == 0.7
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.3, 0.35, 0.8]) == 0.35


def test_youden_threshold_needs_both_classes():
    with pytest.raises(PermedError, match="youden_threshold needs both classes in y"):
        youden_threshold([1, 1, 1], [0.2, 0.5, 0.9])


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95, 1.0])
def test_threshold_for_sensitivity_achieves_target(target):
    y, p = _binary_data(200, 7)
    t = threshold_for_sensitivity(y, p, target)
    pos = p[y == 1]
    assert np.mean(pos >= t) >= target
    # it is the largest such threshold: anything above misses the target
    assert np.mean(pos > t) < target


def test_threshold_for_sensitivity_rejects_bad_target():
    with pytest.raises(PermedError, match=r"target sensitivity must be in \(0, 1\], got 1.5"):
        threshold_for_sensitivity([0, 1], [0.2, 0.8], 1.5)


def test_bootstrap_ci_contains_value_and_narrows_with_n():
    widths = []
    for n in (100, 1000):
        y, p = _binary_data(n, 8)
        ci = bootstrap_ci(lambda t, q: point_metrics(t, q)["auroc"], y, p, n_boot=300, seed=1)
        assert ci["value"] == pytest.approx(roc_auc_score(y, p), abs=TOL)
        assert ci["ci_low"] <= ci["value"] <= ci["ci_high"]
        widths.append(ci["ci_high"] - ci["ci_low"])
    assert widths[1] < 0.6 * widths[0]


def test_bootstrap_is_reproducible_with_the_same_seed():
    y, p = _binary_data(114, 9)
    first = classification_report(y, p, ["neg", "pos"], n_boot=200, seed=3)
    again = classification_report(y, p, ["neg", "pos"], n_boot=200, seed=3)
    other = classification_report(y, p, ["neg", "pos"], n_boot=200, seed=4)
    assert first == again
    assert first["test"]["auroc"]["ci_low"] != other["test"]["auroc"]["ci_low"]


def test_stratified_bootstrap_keeps_class_counts():
    y = np.array([0] * 30 + [1] * 10)
    prevalence = bootstrap_ci(lambda t: t.mean(), y, n_boot=100)
    assert prevalence == {"value": 0.25, "ci_low": 0.25, "ci_high": 0.25}
    free = bootstrap_ci(lambda t: t.mean(), y, n_boot=100, stratify=False)
    assert free["ci_low"] < 0.25 < free["ci_high"]


def test_bootstrap_drops_undefined_replicates_and_gives_nan_below_half():
    y = np.arange(20) % 2
    calls = iter(range(10_000))

    def mostly_undefined(t):
        if next(calls) % 3:  # the full-data call works, then two replicates in three fail
            raise ValueError("undefined")
        return 1.0

    ci = bootstrap_ci(mostly_undefined, y, n_boot=60)
    assert ci["value"] == 1.0
    assert math.isnan(ci["ci_low"])
    assert math.isnan(ci["ci_high"])

    calls = iter(range(10_000))

    def rarely_undefined(t):
        if next(calls) % 3 == 1:  # one replicate in three fails: those are dropped
            raise ValueError("undefined")
        return 1.0

    assert bootstrap_ci(rarely_undefined, y, n_boot=60) == {
        "value": 1.0, "ci_low": 1.0, "ci_high": 1.0
    }

    def sometimes_nan(t):
        return float("nan") if t[:3].sum() == 3 else float(t.mean())

    ci = bootstrap_ci(sometimes_nan, y, n_boot=60, stratify=False)
    assert ci["ci_low"] <= ci["ci_high"]


def test_bootstrap_many_reuses_the_same_resamples():
    y, p = _binary_data(80, 10)
    out = bootstrap_many(
        {"auroc": roc_auc_score, "auroc_again": roc_auc_score, "brier": brier_score_loss},
        y,
        p,
        n_boot=50,
        seed=2,
    )
    assert out["auroc"] == out["auroc_again"]
    assert out["auroc"] == bootstrap_ci(roc_auc_score, y, p, n_boot=50, seed=2)
    assert list(out) == ["auroc", "auroc_again", "brier"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_boot": 0}, "n_boot must be a positive integer, got 0"),
        ({"confidence": 95}, "confidence must be strictly between 0 and 1, got 95"),
    ],
)
def test_bootstrap_rejects_bad_options(kwargs, message):
    with pytest.raises(PermedError, match=message):
        bootstrap_ci(np.mean, np.array([0, 1]), **kwargs)


def test_bootstrap_rejects_arrays_of_different_lengths():
    with pytest.raises(PermedError, match=r"every array must have 3 rows like y_true"):
        bootstrap_ci(roc_auc_score, np.array([0, 1, 1]), np.array([0.1, 0.9]))


def test_binary_report_shape_and_confusion_matrix():
    y, p = _binary_data(114, 11)
    report = classification_report(y, p, ["benign", "malignant"], threshold=0.6, n_boot=200)
    assert set(report) == {"test", "confusion_matrix", "bootstrap"}
    assert list(report["test"]) == list(BINARY_METRICS)
    for name, ci in report["test"].items():
        assert set(ci) == {"value", "ci_low", "ci_high"}
        assert ci["value"] == pytest.approx(point_metrics(y, p, threshold=0.6)[name], abs=TOL)
    for name in ("auroc", "accuracy", "sensitivity", "brier"):
        ci = report["test"][name]
        assert ci["ci_low"] <= ci["value"] <= ci["ci_high"], name
    expected = confusion_matrix(y, (p >= 0.6).astype(int)).tolist()
    assert report["confusion_matrix"] == {"labels": ["benign", "malignant"], "matrix": expected}
    assert report["bootstrap"] == {
        "replicates": 200, "confidence": 0.95, "method": "stratified percentile", "seed": 0
    }


def test_multiclass_report_has_per_class_one_vs_rest():
    y, proba = _iris_like(seed=3)
    classes = ["setosa", "versicolor", "virginica"]
    report = classification_report(y, proba, classes, n_boot=200, seed=1)
    assert list(report["test"]) == list(MULTICLASS_METRICS)
    assert list(report["per_class"]) == classes
    for c, name in enumerate(classes):
        figures = report["per_class"][name]
        assert list(figures) == list(PER_CLASS_METRICS)
        assert figures["auroc"]["value"] == pytest.approx(
            roc_auc_score(y == c, proba[:, c]), abs=TOL
        )
        assert figures["ppv"]["value"] == pytest.approx(
            precision_score(y == c, proba.argmax(axis=1) == c), abs=TOL
        )
        assert figures["auroc"]["ci_low"] <= figures["auroc"]["value"] <= figures["auroc"][
            "ci_high"]
    matrix = np.array(report["confusion_matrix"]["matrix"])
    assert matrix.shape == (3, 3)
    assert matrix.sum() == len(y)
    assert np.array_equal(matrix, confusion_matrix(y, proba.argmax(axis=1)))


def test_report_rejects_wrong_number_of_class_names():
    with pytest.raises(PermedError, match=r"classes names 3 classes \['a', 'b', 'c'\] but "
                                          r"proba has 2 columns"):
        classification_report([0, 1], [0.2, 0.7], ["a", "b", "c"], n_boot=10)


@pytest.mark.parametrize(
    ("y", "proba", "message"),
    [
        ([0, 1, 2], [0.1, 0.5, 0.9], r"y must hold class indices 0..1 for the 2 columns"),
        (["a", "b"], [0.1, 0.5], "y must hold integer class indices 0..K-1"),
        ([0, 1], [0.1, 1.5], r"proba must hold probabilities in \[0, 1\] without nan"),
        ([0, 1], [[0.1, 0.5, 0.4]], r"proba must have shape \(n, K\) with n = 2 rows"),
    ],
)
def test_bad_inputs_raise_permed_error(y, proba, message):
    with pytest.raises(PermedError, match=message):
        point_metrics(y, proba)


def test_net_benefit_treat_all_at_known_prevalence():
    y = np.array([1] * 25 + [0] * 75)  # prevalence 0.25
    p = np.linspace(0.01, 0.99, 100)
    thresholds = np.array([0.1, 0.2, 0.25, 0.5])
    nb = net_benefit(y, p, thresholds)
    odds = thresholds / (1 - thresholds)
    assert np.allclose(nb["treat_all"], 0.25 - 0.75 * odds, atol=TOL)
    assert nb["treat_all"][1] == pytest.approx(0.0625, abs=TOL)
    assert nb["treat_all"][2] == pytest.approx(0.0, abs=TOL)  # threshold = prevalence
    for i, t in enumerate(thresholds):
        treated = p >= t
        tp = np.sum(treated & (y == 1))
        fp = np.sum(treated & (y == 0))
        assert nb["model"][i] == pytest.approx(tp / 100 - fp / 100 * t / (1 - t), abs=TOL)
    assert np.array_equal(nb["threshold"], thresholds)


def test_net_benefit_rejects_threshold_of_one():
    with pytest.raises(PermedError, match="strictly between 0 and 1"):
        net_benefit([0, 1], [0.2, 0.8], [0.5, 1.0])


def test_macro_ppv_counts_a_class_never_predicted_as_zero_like_scikit_learn():
    # class 2 is in y but never predicted: its PPV is undefined; left out, the macro PPV would
    # reward never predicting a rare class
    y = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1],
                      [0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.7, 0.2, 0.1], [0.3, 0.6, 0.1]])
    got = point_metrics(y, proba)["ppv"]
    assert got == pytest.approx(precision_score(y, proba.argmax(axis=1), average="macro",
                                                zero_division=0), abs=TOL)
    assert got < (3 / 5 + 3 / 3) / 2  # the mean over the predicted classes alone


def test_cv_summary_is_nan_aware():
    folds = [
        {"auroc": 0.8, "ppv": float("nan")},
        {"auroc": 0.9, "ppv": float("nan")},
        {"auroc": float("nan"), "ppv": float("nan"), "brier": 0.1},
    ]
    summary = cv_summary(folds)
    assert list(summary) == ["auroc", "ppv", "brier"]
    assert summary["auroc"]["mean"] == pytest.approx(0.85, abs=TOL)
    assert summary["auroc"]["std"] == pytest.approx(np.std([0.8, 0.9]), abs=TOL)
    assert summary["auroc"]["folds"] == 2  # of 3: said, so one fold's figure is not a mean
    assert math.isnan(summary["ppv"]["mean"])
    assert math.isnan(summary["ppv"]["std"])
    assert summary["brier"] == {"mean": 0.1, "std": 0.0, "folds": 1}
    assert "folds" not in cv_summary(folds[:2])["auroc"]


def test_the_calibration_intercepts_interval_covers_a_calibrated_models_zero():
    """The class-stratified bootstrap keeps the number of events, which the intercept measures:
    its interval covered 0 for 65 of 100 calibrated test sets; the Wald interval for 98."""
    rng = np.random.default_rng(0)
    covered = 0
    for replicate in range(100):
        p = rng.uniform(0.05, 0.95, 200)
        y = (rng.random(200) < p).astype(int)
        entry = classification_report(y, p, ["no", "yes"], n_boot=100,
                                      seed=replicate)["test"]["calibration_intercept"]
        covered += entry["ci_low"] <= 0.0 <= entry["ci_high"]
    assert covered >= 90
