"""Risk benchmark: the Cox model with spline terms (coxph_splines) against the linear one (coxph).

Run: .venv/bin/python benchmarks/risk_splines.py [--seeds 20] [--datasets metabric,support]

Per dataset (the pycox METABRIC and SUPPORT CSVs, ../shared/data/survival_pycox_csv, their
unnamed index column dropped, zero follow-up times left out as permed train does) and per seed
(1..N and permed's default 42): an 80/20 development/test split stratified by event; the
feature kinds permed's validation infers; `build_risk_pipeline` for `coxph` and for
`coxph_splines`, each with its default settings (ridge alpha 1; a restricted cubic spline with
4 knots at Harrell's 5/35/65/95% quantiles for each column with more than 10 distinct values
and distinct knots), fitted on the development split; the test Harrell's C of each, and its
integrated Brier score (scikit-survival's, over 30 times evenly spaced between the 10% and 90%
quantiles of the development split's event times; censoring weights as permed's evaluation
takes them, from the development split, pooled with the test split where its follow-up is
longer). The two models see the same split, so their difference is paired: the table gives
each model's mean (SD) over the seeds, the paired difference's mean (SD) and range, how many
seeds the splines do better on, the default seed's figures, and each model's mean IBS.
Nothing is tuned. Writes benchmarks/results/risk_splines.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import SHARED_DATA, print_table, write_results  # noqa: E402
from permed.evaluate.survival import (  # noqa: E402
    IBS_POINTS,
    IBS_QUANTILES,
    censoring_reference,
    harrell_c,
)
from permed.ingest import read_table  # noqa: E402
from permed.models.risk import survival_y  # noqa: E402
from permed.study import FittedSchema, Study, validate  # noqa: E402
from permed.workflow import TrainConfig  # noqa: E402
from permed.workflow._risk import RiskOptions, build_risk_pipeline, read_outcome  # noqa: E402

MODELS = ("coxph", "coxph_splines")
DEFAULT_SEED = TrainConfig().seed
STUDY = Study(task="risk", time="duration", event="event")


def load(name: str):
    """(features frame, time, event, kinds) of one pycox CSV; None when absent."""
    path = SHARED_DATA / "survival_pycox_csv" / f"{name}.csv"
    if not path.exists():
        return None
    frame, _ = read_table(path)
    frame = frame.drop(columns=["Unnamed: 0"], errors="ignore")
    validation = validate(frame, STUDY)
    validation.raise_errors()
    outcome = read_outcome(frame, STUDY, RiskOptions(None, ()), validation)
    frame = frame.iloc[outcome.kept].reset_index(drop=True)
    return frame, outcome.time, outcome.event, validation.kinds


def run_seed(data, seed: int) -> dict:
    from sklearn.model_selection import train_test_split
    from sksurv.metrics import integrated_brier_score

    frame, time_, event, kinds = data
    dev, test = train_test_split(np.arange(len(frame)), test_size=0.2, stratify=event,
                                 random_state=seed)
    config = TrainConfig(seed=seed)
    schema = FittedSchema.from_frame(frame.iloc[dev], kinds, STUDY, [])
    features, test_features = schema.coerce(frame.iloc[dev]), schema.coerce(frame.iloc[test])
    row = {"seed": seed}
    y_dev, y_test = survival_y(time_[dev], event[dev]), survival_y(time_[test], event[test])
    grid = np.linspace(*np.quantile(time_[dev][event[dev]], IBS_QUANTILES), IBS_POINTS)
    grid = grid[grid < time_[test].max()]
    reference, _ = censoring_reference(y_dev, y_test)
    for model in MODELS:
        started = time.perf_counter()
        pipeline = build_risk_pipeline(model, schema, config).fit(
            features, y_dev)
        row[f"{model}_fit_seconds"] = round(time.perf_counter() - started, 3)
        row[model] = harrell_c(time_[test], event[test], pipeline.predict(test_features))
        survival = pipeline[-1].predict_survival_function(pipeline[:-1].transform(test_features),
                                                          grid)
        row[f"{model}_ibs"] = float(integrated_brier_score(reference, y_test, survival, grid))
        if model == "coxph_splines":  # the preprocessed columns given a spline basis
            names = pipeline[:-1].get_feature_names_out()
            row["expanded_columns"] = [str(names[j]).split("__", 1)[-1]
                                       for j in pipeline[-1].spline_columns_]
    row["difference"] = row["coxph_splines"] - row["coxph"]
    return row


def summary(runs: list[dict]) -> dict:
    out = {}
    for key in (*MODELS, "difference", *(f"{m}_ibs" for m in MODELS)):
        values = np.array([r[key] for r in runs])
        out[key] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)),
                    "min": float(values.min()), "max": float(values.max())}
    default = next(r for r in runs if r["seed"] == DEFAULT_SEED)
    out["splines_better"] = int(sum(r["difference"] > 0 for r in runs))
    out["seeds"] = len(runs)
    out["default_seed"] = {"seed": DEFAULT_SEED, **{k: default[k] for k in (*MODELS,
                                                                               "difference")}}
    return out


def table_row(name: str, info: dict, s: dict) -> dict:
    d = s["difference"]
    default = s["default_seed"]
    return {"dataset": name, "patients (events)": f"{info['patients']} ({info['events']})",
            "coxph test C": f"{s['coxph']['mean']:.4f} ({s['coxph']['sd']:.4f})",
            "coxph_splines test C": (f"{s['coxph_splines']['mean']:.4f} "
                                     f"({s['coxph_splines']['sd']:.4f})"),
            "paired diff mean (SD)": f"{d['mean']:+.4f} ({d['sd']:.4f})",
            "diff range": f"{d['min']:+.4f} to {d['max']:+.4f}",
            "splines better": f"{s['splines_better']} of {s['seeds']}",
            f"seed {DEFAULT_SEED}": (f"{default['coxph']:.4f} -> {default['coxph_splines']:.4f}"),
            "IBS coxph -> splines": (f"{s['coxph_ibs']['mean']:.4f} -> "
                                     f"{s['coxph_splines_ibs']['mean']:.4f}")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds 1..N, and the default seed")
    parser.add_argument("--datasets", default="metabric,support")
    args = parser.parse_args(argv)
    seeds = sorted({*range(1, args.seeds + 1), DEFAULT_SEED})
    results, rows = {}, []
    for name in args.datasets.split(","):
        data = load(name)
        if data is None:
            print(f"{name}: not found under {SHARED_DATA / 'survival_pycox_csv'}")
            continue
        runs = []
        for seed in seeds:
            runs.append(run_seed(data, seed))
            print(f"{name} seed {seed}: coxph {runs[-1]['coxph']:.4f}, coxph_splines "
                  f"{runs[-1]['coxph_splines']:.4f}", file=sys.stderr)
        info = {"patients": len(data[0]), "events": int(data[2].sum()),
                "expanded_columns": runs[-1]["expanded_columns"]}
        results[name] = {**info, "runs": runs, "summary": summary(runs)}
        rows.append(table_row(name, info, results[name]["summary"]))
    print_table(rows, list(rows[0]) if rows else [])
    path = write_results("risk_splines", {"protocol": __doc__, "results": results})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
