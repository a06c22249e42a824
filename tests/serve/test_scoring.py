"""The patients' table the native path and the explainers read: typed as the model's schema
types it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from permed.serve._registry import load_models


def test_the_table_holds_numbers_as_floats_and_the_rest_as_given(runs):
    served = load_models({"vitals": runs["vitals"]}, onnx=False)["vitals"]
    schema = served.schema
    assert "sex" in schema.names  # one column of text
    assert "sex" not in schema.numeric
    patients = [{"age": 7, "sex": "F", "heart_rate": 120.0, "resp_rate": None,
                 "temperature": 101.3, "spo2": 95.5, "weight": 52.0},
                {"age": 12.5, "sex": None, "heart_rate": 88, "resp_rate": 18,
                 "temperature": None, "spo2": 99, "weight": None}]
    table = served.scorer.frame(patients, numbers=True)
    # the same table built the plain way: objects, then the numeric columns as floats
    plain = pd.DataFrame([[p.get(n) for n in schema.names] for p in patients],
                         columns=pd.Index(schema.names, dtype=object), dtype=object)
    plain = plain.astype(dict.fromkeys(schema.numeric, float))
    pd.testing.assert_frame_equal(table, plain)
    assert list(table.columns) == list(schema.names)  # scikit-learn checks the order
    assert table["sex"].dtype == np.dtype(object)
    assert table["sex"].tolist() == ["F", None]
    assert table["resp_rate"].dtype == np.float64
    assert np.isnan(table["resp_rate"][0])
    objects = served.scorer.frame(patients)
    assert set(objects.dtypes) == {np.dtype(object)}
    assert objects["age"].tolist() == [7, 12.5]
    answers = served.scorer.score(patients)[0]
    assert [a["predicted"] for a in answers] == list(
        served.model.predict_frame(plain)["predicted"])


def test_a_mostly_missing_patient_is_referred_on_both_paths(runs):
    fast = load_models({"bc": runs["bc"]}, onnx=True)["bc"]
    assert fast.scorer.onnx is not None, fast.scorer.note
    names = fast.schema.names
    half = dict.fromkeys(names[:len(names) // 2], 1.0)  # the other half missing: not referred
    patients = [{}, dict.fromkeys(names), half]
    reasons = [a["refer_reason"] for a in fast.scorer.score(patients)[0]]
    missing = f"{len(names)} of {len(names)} features missing (filled in from the development "
    assert reasons[0].startswith(missing)
    assert reasons[1].startswith(missing)
    assert "features missing" not in reasons[2]
    table = fast.scorer.frame(patients, numbers=True)
    assert reasons == fast.model.predict_frame(table)["refer_reason"].tolist()
