"""How permed's cost grows with the number of patients (``permed bench scale``).

For each size the synthetic cohort (:func:`permed.ingest.synthetic_cohort`) is written to
Parquet and measured: ``permed train`` (diagnose with LightGBM; risk when asked) in a child
process, wall time and peak resident memory of that process (``os.wait4``, as
``/usr/bin/time -v`` reports it); batch scoring throughput of the run (streamed
``permed predict``, ONNX Runtime on the run's ``model.onnx`` when there is one, and LightGBM
called directly on the same rows); the test-split bootstrap (weighted fast path vs the exact
one); and, when asked, the same training on a Dask ``LocalCluster`` of 2 worker processes.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["growth", "scale_benchmark"]

_DIAGNOSE = ["--task", "diagnose", "--target", "disease", "--id", "patient_id",
             "--drop", "time", "--drop", "event", "--drop", "treatment", "--drop", "outcome",
             "--models", "lightgbm"]
_RISK = ["--task", "risk", "--time", "time", "--event", "event", "--id", "patient_id",
         "--drop", "disease", "--drop", "treatment", "--drop", "outcome", "--models", "coxph"]


def scale_benchmark(rows: Sequence[int], *, risk: bool = False, dask: bool = False,
                    n_boot: int = 200, exact_max_rows: int = 50_000,
                    log: Callable[[str], None] = print,
                    extra_max_rows: int | None = None) -> dict[str, Any]:
    """Measure every size in ``rows``; returns the JSON payload of ``benchmarks/results``.

    Parameters
    ----------
    rows : sequence of int
        Cohort sizes, e.g. ``[10_000, 100_000, 1_000_000]``.
    risk : bool, default=False
        Also train a risk model at each size.
    dask : bool, default=False
        Also train diagnose on a Dask ``LocalCluster`` of 2 worker processes.
    n_boot : int, default=200
        Bootstrap replicates of the runs and of the bootstrap timing.
    exact_max_rows : int, default=50000
        Largest test split on which the exact bootstrap is timed (it is ``O(n log n)`` per
        replicate).
    log : callable
        Receives one line per finished measurement.
    extra_max_rows : int, optional
        Largest size at which the risk and Dask trainings run (above it only diagnose,
        scoring and the bootstrap are measured); every size when None.
    """
    cluster = _start_cluster() if dask else None
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="permed-scale-") as tmp:
            for n in rows:
                extra = extra_max_rows is None or n <= extra_max_rows
                results.append(_one_size(int(n), Path(tmp), risk and extra,
                                         cluster if extra else None, n_boot, exact_max_rows,
                                         log))
    finally:
        if cluster is not None:
            cluster.close()
    return {"rows": [int(n) for n in rows], "cpu_count": os.cpu_count(), "n_boot": n_boot,
            "results": results, "growth_per_10x": growth(results),
            "note": "wall times on a shared machine are noisy; peak_mb is the largest "
                    "process's resident set (ru_maxrss), peak_tree_mb the summed resident set "
                    "of the training process and its worker processes (sampled every 0.5 s)"}


def _one_size(n: int, tmp: Path, risk: bool, cluster: Any, n_boot: int, exact_max_rows: int,
              log: Callable[[str], None]) -> dict[str, Any]:
    from permed.ingest import synthetic_cohort

    data = tmp / f"cohort_{n}.parquet"
    synthetic_cohort(n, seed=0).to_parquet(data, index=False)
    out: dict[str, Any] = {"rows": n, "machine": machine_load()}
    run = tmp / f"diagnose_{n}"
    out["diagnose_train"] = _train(data, run, _DIAGNOSE, n_boot)
    log(f"{n} rows: diagnose train {out['diagnose_train']}")
    if risk:
        out["risk_train"] = _train(data, tmp / f"risk_{n}", _RISK, n_boot)
        log(f"{n} rows: risk train {out['risk_train']}")
    if cluster is not None:
        out["diagnose_train_dask"] = _train(data, tmp / f"dask_{n}", _DIAGNOSE, n_boot,
                                            ["--cluster", cluster.scheduler_address])
        log(f"{n} rows: diagnose train on LocalCluster {out['diagnose_train_dask']}")
    if out["diagnose_train"]["ok"]:
        out["scoring_rows_per_s"] = _scoring(run, data, tmp)
        log(f"{n} rows: scoring rows/s {out['scoring_rows_per_s']}")
    out["bootstrap_s"] = _bootstrap_times(max(2, n // 5), n_boot, exact_max_rows)
    log(f"{n} rows: bootstrap {out['bootstrap_s']}")
    return out


def _train(data: Path, run: Path, options: list[str], n_boot: int,
           extra: Sequence[str] = ()) -> dict[str, Any]:
    command = [sys.executable, "-m", "permed.cli.main", "train", str(data), *options,
               "--bootstrap", str(n_boot), "--out", str(run), "--quiet", *extra]
    start = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as child:
        sampler = _TreeMemory(child.pid)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        sampler.stop()
        child.returncode = os.waitstatus_to_exitcode(status)
        error = child.stderr.read().decode(errors="replace") if child.stderr else ""
    result = {"ok": child.returncode == 0, "wall_s": round(time.perf_counter() - start, 2),
              "peak_mb": round(usage.ru_maxrss / 1024, 1),
              "peak_tree_mb": sampler.peak_mb}
    if child.returncode != 0:
        result["error"] = error.strip().splitlines()[-1] if error.strip() else "failed"
    return result


class _TreeMemory:
    """Samples the summed resident memory of a process and its children (joblib workers)
    every half second, in a thread; ``peak_mb`` is None where ``psutil`` is missing."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        import threading

        self.pid, self.every, self.peak = pid, every, 0
        self.peak_mb: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self.peak_mb = round(self.peak / 2**20, 1) if self.peak else None

    def _run(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        while not self._done.is_set():
            try:
                root = psutil.Process(self.pid)
                tree = [root, *root.children(recursive=True)]
                total = 0
                for process in tree:
                    with contextlib.suppress(psutil.Error):
                        total += process.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            self._done.wait(self.every)


def _scoring(run: Path, data: Path, tmp: Path) -> dict[str, float | None]:
    """Rows per second: the streamed ``permed predict`` (Parquet in and out), permed's
    ``predict_frame`` in memory (ONNX Runtime when the run has a verified graph), the native
    pipeline's ``predict_proba``, ONNX Runtime's session alone, LightGBM called directly."""
    from permed.bundle import load_bundle
    from permed.workflow._batch import batch_scorer, predict_batched

    frame = pd.read_parquet(data)
    n = len(frame)
    start = time.perf_counter()
    predict_batched(run, data, tmp / "scores.parquet")
    streamed = n / (time.perf_counter() - start)
    model, _ = load_bundle(run)
    start = time.perf_counter()
    model.predict_proba(frame)
    native = n / (time.perf_counter() - start)
    scorer, _ = batch_scorer(run, model)
    start = time.perf_counter()
    scorer.predict_frame(frame)
    table = n / (time.perf_counter() - start)
    return {"permed_predict_stream": round(streamed), "permed_predict_proba": round(native),
            "permed_predict_frame": round(table), "onnxruntime": _onnx_rate(scorer, frame),
            "lightgbm_direct": _direct_rate(frame)}


def _onnx_rate(scorer: Any, frame: pd.DataFrame) -> float | None:
    """ONNX Runtime's session on the prepared inputs: scoring alone, no typing, no I/O."""
    onnx_model = getattr(scorer, "onnx", None)
    if onnx_model is None:
        return None
    feed = onnx_model.feed_frame(scorer.model.schema.coerce(frame))
    start = time.perf_counter()
    onnx_model.session.run(["probabilities"], feed)
    return round(len(frame) / (time.perf_counter() - start))


def _direct_rate(frame: pd.DataFrame) -> float:
    """LightGBM on the same rows with no permed layer (categories as integer codes)."""
    from lightgbm import LGBMClassifier

    features = frame.drop(columns=["patient_id", "disease", "time", "event", "treatment",
                                   "outcome"])
    for column in features.select_dtypes(exclude="number"):
        features[column] = features[column].astype("category").cat.codes
    train = features.iloc[:50_000]
    model = LGBMClassifier(n_estimators=200, verbose=-1).fit(train, frame["disease"][:50_000])
    start = time.perf_counter()
    model.predict_proba(features)
    return round(len(frame) / (time.perf_counter() - start))


def _bootstrap_times(n: int, n_boot: int, exact_max_rows: int) -> dict[str, float | None]:
    from permed.evaluate import classification_report

    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.3).astype(int)
    p = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, n), 0.001, 0.999)
    timings: dict[str, float | None] = {"test_rows": n}
    for name, fast in (("fast", True), ("exact", False)):
        if not fast and n > exact_max_rows:
            timings[name] = None
            continue
        start = time.perf_counter()
        classification_report(y, p, ["0", "1"], n_boot=n_boot, fast=fast)
        timings[name] = round(time.perf_counter() - start, 2)
    return timings


def _start_cluster() -> Any:
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                        dashboard_address=":0")


def machine_load() -> dict[str, float]:
    """How busy the machine is: the 1-minute load average and the seconds a plain Python loop
    of a million additions takes (a few hundredths on an idle core), to read timings by."""
    start = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    return {"load_average_1m": round(os.getloadavg()[0], 2),
            "python_loop_1M_s": round(time.perf_counter() - start, 3)}


def growth(results: list[dict[str, Any]]) -> dict[str, float | None]:
    """Cost ratio per 10x rows between the smallest and largest size (log-log slope)."""
    if len(results) < 2:
        return {}
    first, last = results[0], results[-1]
    decades = math.log10(last["rows"] / first["rows"])
    pairs = {
        "diagnose_train_wall": lambda r: r.get("diagnose_train", {}).get("wall_s"),
        "diagnose_train_peak_mb": lambda r: r.get("diagnose_train", {}).get("peak_mb"),
        "diagnose_train_peak_tree_mb": lambda r: r.get("diagnose_train", {}).get("peak_tree_mb"),
        "scoring_onnxruntime": lambda r: r.get("scoring_rows_per_s", {}).get("onnxruntime"),
        "risk_train_wall": lambda r: r.get("risk_train", {}).get("wall_s"),
        "bootstrap_fast": lambda r: r.get("bootstrap_s", {}).get("fast"),
    }
    out: dict[str, float | None] = {}
    for name, get in pairs.items():
        a, b = get(first), get(last)
        out[name] = (round((b / a) ** (1 / decades), 2) if a and b and decades > 0 else None)
    return out


def summary_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per size, for a printed table."""
    rows = []
    for r in payload["results"]:
        train, risk = r.get("diagnose_train", {}), r.get("risk_train", {})
        dask, scoring = r.get("diagnose_train_dask", {}), r.get("scoring_rows_per_s", {})
        boot = r.get("bootstrap_s", {})
        rows.append({
            "rows": r["rows"], "diag_s": train.get("wall_s"),
            "diag_MB": train.get("peak_tree_mb") or train.get("peak_mb"),
            "risk_s": risk.get("wall_s", "-"),
            "risk_MB": risk.get("peak_tree_mb") or risk.get("peak_mb", "-"),
            "dask_s": dask.get("wall_s", "-"),
            "stream_r/s": scoring.get("permed_predict_stream", "-"),
            "proba_r/s": scoring.get("permed_predict_proba", "-"),
            "frame_r/s": scoring.get("permed_predict_frame", "-"),
            "onnx_r/s": scoring.get("onnxruntime") or "-",
            "lgbm_r/s": scoring.get("lightgbm_direct", "-"),
            "boot_fast_s": boot.get("fast"), "boot_exact_s": boot.get("exact") or "-"})
    return rows
