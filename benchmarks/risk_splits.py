"""Risk benchmark: how much one test split's C-index moves with the split.

Run: .venv/bin/python benchmarks/risk_splits.py [--seeds 20] [--datasets metabric,support]
     [--families] [--ensembles]

`permed train DATA --task risk` as a user runs it (every default: the families, 5-fold CV,
selection by CV Harrell's C, an 80/20 development/test split stratified by event), once per
seed: the seed draws the test split and the CV folds. Seed 42 is permed's default, the split a
user (and the shared check B1) gets. The table gives each dataset's distribution of the test
Harrell's C over the seeds, the default seed's value and rank, and how many seeds reach the
DeepSurv paper's Cox figure + margin that check B1 asks for (METABRIC 0.64, SUPPORT 0.60), so
that one split's figure is read against the spread of the protocol rather than alone.
`--families` also trains each default family alone (`--models NAME`) on the same splits, to show
whether any family, rather than the CV selection among them, would reach the floor.
`--ensembles` adds rank-averaging ensembles of the families (the mean of each patient's risk
rank under each family), scored like a family: CV C-index from the out-of-fold risks averaged
within each fold, test C-index from the families refitted on the development split; and the CV
selection among families and ensembles together, to show whether an ensemble would lift the
protocol. Bootstrap
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

ENSEMBLES = {"gradient_boosting+random_survival_forest":
             ["gradient_boosting", "random_survival_forest"],
             "gradient_boosting+random_survival_forest+deepsurv":
             ["gradient_boosting", "random_survival_forest", "deepsurv"],
             "all four families": ["coxph", "random_survival_forest", "gradient_boosting",
                                   "deepsurv"]}

DEFAULT_SEED = TrainConfig().seed
FLOORS = {"metabric": 0.64, "support": 0.60}  # shared check B1


def run_seed(data: Path, seed: int, folder: Path, models: list[str]) -> dict:
    started = time.perf_counter()
    run = train_run(data, Study(task="risk", time="duration", event="event"),
                    TrainConfig(models=models, seed=seed, n_boot=100),
                    folder / f"seed{seed}-{'-'.join(models) or 'default'}")
    metrics = json.loads((run / "metrics.json").read_text())
    selected = metrics["selected_model"]
    return {"seed": seed, "selected_model": selected,
            "cv_c_index": metrics["cv"][selected]["c_index"]["mean"],
            "test_c_index": metrics["test"]["c_index"]["value"],
            "seconds": round(time.perf_counter() - started, 1)}


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
            "reaching_floor": None if floor is None else int((test >= floor).sum())}


def table_row(dataset: str, models: str, s: dict) -> dict:
    return {
        "dataset": dataset, "models": models, "seeds": s["seeds"],
        "test C mean (SD)": f"{s['test_mean']:.3f} ({s['test_sd']:.3f})",
        "test C range": f"{s['test_min']:.3f}-{s['test_max']:.3f}",
        "CV C mean": f"{s['cv_mean']:.3f}",
        f"seed {DEFAULT_SEED} test C (rank)":
            f"{s['default_seed_test']:.3f} ({s['default_seed_rank']} of {s['seeds']})",
        "reaching B1 floor": ("" if s["floor"] is None
                              else f"{s['reaching_floor']} of {s['seeds']} (>= {s['floor']})")}


def splits(name: str, data: Path, seeds: list[int], folder: Path, models: list[str]) -> dict:
    runs = []
    for seed in seeds:
        runs.append(run_seed(data, seed, folder, models))
        print(f"{name} {'+'.join(models) or 'default'} seed {seed}: "
              f"test C {runs[-1]['test_c_index']:.4f}", file=sys.stderr)
    return {"runs": runs, "summary": summary(name, runs)}


def ensemble_seed(data: Path, seed: int) -> dict[str, dict]:
    """One seed of permed's risk protocol, up to the test split, with the ensembles scored
    beside the families: {label: run} for each family, ensemble and the CV selection."""
    from scipy.stats import rankdata
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from permed.engine import SilentProgress, get_engine
    from permed.evaluate.survival import harrell_c
    from permed.ingest import read_table
    from permed.study import FittedSchema, validate
    from permed.workflow import _risk

    frame, _ = read_table(data)
    study = Study(task="risk", time="duration", event="event")
    config = TrainConfig(seed=seed, n_boot=100)
    validation = validate(frame, study, min_class_size=config.cv)
    outcome = _risk.read_outcome(frame, study, _risk.RiskOptions(None, ()), validation)
    frame, time_, event = frame.iloc[outcome.kept], outcome.time, outcome.event
    dev, test = train_test_split(np.arange(len(frame)), test_size=config.test_size,
                                 stratify=event, random_state=seed)
    schema = FittedSchema.from_frame(frame.iloc[dev], validation.kinds, study, [])
    features, test_features = schema.coerce(frame.iloc[dev]), schema.coerce(frame.iloc[test])
    splitter = StratifiedKFold(n_splits=config.cv, shuffle=True, random_state=seed)
    folds = _risk._Folds(features, time_[dev], event[dev],
                         list(splitter.split(features, event[dev])), schema,
                         np.asarray(_risk._default_horizons(time_[dev], event[dev])), config)
    engine = get_engine(None)
    try:
        cv = _risk._cross_validate(folds, default_models(), engine, SilentProgress(), {})
    finally:
        engine.close()
    reference = _risk.survival_y(time_[dev], event[dev])
    scores = {name: _risk.build_risk_pipeline(name, schema, config).fit(features, reference)
              .predict(test_features) for name in default_models()}

    def run(members: list[str]) -> dict:
        fold_c = [harrell_c(time_[dev][val], event[dev][val],
                            np.mean([rankdata(cv[m].oof[val]) for m in members], axis=0))
                  for _, val in folds.folds]
        risk = np.mean([rankdata(scores[m]) for m in members], axis=0)
        return {"seed": seed, "members": members, "cv_c_index": float(np.mean(fold_c)),
                "test_c_index": harrell_c(time_[test], event[test], risk)}

    runs = {name: run([name]) for name in default_models()}
    runs |= {label: run(members) for label, members in ENSEMBLES.items()
             if set(members) <= set(default_models())}
    best = max(runs, key=lambda label: runs[label]["cv_c_index"])
    runs["CV-selected among families and ensembles"] = {**runs[best], "selected": best}
    return runs


def ensembles(name: str, data: Path, seeds: list[int]) -> dict:
    by_label: dict[str, list[dict]] = {}
    for seed in seeds:
        for label, run in ensemble_seed(data, seed).items():
            by_label.setdefault(label, []).append(run)
        print(f"{name} ensembles seed {seed}: done", file=sys.stderr)
    return {label: {"runs": runs, "summary": summary(name, runs)}
            for label, runs in by_label.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20,
                        help="seeds 1..N, and the default seed")
    parser.add_argument("--datasets", default="metabric")
    parser.add_argument("--families", action="store_true",
                        help="also train each default family alone on the same splits")
    parser.add_argument("--ensembles", action="store_true",
                        help="also score rank-averaging ensembles of the families")
    args = parser.parse_args(argv)
    seeds = sorted({*range(1, args.seeds + 1), DEFAULT_SEED})
    results, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="permed-bench-splits-") as tmp:
        for name in args.datasets.split(","):
            data = SHARED_DATA / "survival_pycox_csv" / f"{name}.csv"
            if not data.exists():
                print(f"{name}: {data} not found")
                continue
            results[name] = splits(name, data, seeds, Path(tmp), [])
            rows.append(table_row(name, "CV-selected (default)", results[name]["summary"]))
            if args.families:
                results[name]["families"] = {f: splits(name, data, seeds, Path(tmp), [f])
                                             for f in default_models()}
                rows += [table_row(name, f, r["summary"])
                         for f, r in results[name]["families"].items()]
            if args.ensembles:
                results[name]["ensembles"] = ensembles(name, data, seeds)
                rows += [table_row(name, label, r["summary"])
                         for label, r in results[name]["ensembles"].items()
                         if label not in default_models()]  # those are --families' rows
    print_table(rows, list(rows[0]) if rows else [])
    path = write_results("risk_splits", {"protocol": __doc__, "results": results})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
