"""Out-of-distribution flags: scikit-learn's LedoitWolf against permed's low-rank form.

Run: .venv/bin/python benchmarks/ood_fit.py [--repeats 3]

``OutOfDistribution.fit`` fits the Ledoit-Wolf covariance six times (five folds set the
cutoff, then all rows). With more columns than patients (genes, note terms) scikit-learn's
``LedoitWolf`` inverts a p x p matrix; ``permed.uncertainty._ood.ShrunkMahalanobis`` gives the
same squared distances through the n x n Gram matrix. Timed on the Golub leukemia training
set as permed preprocesses it (38 patients, the 1,000 most variable genes, log-scaled) and on
random tables of growing width. Reports the median wall time of one fit with each, their
ratio, and the largest relative difference of the distances of 20 rows. Writes
benchmarks/results/ood_fit.json; a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.covariance import LedoitWolf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import SHARED_DATA, print_table, write_results  # noqa: E402
from permed.ingest.genes import read_expression  # noqa: E402
from permed.preprocess._genes import gene_pipeline  # noqa: E402
from permed.uncertainty._ood import ShrunkMahalanobis  # noqa: E402


def golub() -> np.ndarray | None:
    path = SHARED_DATA / "golub_leukemia" / "data_set_ALL_AML_train.csv"
    if not path.exists():
        return None
    table = read_expression(path)
    genes = table[[c for c in table.columns if str(c).startswith("gene_")]]
    return gene_pipeline().fit_transform(genes)


def _seconds(fit, X: np.ndarray, repeats: int) -> tuple[float, object]:
    times, fitted = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        fitted = fit(X)
        times.append(time.perf_counter() - started)
    return statistics.median(times), fitted


def compare(name: str, X: np.ndarray, repeats: int) -> dict:
    sklearn_s, theirs = _seconds(lambda a: LedoitWolf().fit(a), X, repeats)
    permed_s, ours = _seconds(lambda a: ShrunkMahalanobis().fit(a), X, repeats)
    rows = X[:20]
    expected = theirs.mahalanobis(rows)
    difference = float(np.max(np.abs(ours.mahalanobis(rows) - expected) / np.abs(expected)))
    return {"table": name, "patients": X.shape[0], "columns": X.shape[1],
            "sklearn_s": round(sklearn_s, 4), "permed_s": round(permed_s, 4),
            "ratio": round(sklearn_s / permed_s, 1), "max_relative_difference": difference}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    tables = [] if (genes := golub()) is None else [("Golub train, 1,000 genes", genes)]
    tables += [(f"random {n} x {p}", rng.normal(size=(n, p)) * rng.uniform(0.1, 3.0, p))
               for n, p in ((100, 50), (100, 500), (100, 2000), (300, 5000))]
    results = [compare(name, X, args.repeats) for name, X in tables]
    print_table([{**r, "max_relative_difference": f"{r['max_relative_difference']:.1e}"}
                 for r in results], list(results[0]))
    path = write_results("ood_fit", {"protocol": __doc__, "results": results})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
