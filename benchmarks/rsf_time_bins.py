"""Random survival forest: what coarsening the follow-up times costs in absolute risk.

Run: .venv/bin/python benchmarks/rsf_time_bins.py [--datasets metabric,support] [--seeds 0,1,2]

The forest moves follow-up times onto a grid of event-time quantiles before fitting
(``permed.models.risk._forest.coarsen_times``): each node stores a curve over the distinct
times, so the grid keeps the forest fast and small. On each 80/20 split of the pycox CSV
(stratified by event) the forest with its defaults is fitted with

- ``none``: every time kept (the reference);
- ``up50``: events moved up to the next of 50 grid points (the rule before this benchmark);
- ``up100``: the same on 100 points;
- ``nearest50`` / ``nearest100``: events moved to the nearest of 50 / 100 points (censoring
  times, in every variant, down to the previous point).

and compared on: fit seconds, pickled size, test Harrell's C-index, and the *bias* of the
absolute risk: the test patients' mean predicted risk at 41 times evenly spaced between the
10th and 90th percentiles of the development event times, minus the uncoarsened forest's
(``bias``: mean over the times; ``worst``: the largest absolute gap). ``at_median``: the mean
predicted risk at the median development event time, beside the Kaplan-Meier risk of the test
patients. Writes benchmarks/results/rsf_time_bins.json.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sksurv.metrics import concordance_index_censored
from sksurv.nonparametric import kaplan_meier_estimator

sys.path.insert(0, str(Path(__file__).resolve().parent))
import permed.models.risk._forest as forest_module  # noqa: E402
from _shared import SHARED_DATA, print_table, write_results  # noqa: E402
from permed.models.risk import SurvivalForest, survival_y  # noqa: E402

Coarsen = Callable[[np.ndarray, np.ndarray, int | None], np.ndarray]
NEAREST = forest_module.coarsen_times


def coarsen_up(time: np.ndarray, event: np.ndarray, bins: int | None) -> np.ndarray:
    """The previous rule: events up to the next grid point, censoring down."""
    if bins is None or len(np.unique(time[event])) <= bins:
        return time
    grid = np.unique(np.quantile(time[event], np.linspace(0.0, 1.0, bins)))
    out = time.astype(np.float64, copy=True)
    out[event] = grid[np.minimum(np.searchsorted(grid, time[event], side="left"), len(grid) - 1)]
    down = np.searchsorted(grid, time[~event], side="right") - 1
    out[~event] = np.where(down >= 0, grid[np.maximum(down, 0)], time.min())
    return out


VARIANTS: dict[str, tuple[int | None, Coarsen]] = {
    "none": (None, NEAREST), "up50": (50, coarsen_up), "up100": (100, coarsen_up),
    "nearest50": (50, NEAREST), "nearest100": (100, NEAREST),
}


def _risk_at(model: SurvivalForest, X: np.ndarray, times: np.ndarray) -> np.ndarray:
    return 1.0 - model.predict_survival_function(X, times=times)


def run_split(name: str, X: np.ndarray, t: np.ndarray, e: np.ndarray, seed: int) -> list[dict]:
    dev, test = train_test_split(np.arange(len(t)), test_size=0.2, stratify=e,
                                 random_state=seed)
    times = np.quantile(t[dev][e[dev]], np.linspace(0.1, 0.9, 41))
    km_times, km = kaplan_meier_estimator(e[test], t[test])
    km_median = 1.0 - km[np.searchsorted(km_times, times[20], side="right") - 1]
    rows, reference = [], None
    for variant, (bins, coarsen) in VARIANTS.items():
        forest_module.coarsen_times = coarsen
        try:
            started = time.perf_counter()
            model = SurvivalForest(random_state=seed, time_bins=bins).fit(
                X[dev], survival_y(t[dev], e[dev]))
            seconds = time.perf_counter() - started
        finally:
            forest_module.coarsen_times = NEAREST
        mean = _risk_at(model, X[test], times).mean(axis=0)
        reference = mean if reference is None else reference
        rows.append({
            "data": name, "seed": seed, "variant": variant, "fit_s": round(seconds, 2),
            "size_mb": round(len(pickle.dumps(model)) / 1e6, 1),
            "c_index": round(float(concordance_index_censored(
                e[test], t[test], model.predict(X[test]))[0]), 4),
            "bias": round(float(np.mean(mean - reference)), 4),
            "worst": round(float(np.max(np.abs(mean - reference))), 4),
            "at_median": round(float(mean[20]), 4), "km_at_median": round(float(km_median), 4)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="metabric,support")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    rows = []
    for name in args.datasets.split(","):
        path = SHARED_DATA / "survival_pycox_csv" / f"{name}.csv"
        if not path.exists():
            print(f"skipped {name}: {path} not found")
            continue
        frame = pd.read_csv(path, index_col=0)
        X = frame.drop(columns=["duration", "event"]).to_numpy(np.float64)
        t, e = frame["duration"].to_numpy(np.float64), frame["event"].to_numpy(bool)
        for seed in (int(s) for s in args.seeds.split(",")):
            rows += run_split(name, X, t, e, seed)
    columns = ["data", "seed", "variant", "fit_s", "size_mb", "c_index", "bias", "worst",
               "at_median", "km_at_median"]
    print_table(rows, columns)
    print(f"wrote {write_results('rsf_time_bins', {'rows': rows})}")


if __name__ == "__main__":
    main()
