"""Risk benchmark: how much one test split's C-index moves with the split.

Run: .venv/bin/python benchmarks/risk_splits.py [--seeds 20] [--datasets metabric,support]
     [--families] [--compare OLD.json [--reuse]]

`permed train DATA --task risk` as a user runs it (every default: the families, 5-fold CV,
selection by CV Harrell's C, an 80/20 development/test split stratified by event), once per
seed: the seed draws the test split and the CV folds. Seed 42 is permed's default, the split a
user (and the shared check B1) gets. The table gives each dataset's distribution of the test
Harrell's C over the seeds, the default seed's value and rank, and how many seeds reach the
DeepSurv paper's Cox figure + margin that check B1 asks for (METABRIC 0.64, SUPPORT 0.60), so
that one split's figure is read against the spread of the protocol rather than alone. Each run
also records its explanation step's seconds, whether the ensemble was kept, and Kendall's tau
between the test patients' risk score and their absolute risk at the middle horizon.
`--families` also trains each default family alone (`--models NAME`) on the same splits, to show
whether any family, rather than the CV selection among them, would reach the floor.
`--compare OLD.json` sets this run against a risk_splits.json written by another revision of
permed (for example the code before a change, run with `PYTHONPATH` at that revision): the
paired difference of the test C-index on each seed both ran, its mean and SD, its standard
error corrected for the overlap of the splits' training sets (Nadeau & Bengio 2003: the variance
times 1/J + 0.2/0.8 for J splits, not 1/J), and how many seeds it improved; `--reuse` takes
this side's runs from benchmarks/results/risk_splits.json instead of training again. Bootstrap
replicates are cut to 100 (the point estimate does not depend on them). Writes
benchmarks/results/risk_splits.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import SHARED_DATA, print_table, write_results  # noqa: E402
from permed.models.risk import default_models  # noqa: E402
from permed.study import Study  # noqa: E402
from permed.workflow import TrainConfig, train_run  # noqa: E402

DEFAULT_SEED = TrainConfig().seed
TEST_SHARE = TrainConfig().test_size
FLOORS = {"metabric": 0.64, "support": 0.60}  # shared check B1
RESULTS = Path(__file__).resolve().parent / "results" / "risk_splits.json"


def run_seed(data: Path, seed: int, folder: Path, models: list[str]) -> dict:
    started = time.perf_counter()
    run = train_run(data, Study(task="risk", time="duration", event="event"),
                    TrainConfig(models=models, seed=seed, n_boot=100),
                    folder / f"seed{seed}-{'-'.join(models) or 'default'}")
    seconds = time.perf_counter() - started
    metrics = json.loads((run / "metrics.json").read_text())
    selected = metrics["selected_model"]
    return {"seed": seed, "selected_model": selected,
            "cv_c_index": metrics["cv"][selected]["c_index"]["mean"],
            "test_c_index": metrics["test"]["c_index"]["value"],
            "seconds": round(seconds, 1),
            "explain_seconds": metrics["timings"].get("explain"),
            "ensemble_kept": metrics["selection"].get("ensemble_kept"),
            "score_risk_tau": _score_risk_tau(run, metrics)}


def _score_risk_tau(run: Path, metrics: dict) -> float:
    """Kendall's tau, on the test split, between the risk score and the absolute risk at the
    middle horizon: 1 when they order patients alike (a proportional-hazards model)."""
    import pandas as pd
    from scipy.stats import kendalltau

    horizons = metrics["horizons"]["values"]
    middle = horizons[len(horizons) // 2]
    predictions = pd.read_csv(run / "predictions.csv")
    column = next(c for c in predictions.columns
                  if c.startswith("risk_at_") and float(c.removeprefix("risk_at_")) == middle)
    return float(kendalltau(predictions["risk_score"], predictions[column]).statistic)


def summary(name: str, runs: list[dict]) -> dict:
    test = np.array([r["test_c_index"] for r in runs])
    cv = np.array([r["cv_c_index"] for r in runs])
    default = next(r for r in runs if r["seed"] == DEFAULT_SEED)["test_c_index"]
    floor = FLOORS.get(name)
    return {"seeds": len(runs), "test_mean": float(test.mean()), "test_sd": float(test.std(ddof=1)),
            "test_min": float(test.min()), "test_max": float(test.max()),
            "cv_mean": float(cv.mean()), "default_seed": DEFAULT_SEED,
            "default_seed_test": default,
            "default_seed_rank": int((test < default).sum()) + 1,
            "floor": floor,
            "reaching_floor": None if floor is None else int((test >= floor).sum()),
            **{f"mean_{key}": _mean(runs, key)
               for key in ("seconds", "explain_seconds", "score_risk_tau")}}


def _mean(runs: list[dict], key: str) -> float | None:
    found = [r[key] for r in runs if r.get(key) is not None]
    return float(np.mean(found)) if found else None


def table_row(dataset: str, models: str, s: dict) -> dict:
    return {
        "dataset": dataset, "models": models, "seeds": s["seeds"],
        "test C mean (SD)": f"{s['test_mean']:.3f} ({s['test_sd']:.3f})",
        "test C range": f"{s['test_min']:.3f}-{s['test_max']:.3f}",
        "CV C mean": f"{s['cv_mean']:.3f}",
        f"seed {DEFAULT_SEED} test C (rank)":
            f"{s['default_seed_test']:.3f} ({s['default_seed_rank']} of {s['seeds']})",
        "reaching B1 floor": ("" if s["floor"] is None
                              else f"{s['reaching_floor']} of {s['seeds']} (>= {s['floor']})"),
        "s per run (explain)": f"{s['mean_seconds']:.1f} ({s['mean_explain_seconds']:.1f})",
        "score/risk tau": f"{s['mean_score_risk_tau']:.3f}"}


def splits(name: str, data: Path, seeds: list[int], folder: Path, models: list[str]) -> dict:
    runs = []
    for seed in seeds:
        runs.append(run_seed(data, seed, folder, models))
        print(f"{name} {'+'.join(models) or 'default'} seed {seed}: "
              f"test C {runs[-1]['test_c_index']:.4f}", file=sys.stderr)
    return {"runs": runs, "summary": summary(name, runs)}


def compare(new: dict, old: dict) -> dict:
    """Paired test C-index differences (new - old) on the seeds both runs have."""
    before = {r["seed"]: r["test_c_index"] for r in old["runs"]}
    seeds = [r["seed"] for r in new["runs"] if r["seed"] in before]
    after = {r["seed"]: r["test_c_index"] for r in new["runs"]}
    gain = np.array([after[s] - before[s] for s in seeds])
    # the splits' training sets overlap: Nadeau & Bengio's corrected standard error (1/J plus
    # test/train size, 0.2/0.8), not the plain sd/sqrt(J)
    error = float(gain.std(ddof=1) * np.sqrt(1 / len(seeds) + TEST_SHARE / (1 - TEST_SHARE)))
    return {"seeds": len(seeds), "old_mean": float(np.mean([before[s] for s in seeds])),
            "new_mean": float(np.mean([after[s] for s in seeds])),
            "mean_difference": float(gain.mean()), "sd_difference": float(gain.std(ddof=1)),
            "corrected_standard_error": error, "t": float(gain.mean() / error),
            "better": int((gain > 0).sum()), "worse": int((gain < 0).sum()),
            "default_seed": {"old": before.get(DEFAULT_SEED), "new": after.get(DEFAULT_SEED)}}


def compare_row(dataset: str, c: dict) -> dict:
    return {"dataset": dataset, "seeds": c["seeds"],
            "old mean": f"{c['old_mean']:.4f}", "new mean": f"{c['new_mean']:.4f}",
            "paired difference (SD)": f"{c['mean_difference']:+.4f} ({c['sd_difference']:.4f})",
            "corrected SE (t)": f"{c['corrected_standard_error']:.4f} ({c['t']:.1f})",
            "better / worse": f"{c['better']} / {c['worse']}",
            f"seed {DEFAULT_SEED} old -> new": f"{c['default_seed']['old']:.4f} -> "
                                               f"{c['default_seed']['new']:.4f}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20,
                        help="seeds 1..N, and the default seed")
    parser.add_argument("--datasets", default="metabric")
    parser.add_argument("--families", action="store_true",
                        help="also train each default family alone on the same splits")
    parser.add_argument("--compare", type=Path,
                        help="a risk_splits.json of another revision to set this run against")
    parser.add_argument("--reuse", action="store_true",
                        help="with --compare: this side's runs from the saved results")
    args = parser.parse_args(argv)
    seeds = sorted({*range(1, args.seeds + 1), DEFAULT_SEED})
    saved = RESULTS.read_text() if args.reuse and RESULTS.exists() else None
    results = json.loads(saved)["results"] if saved else {}
    old = json.loads(args.compare.read_text())["results"] if args.compare else {}
    rows, compared = [], []
    with tempfile.TemporaryDirectory(prefix="permed-bench-splits-") as tmp:
        for name in args.datasets.split(","):
            data = SHARED_DATA / "survival_pycox_csv" / f"{name}.csv"
            if not data.exists():
                print(f"{name}: {data} not found")
                continue
            if name not in results:
                results[name] = splits(name, data, seeds, Path(tmp), [])
            if name in old:
                results[name]["compared"] = compare(results[name], old[name])
                compared.append(compare_row(name, results[name]["compared"]))
            rows.append(table_row(name, "CV-selected (default)", results[name]["summary"]))
            if args.families:
                results[name]["families"] = {f: splits(name, data, seeds, Path(tmp), [f])
                                             for f in default_models()}
                rows += [table_row(name, f, r["summary"])
                         for f, r in results[name]["families"].items()]
    print_table(rows, list(rows[0]) if rows else [])
    if compared:
        print(f"\nagainst {args.compare}:")
        print_table(compared, list(compared[0]))
    path = write_results("risk_splits", {"protocol": __doc__, "results": results})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
