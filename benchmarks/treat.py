"""Treat benchmark: IHDP (Shalit et al. protocol) and ACTG 175 (policy value), plus speed.

Run: .venv/bin/python benchmarks/treat.py [--replications 1,2,3,4,5] [--skip-actg]
Prints side-by-side tables and writes benchmarks/results/treat.json.

IHDP (Hill 2011, semi-simulated; ../shared/data/ihdp, replications 1-5 of the CEVAE copy): each
replication is run through permed's whole treat protocol as a user would (``train_run``, the
true mean outcomes ``mu0``/``mu1`` recognised as the truth and never used as features), with
the Shalit et al. protocol: 90% of the units to develop the model (model selection by the
doubly-robust loss, which needs no counterfactual), 10% held out. sqrt(PEHE) and the ATE
error are reported within sample (the 90%) and out of sample (the 10%), mean and standard
deviation over replications. The published numbers (Shalit, Johansson & Sontag, ICML 2017,
Table 1) are over 1,000 replications of the same simulation, some with far larger effects:
compare with that in mind.

ACTG 175 (../shared/data/actg175): the four-arm trial with the issue's command line; the
doubly-robust value of following permed's recommendation against the best single arm, with
95% CIs; fit time, and the latency of one patient's recommendation from the saved bundle.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import SHARED_DATA, print_table, write_results  # noqa: E402
from permed.bundle import load_bundle  # noqa: E402
from permed.study import Study  # noqa: E402
from permed.utils.jsonio import read_json  # noqa: E402
from permed.workflow import TrainConfig, train_run  # noqa: E402

IHDP_COLUMNS = ["treatment", "y_factual", "y_cfactual", "mu0", "mu1",
                *[f"x{i}" for i in range(1, 26)]]
# sqrt(PEHE) within-sample / out-of-sample (Shalit et al. 2017, Table 1; ../shared/data/README)
PUBLISHED = {"BART": (2.1, 2.3), "Causal Forest": (3.8, 3.8), "TARNet": (0.88, 0.95),
             "CFR-Wass": (0.71, 0.76)}
ACTG_DROP = ["pidnum", "cd496", "r", "cd820", "cens", "days", "treat", "offtrt"]
LATENCY_CALLS = 20


def _ihdp(replication: int, workdir: Path) -> dict:
    frame = pd.read_csv(SHARED_DATA / "ihdp" / f"ihdp_npci_{replication}.csv", header=None,
                        names=IHDP_COLUMNS)
    data = workdir / f"ihdp_{replication}.csv"
    frame.to_csv(data, index=False)
    study = Study(task="treat", treatment="treatment", outcome="y_factual",
                  drop=["y_cfactual"])
    config = TrainConfig(test_size=0.1, seed=replication, n_boot=200)
    started = time.perf_counter()
    run = train_run(data, study, config, workdir / f"run_{replication}")
    seconds = time.perf_counter() - started
    metrics = read_json(run / "metrics.json")
    return {"replication": replication, "selected_model": metrics["selected_model"],
            "outcome_model": metrics["nuisance"]["outcome_model"],
            "pehe_in": metrics["development"]["pehe"],
            "ate_error_in": metrics["development"]["ate_error"],
            "pehe_out": metrics["test"]["pehe"]["value"],
            "ate_error_out": metrics["test"]["ate_error"]["value"],
            "dr_loss": {m: v["dr_loss"]["mean"] for m, v in metrics["cv"].items()},
            "seconds": seconds}


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def ihdp_table(results: list[dict]) -> dict:
    """Print permed against the published methods; return the summary."""
    summary = {key: {"mean": float(np.mean([r[key] for r in results])),
                     "std": float(np.std([r[key] for r in results]))}
               for key in ("pehe_in", "pehe_out", "ate_error_in", "ate_error_out", "seconds")}
    rows = [{"method": f"permed (selected per replication, {len(results)} reps)",
             "sqrt(PEHE) within": _mean_std([r["pehe_in"] for r in results]),
             "sqrt(PEHE) out": _mean_std([r["pehe_out"] for r in results]),
             "ATE error within": _mean_std([r["ate_error_in"] for r in results]),
             "ATE error out": _mean_std([r["ate_error_out"] for r in results])}]
    rows += [{"method": f"{name} (published, 1000 reps)", "sqrt(PEHE) within": f"{within:.2f}",
              "sqrt(PEHE) out": f"{out:.2f}"} for name, (within, out) in PUBLISHED.items()]
    print("IHDP, Shalit et al. protocol (90% development / 10% held out)")
    print_table(rows, ["method", "sqrt(PEHE) within", "sqrt(PEHE) out", "ATE error within",
                       "ATE error out"])
    print()
    print_table([{"rep": r["replication"], "selected": r["selected_model"],
                  "outcome model": r["outcome_model"], "PEHE out": f"{r['pehe_out']:.3f}",
                  "ATE err out": f"{r['ate_error_out']:.3f}", "fit s": f"{r['seconds']:.1f}"}
                 for r in results],
                ["rep", "selected", "outcome model", "PEHE out", "ATE err out", "fit s"])
    target = summary["pehe_out"]["mean"] <= 1.0 and summary["ate_error_out"]["mean"] <= 0.3
    print(f"acceptance (out-of-sample sqrt(PEHE) <= 1.0 and ATE error <= 0.3): "
          f"{'met' if target else 'NOT met'}\n")
    return {**summary, "target_met": target}


def _latency(run: Path, frame: pd.DataFrame) -> dict:
    model, _ = load_bundle(run)
    patient = frame.iloc[[0]]
    model.predict_frame(patient)  # first call pays lazy imports
    seconds = []
    for _ in range(LATENCY_CALLS):
        started = time.perf_counter()
        model.predict_frame(patient)
        seconds.append(time.perf_counter() - started)
    return {"median_ms": 1000 * float(np.median(seconds)), "p90_ms": 1000 * float(
        np.quantile(seconds, 0.9)), "calls": LATENCY_CALLS}


def actg(workdir: Path) -> dict:
    """Run the issue's ACTG 175 command; print the policy values with their CIs."""
    path = SHARED_DATA / "actg175" / "ACTG175.csv"
    study = Study(task="treat", treatment="arms", outcome="cd420", drop=ACTG_DROP)
    started = time.perf_counter()
    run = train_run(path, study, TrainConfig(higher_is_better=True), workdir / "actg")
    seconds = time.perf_counter() - started
    metrics = read_json(run / "metrics.json")
    frame = pd.read_csv(path, na_values=["NA"])
    latency = _latency(run, frame)
    fmt = lambda e: f"{e['value']:.1f} ({e['ci_low']:.1f} to {e['ci_high']:.1f})"  # noqa: E731
    rows = [{"policy": f"everyone gets arm {arm}", "mean cd420 (95% CI)": fmt(entry)}
            for arm, entry in metrics["policy"]["value_by_arm"].items()]
    rows.append({"policy": f"permed recommendation ({metrics['selected_model']})",
                 "mean cd420 (95% CI)": fmt(metrics["test"]["policy_value"])})
    rows.append({"policy": f"gain vs best single arm ({metrics['policy']['best_single_arm']})",
                 "mean cd420 (95% CI)": fmt(metrics["test"]["policy_gain"])})
    print(f"ACTG 175, {metrics['data']['test_rows']} held-out patients (doubly-robust values)")
    print_table(rows, ["policy", "mean cd420 (95% CI)"])
    print(f"\nfit (whole protocol, wall): {seconds:.1f} s; one patient's recommendation from "
          f"the bundle: median {latency['median_ms']:.0f} ms (p90 {latency['p90_ms']:.0f} ms)")
    return {"selected_model": metrics["selected_model"], "test": metrics["test"],
            "value_by_arm": metrics["policy"]["value_by_arm"],
            "best_single_arm": metrics["policy"]["best_single_arm"],
            "recommendation_share": metrics["policy"]["recommendation_share"],
            "cv": metrics["cv"], "timings": metrics["timings"], "fit_seconds": seconds,
            "latency": latency}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", default="1,2,3,4,5")
    parser.add_argument("--skip-actg", action="store_true")
    args = parser.parse_args()
    payload: dict = {"ihdp": None, "actg175": None, "published": PUBLISHED}
    with tempfile.TemporaryDirectory() as tmp:
        if (SHARED_DATA / "ihdp").exists():
            results = [_ihdp(int(r), Path(tmp)) for r in args.replications.split(",")]
            payload["ihdp"] = {"replications": results, "summary": ihdp_table(results)}
        if not args.skip_actg and (SHARED_DATA / "actg175").exists():
            payload["actg175"] = actg(Path(tmp))
    print(f"wrote {write_results('treat', payload)}")


if __name__ == "__main__":
    main()
