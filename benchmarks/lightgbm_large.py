"""LightGBM's large-cohort settings against its small-cohort defaults, side by side.

On a synthetic cohort (``permed datasets synth``) preprocessed by permed's own preprocessor,
both settings of the ``lightgbm`` family (permed.models.diagnose) are fitted on the same
training rows and compared on the same held-out rows: test AUROC, fitting CPU time, and the
scoring rate of the exported tree ensemble in ONNX Runtime (one thread, so the number does not
depend on what else the machine runs).

    python benchmarks/lightgbm_large.py --rows 1000000 --train 300000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.metrics import roc_auc_score

from _shared import print_table, write_results
from permed.ingest import synthetic_cohort
from permed.models.diagnose import DIAGNOSE_MODELS, make_model
from permed.preprocess import make_preprocessor


def _ort_rate(model, X: np.ndarray) -> float:
    graph = convert_lightgbm(model, initial_types=[("x", FloatTensorType([None, X.shape[1]]))],
                             zipmap=False, target_opset=15)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(graph.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    session.run(None, {"x": X[:1000]})
    start = time.process_time()
    session.run(None, {"x": X})
    return len(X) / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train", type=int, default=300_000)
    args = parser.parse_args()
    cohort = synthetic_cohort(args.rows, seed=0)
    y = cohort["disease"].to_numpy()
    features = cohort[["age", "sex", "bmi", "sbp", "chol", "hba1c", "creatinine", "smoker",
                       "region", "comorbidities"]]
    numeric = [c for c in features if features[c].dtype.kind in "if"]
    categorical = [c for c in features if c not in numeric]
    train, test = slice(0, args.train), slice(args.train, None)
    preprocessor = make_preprocessor(numeric, categorical).fit(features.iloc[train])
    X = np.asarray(preprocessor.transform(features), dtype=np.float32)
    rows = []
    for label, params in (("defaults (small cohorts)", {}),
                          ("large_cohort", DIAGNOSE_MODELS["lightgbm"].large_cohort)):
        model = make_model("lightgbm", 0, params=params)
        start = time.process_time()
        model.fit(X[train], y[train])
        fit = time.process_time() - start
        rows.append({"settings": label, "trees": model.n_estimators,
                     "leaves": model.num_leaves,
                     "test_auroc": round(roc_auc_score(y[test], model.predict_proba(X[test])[:, 1]),
                                         4),
                     "fit_cpu_s": round(fit, 1),
                     "onnx_rows_per_s_1_thread": round(_ort_rate(model, X[test]))})
    rows[1]["fit_ratio"] = round(rows[1]["fit_cpu_s"] / rows[0]["fit_cpu_s"], 2)
    rows[1]["scoring_ratio"] = round(rows[1]["onnx_rows_per_s_1_thread"]
                                     / rows[0]["onnx_rows_per_s_1_thread"], 2)
    print_table(rows, list(rows[1]))
    write_results("lightgbm_large", {"rows": args.rows, "train_rows": args.train,
                                     "results": rows})


if __name__ == "__main__":
    main()
