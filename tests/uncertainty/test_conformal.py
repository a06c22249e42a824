"""Conformal sets reach their stated coverage on held-out patients; OOD flags name features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from permed.testing import shared_data
from permed.uncertainty import ConformalSets, OutOfDistribution

SEEDS = range(8)


def _breast_cancer():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)


def _cleveland():
    frame = pd.read_csv(shared_data("uci_heart_cleveland/processed.cleveland.tsv"), sep="\t",
                        na_values=["?"]).dropna()
    return frame.drop(columns="diagnosis").to_numpy(), (frame["diagnosis"] > 0).astype(int)


def _held_out_coverage(X, y, coverage: float, allow_empty: bool) -> float:
    results = []
    for seed in SEEDS:
        X_dev, X_test, y_dev, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=seed)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        folds = StratifiedKFold(5, shuffle=True, random_state=seed)
        oof = cross_val_predict(model, X_dev, y_dev, cv=folds, method="predict_proba")
        sets = ConformalSets(coverage, allow_empty=allow_empty).fit(oof, np.asarray(y_dev))
        proba = model.fit(X_dev, y_dev).predict_proba(X_test)
        results.append(sets.coverage_of(proba, np.asarray(y_test)))
    return float(np.mean(results))


@pytest.mark.parametrize("loader", [_breast_cancer, _cleveland], ids=["breast_cancer", "cleveland"])
@pytest.mark.parametrize("coverage", [0.90, 0.95])
def test_exact_lac_sets_reach_the_stated_coverage(loader, coverage):
    X, y = loader()
    assert abs(_held_out_coverage(X, y, coverage, allow_empty=True) - coverage) <= 0.03


@pytest.mark.parametrize("loader", [_breast_cancer, _cleveland], ids=["breast_cancer", "cleveland"])
def test_non_empty_sets_never_fall_below_the_stated_coverage(loader):
    X, y = loader()
    assert _held_out_coverage(X, y, 0.95, allow_empty=False) >= 0.95 - 0.03


def test_sets_grow_when_the_model_is_unsure():
    p0 = np.linspace(0.4, 1.0, 100)  # the true class (0) had probability 0.4 to 1.0
    sets = ConformalSets(0.9).fit(np.column_stack([p0, 1 - p0]), np.zeros(100, dtype=int))
    assert sets.predict_set(np.array([[0.95, 0.05], [0.5, 0.5]])).tolist() == [
        [True, False], [True, True]]


def test_coverage_must_be_a_probability():
    with pytest.raises(ValueError, match=r"coverage must be in \[0.5, 1\), got 1.2"):
        ConformalSets(1.2)


def test_out_of_distribution_flags_an_unusual_combination():
    # Each value of the second patient lies inside the training range, but together they do
    # not occur: cholesterol rises with age here, and this patient is old with low cholesterol.
    rng = np.random.default_rng(0)
    age = rng.normal(60, 10, 500)
    numeric = pd.DataFrame({"age": age, "chol": 40 + 3 * age + rng.normal(0, 5, 500)})
    scaled = StandardScaler().fit(numeric)
    ood = OutOfDistribution().fit(scaled.transform(numeric), numeric)
    new = pd.DataFrame({"age": [61.0, 80.0], "chol": [223.0, 160.0]})
    assert new["chol"].between(numeric["chol"].min(), numeric["chol"].max()).all()
    assert ood.flag(scaled.transform(new)).tolist() == [False, True]
    assert ood.reasons(new)[1].startswith("age (")
    assert ood.flag(scaled.transform(numeric)).mean() == pytest.approx(0.01, abs=0.005)
