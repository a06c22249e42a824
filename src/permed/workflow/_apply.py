"""Use a trained run: score new patients, or validate it on another cohort."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from permed.bundle import atomic_directory, bundle_is_encrypted, load_bundle
from permed.evaluate import classification_report
from permed.exceptions import BundleError, DataError
from permed.fairness import audit_classification
from permed.ingest import TableInfo, read_table
from permed.privacy import active_key, write_bytes
from permed.study import Study, as_category
from permed.utils.jsonio import read_json, write_json
from permed.workflow._config import TrainConfig
from permed.workflow._diagnose import _calibration_figures
from permed.workflow._fitted import DiagnoseModel, probability_columns
from permed.workflow._run import _manifest

__all__ = ["evaluate_run", "external_manifest", "predict_run", "write_table"]


def write_table(frame: pd.DataFrame, out: str | Path | None) -> None:
    """Write CSV (or Parquet by suffix) atomically; to standard output when ``out`` is None."""
    if out is None:
        frame.to_csv(sys.stdout, index=False)
        return
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        if out.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def predict_run(run_dir: str | Path, data: str | Path, explain: bool = False) -> pd.DataFrame:
    """Score every row of a new table with a trained run; one output row per input row.

    With ``explain``, the columns of ``model.explain_frame`` (each patient's top factors in
    words) are added.
    """
    model, schema = load_bundle(run_dir)
    frame, _ = read_table(data)
    predictions = model.predict_frame(frame)
    if not explain:
        return predictions
    if not hasattr(model, "explain_frame"):
        raise BundleError(f"--explain is not available for {schema.task} runs yet; leave it out")
    return pd.concat([predictions, model.explain_frame(frame).reset_index(drop=True)], axis=1)


def evaluate_run(run_dir: str | Path, data: str | Path, out: str | Path,
                 n_boot: int = 1000, seed: int = 42) -> Path:
    """External validation: score a cohort that carries the target, once, and write ``out``."""
    from permed.report import write_report

    run_dir = Path(run_dir)
    model, schema = load_bundle(run_dir)
    if schema.task == "risk":  # time-to-event figures: permed.workflow._risk
        from permed.workflow._risk_external import evaluate_risk_run

        return evaluate_risk_run(run_dir, model, data, out, n_boot=n_boot, seed=seed)
    if schema.task != "diagnose":
        raise BundleError(f"permed evaluate validates diagnose and risk runs; '{run_dir}' is "
                          f"a {schema.task} run: score it with permed predict")
    development = read_json(run_dir / "metrics.json")
    frame, info = read_table(data)
    schema.check(frame, require=[schema.target])
    y, frame = _encode_target(frame, schema.target, schema.classes)
    proba, scored = _probabilities(model, frame, schema.classes)
    y, frame, proba = y[scored], frame[scored], proba[scored]
    evaluation = classification_report(y, proba, schema.classes, threshold=model.threshold,
                                       n_boot=n_boot, seed=seed)
    sensitive = [c for c in schema.sensitive if c in frame.columns]
    fairness = (audit_classification(y, proba, model.labels(proba),
                                     frame[sensitive].reset_index(drop=True), schema.classes,
                                     seed=seed)
                if sensitive else {"attributes": {}, "note": "no sensitive column in the data"})
    metrics: dict[str, Any] = {
        "task": "diagnose",
        "data": {"rows": info.rows, "columns": info.columns, "fingerprint": info.fingerprint,
                 "source": Path(info.path).name, "test_rows": len(y),
                 "unscored_rows": int((~scored).sum())},
        "external": {"run": str(run_dir), "development_fingerprint":
                     development.get("data", {}).get("fingerprint")},
        **{k: development[k] for k in ("selected_model", "selection", "cv", "threshold")
           if k in development},
        # the model's target and calibration, with this cohort's class counts and figures
        "target": {**development.get("target", {}),
                   "counts": {c: int((y == i).sum()) for i, c in enumerate(schema.classes)}},
        "calibration": _calibration(development, model, frame, y),
        "test": evaluation["test"],
        "confusion_matrix": evaluation["confusion_matrix"],
        "bootstrap": {"replicates": n_boot, "confidence": 0.95,
                      "method": "stratified percentile", "seed": seed},
        "fairness": fairness,
        "timings": {},
    }
    if "per_class" in evaluation:
        metrics["per_class"] = evaluation["per_class"]
    predictions = pd.DataFrame({"row": np.arange(len(y)),
                                "y_true": np.asarray(schema.classes, dtype=object)[y]})
    for column, values in zip(probability_columns(schema.classes), proba.T, strict=True):
        predictions[column] = values
    predictions["predicted"] = np.asarray(schema.classes, dtype=object)[model.labels(proba)]
    with atomic_directory(out) as staging:
        write_json(staging / "metrics.json", metrics)
        # an encrypted run's external predictions are encrypted with the same data key
        write_bytes(staging / "predictions.csv", predictions.to_csv(index=False).encode(),
                    active_key() if bundle_is_encrypted(run_dir) else None)
        write_json(staging / "manifest.json", external_manifest(
            run_dir, info, Study(task="diagnose", target=schema.target), n_boot, seed))
        write_report(staging)
    return Path(out)


def external_manifest(run_dir: Path, info: TableInfo, study: Study, n_boot: int,
                      seed: int) -> dict[str, Any]:
    """manifest.json of an external validation: train's (permed version, creation time, command,
    data, packages, platform) with this evaluation's settings and the development run."""
    manifest = _manifest(info, study, TrainConfig(n_boot=n_boot, seed=seed), {}, [], None)
    manifest["config"] = {"task": study.task, "n_boot": n_boot, "seed": seed}
    return {**manifest, "development_run": str(run_dir)}


def _calibration(development: dict[str, Any], model: Any, frame: pd.DataFrame,
                 y: np.ndarray) -> dict[str, Any]:
    """The development run's calibration step, with the figures before calibration measured on
    this cohort (an image or fusion model does not expose its uncalibrated probabilities)."""
    calibration = {k: v for k, v in development.get("calibration", {}).items()
                   if k != "test_uncalibrated"}
    if isinstance(model, DiagnoseModel):
        raw = model.pipeline.predict_proba(model.schema.coerce(frame))
        calibration["test_uncalibrated"] = _calibration_figures(y, raw)
    return calibration


def _probabilities(model: Any, frame: pd.DataFrame,
                   classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated class probabilities of every row, and which rows got them: a tabular model
    scores every row; an image or fusion model's ``predict_frame`` leaves a row unscored when
    its image could not be read (the model was trained with ``--on-bad-file skip``)."""
    if isinstance(model, DiagnoseModel):
        return model.predict_proba(frame), np.ones(len(frame), dtype=bool)
    proba = model.predict_frame(frame)[probability_columns(classes)].to_numpy(dtype=float)
    return proba, ~np.isnan(proba).any(axis=1)


def _encode_target(frame: pd.DataFrame, target: str,
                   classes: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    labels = as_category(frame[target])
    known = labels.notna()
    unknown = sorted(set(labels[known]) - set(classes))
    if unknown:
        raise DataError(
            f"target column '{target}' has values {unknown} the model never saw; its classes "
            f"are {classes}: recode the target to the same labels")
    if not known.any():
        raise DataError(f"target column '{target}' is entirely missing: external validation "
                        "needs the observed outcome")
    index = {c: i for i, c in enumerate(classes)}
    return labels[known].map(index).to_numpy(dtype=int), frame[known]
