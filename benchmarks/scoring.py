"""Batch scoring of a large cohort: permed's paths side by side with ONNX Runtime and LightGBM.

    python benchmarks/scoring.py [--train 250000] [--rows 1000000]

Trains ``permed train --models lightgbm`` on ``--train`` synthetic patients (from 200 000
development rows LightGBM takes its large-cohort settings), then scores ``--rows`` other
synthetic patients, in rows per second: the streamed ``permed predict`` (Parquet in and out,
every check), ``predict_frame`` in memory (ONNX Runtime), the native ``predict_proba``, ONNX
Runtime's session alone, LightGBM called directly. The machine's load is recorded before and
after. Writes benchmarks/results/scoring.json; a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _shared import print_table, write_results
from permed.ingest import synthetic_cohort
from permed.workflow._scale import _DIAGNOSE, _scoring, _train, machine_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=250_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="permed-scoring-") as tmp:
        folder = Path(tmp)
        synthetic_cohort(args.train, seed=1).to_parquet(folder / "train.parquet", index=False)
        synthetic_cohort(args.rows, seed=0).to_parquet(folder / "score.parquet", index=False)
        training = _train(folder / "train.parquet", folder / "run", _DIAGNOSE, 200)
        if not training["ok"]:
            raise SystemExit(f"training failed: {training.get('error')}")
        before = machine_load()
        rates = _scoring(folder / "run", folder / "score.parquet", folder)
        after = machine_load()
    rows = [{"path": path, "rows_per_s": rate} for path, rate in rates.items()]
    print_table(rows, ["path", "rows_per_s"])
    print(f"machine before {before}, after {after}")
    write_results("scoring", {"train_rows": args.train, "rows": args.rows,
                              "training": training, "rows_per_s": rates,
                              "machine_before": before, "machine_after": after})


if __name__ == "__main__":
    main()
