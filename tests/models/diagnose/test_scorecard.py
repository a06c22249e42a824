"""The points scorecard: integer points per band, risk from the total, binary only."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score

from permed.exceptions import PermedError
from permed.models.diagnose import ScorecardClassifier, default_models, make_model


@pytest.fixture(scope="module")
def fitted():
    X, y = load_breast_cancer(return_X_y=True)
    return ScorecardClassifier(max_features=6).fit(X[:400], y[:400]), X, y


def test_points_are_integers_starting_at_zero_for_a_few_features(fitted):
    card, X, _ = fitted
    assert all(p.dtype.kind == "i" and p.min() == 0 for p in card.points_)
    scoring = [j for j, p in enumerate(card.points_) if p.max() > 0]
    assert 1 <= len(scoring) <= 6
    assert max(p.max() for p in card.points_) == card.max_points
    np.testing.assert_array_equal(card.total_points(X[:5]), card.column_points(X[:5]).sum(axis=1))


def test_probability_depends_on_the_total_points_only(fitted):
    card, X, y = fitted
    totals, proba = card.total_points(X), card.predict_proba(X)[:, 1]
    for total in np.unique(totals):
        assert np.ptp(proba[totals == total]) == 0
    expected = 1 / (1 + np.exp(-(card.intercept_ + card.slope_ * totals)))
    np.testing.assert_allclose(proba, expected)
    assert roc_auc_score(y[400:], card.predict_proba(X[400:])[:, 1]) > 0.95


def test_more_than_two_classes_are_refused():
    X, y = load_breast_cancer(return_X_y=True)
    with pytest.raises(PermedError, match=r"Only binary classification is supported by "
                                          r"ScorecardClassifier: y has 3 classes \(0, 1, 2\)"):
        ScorecardClassifier().fit(X[:90], np.arange(90) % 3)


def test_scorecard_is_registered_but_opt_in():
    assert isinstance(make_model("scorecard", seed=0), ScorecardClassifier)
    assert "scorecard" not in default_models()


def test_a_run_with_the_scorecard_reports_its_points_and_accuracy_cost(trust_run):
    run, _ = trust_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["cv"]) == {"logistic", "scorecard"}
    card = metrics["scorecard"]
    assert card["best_other"]["model"] == "logistic"
    assert card["auroc_cost"] == pytest.approx(
        metrics["cv"]["logistic"]["auroc"]["mean"] - metrics["cv"]["scorecard"]["auroc"]["mean"],
        abs=1e-6)
    bands = {f["feature"]: f["bands"] for f in card["features"]}
    assert bands["chol"][0]["band"].startswith("< ")
    assert {b["band"] for b in bands.get("smoker", [])} <= {"= current", "= former", "= never"}
    assert all(isinstance(b["points"], int) for f in card["features"] for b in f["bands"])
    risk = [r["probability"] for r in card["risk"]]
    assert risk == sorted(risk)
    html = (run / "report.html").read_text()
    assert "Glass-box scorecard" in html
    assert "Accuracy cost (AUROC difference)" in html
