"""Preprocessing learns only from the rows it is fitted on, and survives new categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import check_estimator

from permed.preprocess import QuantileClipper, make_preprocessor


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"age": [50.0, np.nan, 70.0, 90.0],
                         "smoker": ["never", "current", None, "never"]}).astype(
        {"smoker": object})


def test_statistics_come_from_the_fitted_rows_only():
    frame = _frame()
    pre = make_preprocessor(["age"], ["smoker"]).fit(frame.iloc[:3])
    imputer = pre.named_transformers_["numeric"].named_steps["impute"]
    assert imputer.statistics_.tolist() == [60.0]  # median of 50 and 70, not of 50, 70, 90


def test_missing_indicator_and_one_hot_columns():
    out = make_preprocessor(["age"], ["smoker"]).fit_transform(_frame())
    # scaled age, scaled age-was-missing indicator, one-hot smoker (current, never)
    assert out.shape == (4, 4)
    indicator = out[:, 1]
    assert indicator[1] > 0
    assert np.allclose(indicator[[0, 2, 3]], indicator[0])
    assert out[:, 2:].tolist() == [[0, 1], [1, 0], [0, 1], [0, 1]]  # missing -> most frequent


def test_unknown_category_at_predict_time_is_all_zeros():
    pre = make_preprocessor([], ["smoker"]).fit(_frame())
    new = pd.DataFrame({"smoker": ["vaping"]}).astype(object)
    assert pre.transform(new).tolist() == [[0.0, 0.0]]


def test_clipping_uses_training_quantiles():
    clipper = QuantileClipper(0.0, 0.5).fit(np.array([[1.0], [2.0], [3.0], [np.nan]]))
    assert clipper.transform(np.array([[9.0], [-1.0], [np.nan]]))[:2].ravel().tolist() == [
        2.0, 1.0]


def test_clipper_refuses_bad_quantiles():
    with pytest.raises(ValueError, match="needs 0 <= lower <= upper <= 1, got lower=0.9"):
        QuantileClipper(0.9, 0.1).fit(np.ones((3, 1)))


def test_clipper_passes_scikit_learn_checks():
    results = check_estimator(QuantileClipper(), on_fail=None)
    assert [r["check_name"] for r in results if r["status"] == "failed"] == []
