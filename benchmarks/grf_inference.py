"""Causal forest inference: EconML's predict_and_var against permed's stacked version.

Run: .venv/bin/python benchmarks/grf_inference.py [--trees 500] [--repeats 20]

Fits permed's CausalForest (EconML's CausalForestDML, ``--trees`` trees) on ACTG 175 (four
arms, outcome cd420, the preprocessed features permed's treat protocol gives) and times each
patient count with both: ``model_final_.predict_and_var(X)`` as EconML computes it, and
``permed.models.treat._grf.predict_and_var`` on the same forest. Reports the median CPU time
of ``--repeats`` calls, the ratio, and the largest difference between the two answers. Writes
benchmarks/results/grf_inference.json; a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import SHARED_DATA, print_table, write_results  # noqa: E402
from permed.models.treat import CausalForest  # noqa: E402
from permed.models.treat._grf import predict_and_var  # noqa: E402
from permed.preprocess import make_preprocessor  # noqa: E402

ROWS = (1, 10, 100, 1000)
FEATURES = ["age", "wtkg", "hemo", "homo", "drugs", "karnof", "oprior", "z30", "preanti",
            "race", "gender", "str2", "strat", "symptom", "cd40", "cd80"]


def _cpu_ms(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.process_time()
        call()
        times.append(1000 * (time.process_time() - started))
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    frame = pd.read_csv(SHARED_DATA / "actg175" / "ACTG175.csv", na_values=["NA"])
    X = make_preprocessor(FEATURES, []).fit_transform(frame[FEATURES])
    model = CausalForest(Ridge(), n_estimators=args.trees, random_state=0)
    model.fit(X, frame["cd420"].to_numpy(float), frame["arms"].to_numpy())
    final = model.estimator_.model_final_
    rows = []
    for n in ROWS:
        patients = X[:n]
        theta, cov = final.predict_and_var(patients)
        ours, our_cov = predict_and_var(final, patients)
        econml_ms = _cpu_ms(lambda p=patients: final.predict_and_var(p), args.repeats)
        permed_ms = _cpu_ms(lambda p=patients: predict_and_var(final, p), args.repeats)
        rows.append({"patients": n, "econml_ms": econml_ms, "permed_ms": permed_ms,
                     "speedup": econml_ms / permed_ms,
                     "max_abs_difference": float(max(np.abs(ours - theta).max(),
                                                     np.abs(our_cov - cov).max()))})
    print(f"causal forest ({args.trees} trees, 4 arms) on ACTG 175: effects and variances, "
          f"median CPU ms of {args.repeats} calls")
    print_table([{"patients": r["patients"], "EconML": f"{r['econml_ms']:.1f}",
                  "permed": f"{r['permed_ms']:.1f}", "ratio": f"{r['speedup']:.1f}x",
                  "max |difference|": f"{r['max_abs_difference']:.1e}"} for r in rows],
                ["patients", "EconML", "permed", "ratio", "max |difference|"])
    path = write_results("grf_inference", {"trees": args.trees, "repeats": args.repeats,
                                           "data": "ACTG 175, 4 arms, outcome cd420",
                                           "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
