"""The synthetic cohort: reproducible, and its outcomes follow the stated mechanisms."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from permed.ingest import synthetic_cohort


def test_same_seed_same_cohort():
    pd.testing.assert_frame_equal(synthetic_cohort(500, seed=3), synthetic_cohort(500, seed=3))


def test_truth_columns_only_when_asked():
    assert "true_effect" not in synthetic_cohort(10)
    assert {"p_disease", "propensity", "mu0", "mu1", "true_effect"} <= set(
        synthetic_cohort(10, truth=True))


def test_outcomes_follow_their_mechanisms():
    frame = synthetic_cohort(20_000, seed=1, truth=True)
    # the diagnosis is drawn from p_disease: its AUROC bounds what any model can reach
    oracle = roc_auc_score(frame["disease"], frame["p_disease"])
    features = frame[["age", "sbp", "bmi"]].assign(current=frame["smoker"] == "current")
    fitted = LogisticRegression(max_iter=1000).fit(features, frame["disease"])
    learned = roc_auc_score(frame["disease"], fitted.predict_proba(features)[:, 1])
    assert 0.70 < learned <= oracle + 0.005
    # treatment is confounded: treated patients are older
    assert frame.loc[frame["treatment"] == 1, "age"].mean() > frame["age"].mean() + 2
    # the outcome is mu1 under treatment and mu0 otherwise, plus noise of sd 6
    residual = frame["outcome"] - np.where(frame["treatment"] == 1, frame["mu1"], frame["mu0"])
    assert abs(residual.std() - 6) < 0.2
    assert 0.3 < frame["event"].mean() < 0.8


def test_missing_values_only_in_labs():
    frame = synthetic_cohort(5000, seed=2)
    missing = frame.isna().mean()
    assert set(missing[missing > 0].index) == {"chol", "hba1c", "creatinine"}
    assert (missing[missing > 0] - 0.05).abs().max() < 0.02
