"""Coverage of a small group's AUROC interval: Newcombe's score interval vs the bootstrap.

The fairness audit reports each group's AUROC with a 95% interval. Groups are often small, and
a percentile bootstrap that keeps the group's class counts (what the audit used before) has
zero width when every positive outranks every negative. This simulates binormal scores
(positives N(d, 1), negatives N(0, 1), true AUROC = Phi(d / sqrt 2)) for group sizes a
hospital's subgroup tables meet, and counts how often each interval covers the true AUROC.

Run: .venv/bin/python benchmarks/group_auroc.py  (writes benchmarks/results/group_auroc.json)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import print_table, write_results  # noqa: E402
from permed.evaluate._auroc_interval import auroc_score_interval  # noqa: E402

REPLICATES = 1000
BOOTSTRAP = 500
# (separation d, positives, negatives)
SETTINGS = [(1.0, 10, 30), (1.5, 6, 14), (2.3, 5, 15), (2.3, 15, 30), (3.0, 6, 14),
            (1.0, 40, 80)]


def _auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC of each row's positives against its negatives (ties count one half)."""
    greater = (pos[..., :, None] > neg[..., None, :]).mean(axis=(-2, -1))
    ties = (pos[..., :, None] == neg[..., None, :]).mean(axis=(-2, -1))
    return greater + ties / 2


def _bootstrap(pos: np.ndarray, neg: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile interval, resampling positives and negatives separately."""
    values = _auroc(pos[rng.integers(0, len(pos), (BOOTSTRAP, len(pos)))],
                    neg[rng.integers(0, len(neg), (BOOTSTRAP, len(neg)))])
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    rng = np.random.default_rng(20261130)
    rows = []
    for d, m, n in SETTINGS:
        truth = float(norm.cdf(d / np.sqrt(2)))
        hits = {"score": 0, "bootstrap": 0}
        width = {"score": 0.0, "bootstrap": 0.0}
        for _ in range(REPLICATES):
            pos, neg = rng.normal(d, 1, m), rng.normal(0, 1, n)
            auc = float(_auroc(pos, neg))
            for name, (low, high) in (("score", auroc_score_interval(auc, m, n)),
                                      ("bootstrap", _bootstrap(pos, neg, rng))):
                hits[name] += low <= truth <= high
                width[name] += high - low
        rows.append({"true_auroc": round(truth, 3), "positives": m, "negatives": n,
                     "score_coverage": hits["score"] / REPLICATES,
                     "bootstrap_coverage": hits["bootstrap"] / REPLICATES,
                     "score_width": round(width["score"] / REPLICATES, 3),
                     "bootstrap_width": round(width["bootstrap"] / REPLICATES, 3)})
    print_table(rows, list(rows[0]))
    path = write_results("group_auroc", {
        "protocol": __doc__, "replicates": REPLICATES, "bootstrap_replicates": BOOTSTRAP,
        "nominal": 0.95, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
