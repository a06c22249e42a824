"""Use a trained run: score new patients, or validate it on another cohort."""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from permed.bundle import BUNDLE_DIR, atomic_directory, bundle_is_encrypted, load_bundle
from permed.evaluate import cautions, classification_report
from permed.exceptions import BundleError, DataError, PermedError
from permed.fairness import audit_classification, saved_bin_edges
from permed.ingest import TableInfo, read_table
from permed.ingest.images import check_on_bad_file
from permed.privacy import active_key, write_bytes
from permed.study import FittedSchema, Study, as_category
from permed.study._columns import rows_text
from permed.utils.jsonio import read_json, write_json
from permed.workflow._config import TrainConfig
from permed.workflow._diagnose import _calibration_figures
from permed.workflow._fitted import DiagnoseModel, probability_columns
from permed.workflow._overlap import CohortOverlap, cohort_overlap
from permed.workflow._run import _manifest

__all__ = ["ShiftWarning", "absent_sensitive_warning", "evaluate_run", "external_manifest",
           "predict_run", "sensitive_entry", "write_table"]


class ShiftWarning(UserWarning):
    """A table scored by a trained run records a column unlike the development data (a
    feature far more often missing, another unit or coding): the predictions are made, and the
    message says what they rest on."""


def warn_shift(message: str) -> None:
    """Issue ``message`` as a :class:`ShiftWarning`."""
    warnings.warn(message, ShiftWarning, stacklevel=3)


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


def predict_run(run_dir: str | Path, data: str | Path, explain: bool = False,
                warn: Callable[[str], None] | None = None,
                missing: Sequence[str] = (), on_bad_file: str | None = None) -> pd.DataFrame:
    """Score every row of a new table with a trained run; one output row per input row.

    With ``explain``, the columns of ``model.explain_frame`` (each patient's top factors in
    words) are added. A feature far more often missing than in development, or whose values
    lie almost all beyond development's (another unit or coding; see
    ``FittedSchema.missing_warnings`` and ``scale_warnings``), is told to ``warn`` (default: a
    :class:`ShiftWarning`); the predictions are the same. ``missing`` lists the table's own
    missing-value markers, read as missing beside the development study's. ``on_bad_file``
    (``"fail"`` or ``"skip"``) replaces, for an image or fusion model, the training setting
    for this table: with ``"skip"`` an unreadable image gives its row empty probabilities and
    the reason in ``image_error``, told to ``warn``.
    """
    model, schema = load_bundle(run_dir)
    if on_bad_file is not None:
        model = _reading_images(model, on_bad_file)
    frame, _ = read_table(data, **schema.reading(missing))
    predictions = model.predict_frame(frame)
    for message in schema.shift_warnings(frame):
        (warn or warn_shift)(message)
    unread = int((predictions.get("image_error", pd.Series(dtype=object)) != "").sum())
    if unread:
        (warn or warn_shift)(f"{unread} of {len(predictions)} images could not be read: their "
                             "rows have no probabilities, and the reason is in image_error")
    if not explain:
        return predictions
    if not hasattr(model, "explain_frame"):
        raise BundleError(f"--explain is not available for {schema.task} runs yet; leave it out")
    return pd.concat([predictions, model.explain_frame(frame).reset_index(drop=True)], axis=1)


def _reading_images(model: Any, on_bad_file: str) -> Any:
    """``model`` reading unreadable images as ``on_bad_file`` says (a model without images:
    refused, the option would do nothing)."""
    check_on_bad_file(on_bad_file)
    if getattr(model, "image_column", None) is None:
        raise PermedError("--on-bad-file applies to image models; this run reads no images: "
                          "leave it out")
    return dataclasses.replace(model, on_bad_file=on_bad_file)


def evaluate_run(run_dir: str | Path, data: str | Path, out: str | Path,
                 n_boot: int = 1000, seed: int = 42, missing: Sequence[str] = ()) -> Path:
    """External validation: score a cohort that carries the target, once, and write ``out``.

    Rows without the target (and, for an image model trained with ``--on-bad-file skip``,
    rows whose image could not be read) are left out of the figures, with a warning. The
    warnings (rows left out, the development data given as the cohort, values outside the
    training range, classes absent or scarce in the cohort, test figures that say little)
    are returned in ``manifest.json``, printed by ``permed evaluate`` and listed in the report.
    ``missing`` lists the cohort's own missing-value markers, read as missing beside the
    development study's.
    """
    run_dir = Path(run_dir)
    _refuse_a_trained_run(Path(out), run_dir)
    model, schema = load_bundle(run_dir)
    if schema.task == "risk":  # time-to-event figures: permed.workflow._risk
        from permed.workflow._risk_external import evaluate_risk_run

        return evaluate_risk_run(run_dir, model, data, out, n_boot=n_boot, seed=seed,
                                 missing=missing)
    if schema.task != "diagnose":
        raise BundleError(f"permed evaluate validates diagnose and risk runs; '{run_dir}' is "
                          f"a {schema.task} run: score it with permed predict")
    development = read_json(run_dir / "metrics.json")
    frame, info = read_table(data, **schema.reading(missing))
    frame = frame.reset_index(drop=True)  # the index is the 0-based input row from here on
    schema.check(frame, require=[schema.target])
    y, labelled = _encode_target(frame, schema.target, schema.classes)
    proba, scored = _probabilities(model, labelled, schema.classes)
    y, cohort, proba = y[scored], labelled[scored], proba[scored]
    outside = schema.out_of_range(cohort)
    overlap = cohort_overlap(run_dir, schema, cohort)
    evaluation = classification_report(y, proba, schema.classes, threshold=model.threshold,
                                       n_boot=n_boot, seed=seed)
    sensitive = [c for c in schema.sensitive if c in cohort.columns]
    fairness = sensitive_entry(schema.sensitive, cohort.columns, audit_classification(
        y, proba, model.labels(proba), cohort[sensitive].reset_index(drop=True), schema.classes,
        seed=seed, edges=saved_bin_edges(development.get("fairness"))) if sensitive else None)
    metrics: dict[str, Any] = {
        "task": "diagnose",
        "data": {"rows": info.rows, "columns": info.columns, "fingerprint": info.fingerprint,
                 "source": Path(info.path).name, "test_rows": len(y),
                 "missing_target_rows": len(frame) - len(labelled),
                 "unscored_rows": int((~scored).sum()),
                 "out_of_range_rows": int((outside != "").sum())},
        "external": external_entry(run_dir, development, info, overlap),
        **{k: development[k] for k in ("selected_model", "selection", "cv", "threshold")
           if k in development},
        # the model's target and calibration, with this cohort's class counts and figures
        "target": {**development.get("target", {}),
                   "counts": {c: int((y == i).sum()) for i, c in enumerate(schema.classes)}},
        "calibration": _calibration(development, model, cohort, y),
        "test": evaluation["test"],
        "confusion_matrix": evaluation["confusion_matrix"],
        "bootstrap": {"replicates": n_boot, "confidence": 0.95,
                      "method": "stratified percentile", "seed": seed},
        "fairness": fairness,
        "timings": {},
    }
    if "per_class" in evaluation:
        metrics["per_class"] = evaluation["per_class"]
    sets = _prediction_sets(model, cohort, y, proba, outside, development.get("uncertainty"))
    if sets is not None:
        metrics["uncertainty"] = sets
    manifest = external_manifest(run_dir, info, Study(task="diagnose", target=schema.target),
                                 n_boot, seed)
    manifest["warnings"] = [
        *_left_out_warnings(frame, labelled, labelled.index[~scored], schema.target, len(y)),
        *[w for w in [schema.duplicated_ids(frame)] if w],
        *schema.missing_warnings(cohort, "probabilities and figures"),
        *schema.scale_warnings(cohort, "probabilities"),
        *[w for w in [absent_sensitive_warning(schema.sensitive, cohort.columns)] if w],
        *_cohort_warnings(metrics, outside, overlap.warnings(schema.id)),
        *[w for w in [_coverage_warning(sets)] if w]]
    predictions = _external_predictions(model, schema, cohort, y, proba)
    return write_external(out, run_dir, metrics, predictions, manifest)


def _refuse_a_trained_run(out: Path, run_dir: Path) -> None:
    """An evaluation replaces what is at ``out``: never a trained run, whose model cannot be
    rebuilt without the development data."""
    if out.resolve() == run_dir.resolve() or (out / BUNDLE_DIR / "bundle.json").is_file():
        raise PermedError(
            f"--out '{out}' holds a trained run (model/bundle.json): the evaluation would "
            f"replace its model; choose a new folder, e.g. --out {run_dir}-external")


def write_external(out: str | Path, run_dir: Path, metrics: dict[str, Any],
                   predictions: pd.DataFrame, manifest: dict[str, Any]) -> Path:
    """An external validation's directory, all or nothing: metrics.json, predictions.csv
    (encrypted with the data key when the run is), manifest.json and report.html."""
    from permed.report import write_report  # the report reads runs: imported when writing one

    with atomic_directory(out) as staging:
        write_json(staging / "metrics.json", metrics)
        write_bytes(staging / "predictions.csv", predictions.to_csv(index=False).encode(),
                    active_key() if bundle_is_encrypted(run_dir) else None)
        write_json(staging / "manifest.json", manifest)
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


def _prediction_sets(model: Any, cohort: pd.DataFrame, y: np.ndarray, proba: np.ndarray,
                     outside: pd.Series, development: dict[str, Any] | None
                     ) -> dict[str, Any] | None:
    """metrics.json's ``uncertainty`` on the cohort, as train writes it for the test split:
    the conformal sets' coverage (the share of patients whose true class is in their set,
    with a Wilson score 95% CI: a proportion, whose bootstrap interval would have zero width
    at 100%), mean set size and the shares referred to a clinician, with the development
    run's test coverage beside them. None for a model without conformal sets (an image or
    fusion model)."""
    from scipy.stats import binomtest

    if not isinstance(model, DiagnoseModel) or model.conformal is None:
        return None
    members = np.asarray(model.conformal.predict_set(proba), dtype=bool)
    flags = model.abstention(cohort, proba, outside)
    covered = int(members[np.arange(len(y)), y].sum())
    interval = binomtest(covered, len(y)).proportion_ci(0.95, method="wilson")
    development = development or {}
    return {
        "method": development.get("method", "split-conformal LAC sets"),
        "coverage_target": float(model.conformal.coverage),
        "test_coverage": {"value": covered / len(y), "ci_low": float(interval.low),
                          "ci_high": float(interval.high)},
        "coverage_interval": "Wilson score 95% CI",
        "covered": covered,
        "patients": len(y),
        "development_test_coverage": development.get("test_coverage"),
        "mean_set_size": float(members.sum(axis=1).mean()),
        "share_uncertain_sets": float((members.sum(axis=1) > 1).mean()),
        "share_out_of_distribution": float(np.mean(flags["out_of_distribution"])),
        "share_referred": float(np.mean(flags["refer_to_clinician"])),
        **({"ood_method": development["ood_method"]} if "ood_method" in development else {}),
    }


def _coverage_warning(sets: dict[str, Any] | None) -> str:
    """A warning when the sets' coverage on the cohort is below the stated one (its 95% CI
    wholly under it): at this site they hold the true class less often than they claim."""
    if sets is None or sets["test_coverage"]["ci_high"] >= sets["coverage_target"]:
        return ""
    coverage = sets["test_coverage"]
    return (f"the prediction sets hold the true class of {sets['covered']} of "
            f"{sets['patients']} patients ({coverage['value']:.1%}, 95% CI "
            f"{coverage['ci_low']:.1%}-{coverage['ci_high']:.1%}), below their stated "
            f"{sets['coverage_target']:.0%} coverage: at this site a set misses the true class "
            "more often than stated, and fewer patients are referred than should be; read them "
            "with this coverage, or retrain with this site's patients")


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
    """Class indices of the rows with the target, and those rows (their index kept)."""
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
    present = sorted(set(labels[known]))
    if len(present) < 2:
        raise DataError(
            f"target column '{target}' holds one class only in this cohort ('{present[0]}' for "
            f"all {int(known.sum())} patients with a value): the model's discrimination cannot "
            "be measured on one outcome; evaluate on a cohort with patients of at least two of "
            f"its classes {classes}")
    index = {c: i for i, c in enumerate(classes)}
    return labels[known].map(index).to_numpy(dtype=int), frame[known]


def _left_out_warnings(frame: pd.DataFrame, labelled: pd.DataFrame, unscored: pd.Index,
                       target: str, evaluated: int) -> list[str]:
    """The rows of the cohort that the figures leave out, how many and why."""
    rows = len(frame)
    unlabelled = frame.index.difference(labelled.index)
    warnings = []
    if len(unlabelled):
        warnings.append(
            f"{len(unlabelled)} of {rows} rows ({len(unlabelled) / rows:.0%}) have no value in "
            f"the target column '{target}' (rows {rows_text(unlabelled)}): they are left out, "
            f"and the figures describe the {evaluated} patients evaluated; record their outcome "
            "to include them")
    if len(unscored):
        warnings.append(
            f"{len(unscored)} of {rows} rows ({len(unscored) / rows:.0%}) could not be scored, "
            f"their image being unreadable (rows {rows_text(unscored)}): they are left out, and "
            f"the figures describe the {evaluated} patients evaluated; see image_error in "
            "permed predict")
    return warnings


def _cohort_warnings(metrics: dict[str, Any], outside: pd.Series,
                     overlap: list[str]) -> list[str]:
    """What the figures on this cohort must be read with: the development data given as the
    cohort, or some of its patients (``overlap``: told only when the file is not that very
    data), values outside the training range, absent classes and figures that say little."""
    same = same_data_warning(metrics)
    warnings = [same, *([] if same else overlap), out_of_range_warning(outside, "probabilities")]
    return ([w for w in warnings if w] + _absent_class_warnings(metrics["target"]["counts"])
            + cautions(metrics))


def external_entry(run_dir: Path, development: dict[str, Any], info: TableInfo,
                   overlap: CohortOverlap) -> dict[str, Any]:
    """metrics.json's ``external``: the development run, its data's fingerprint, whether
    the evaluated file is that very data, and how many of its patients the cohort repeats."""
    fingerprint = development.get("data", {}).get("fingerprint")
    return {"run": str(run_dir), "development_fingerprint": fingerprint,
            "development_data": info.fingerprint == fingerprint, "overlap": overlap.entry()}


def sensitive_entry(declared: list[str], columns: pd.Index,
                    audit: dict[str, Any] | None) -> dict[str, Any]:
    """metrics.json's ``fairness`` of an external cohort: the audit by the declared sensitive
    columns it has, with ``not_in_cohort`` naming those it lacks."""
    absent = [c for c in declared if c not in columns]
    if audit is None:
        note = (f"the sensitive column(s) {', '.join(map(repr, absent))} are not in the cohort"
                if absent else "no sensitive attribute was declared")
        audit = {"attributes": {}, "note": note}
    return {**audit, "not_in_cohort": absent} if absent else audit


def absent_sensitive_warning(declared: list[str], columns: pd.Index) -> str:
    """A warning naming the declared sensitive columns the cohort lacks: fairness is not
    audited by them at this site."""
    absent = [c for c in declared if c not in columns]
    if not absent:
        return ""
    present = [c for c in declared if c in columns]
    names = ", ".join(map(repr, absent))
    audit = (f"the fairness audit at this site is by {', '.join(map(repr, present))} only"
             if present else "no fairness audit at this site")
    if len(absent) == 1:
        return f"sensitive column {names} is not in the cohort: {audit}; add the column to audit it"
    return (f"sensitive columns {names} are not in the cohort: {audit}; add the columns to audit "
            "them")


def same_data_warning(metrics: dict[str, Any]) -> str:
    """A warning when the evaluated file is the development data (the same fingerprint)."""
    if not metrics["external"]["development_data"]:
        return ""
    return (f"'{metrics['data']['source']}' is the data the run '{metrics['external']['run']}' "
            "was developed on (the same file fingerprint), not an external cohort: the model "
            "was fitted, selected and calibrated on most of these patients, so these figures "
            "are optimistic; validate it on patients from another site or period")


def out_of_range_warning(outside: pd.Series, answers: str) -> str:
    """A warning counting the patients with values outside the training range (or categories
    unseen in training), by feature; ``answers`` names what is extrapolated ("risks")."""
    flagged = outside[outside != ""]
    if not len(flagged):
        return ""
    n = len(outside)
    features = flagged.str.split(";").explode().value_counts()
    shown = ", ".join(f"{name} ({k})" for name, k in features.head(5).items())
    return (f"{len(flagged)} of {n} patients ({len(flagged) / n:.0%}) have values outside the "
            f"training range or categories unseen in training ({shown}"
            f"{', ...' if len(features) > 5 else ''}): their {answers} are extrapolated (see "
            "out_of_range in permed predict)")


def _absent_class_warnings(counts: dict[str, int]) -> list[str]:
    """A warning naming the model's classes this cohort has no patient of, and which classes
    the macro averages then cover (a class without patients has no one-vs-rest figures)."""
    absent = [c for c, n in counts.items() if n == 0]
    if not absent:
        return []
    present = [c for c, n in counts.items() if n]
    which = "that class" if len(absent) == 1 else "those classes"
    return [f"this cohort has no patient with {', '.join(repr(c) for c in absent)}: the "
            f"one-vs-rest AUROC, AUPRC and sensitivity of {which} cannot be computed, so the "
            f"macro-averaged AUROC, AUPRC and sensitivity average the {len(present)} classes "
            f"present ({', '.join(present)}), not all {len(counts)}"]


def patient_rows(cohort: pd.DataFrame, schema: FittedSchema) -> pd.DataFrame:
    """The first columns of a cohort's predictions.csv: ``row`` (the 0-based input row) and the
    id when declared and present."""
    rows = pd.DataFrame({"row": cohort.index.to_numpy()})
    if schema.id and schema.id in cohort.columns:
        rows[schema.id] = cohort[schema.id].to_numpy()
    return rows


def _external_predictions(model: Any, schema: FittedSchema, cohort: pd.DataFrame,
                          y: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """predictions.csv of an external cohort in train's format: ``row`` (the 0-based input
    row), the id when declared and present, ``y_true``, ``prob_<class>`` and ``predicted``."""
    classes = np.asarray(schema.classes, dtype=object)
    predictions = patient_rows(cohort, schema)
    predictions["y_true"] = classes[y]
    for column, values in zip(probability_columns(schema.classes), proba.T, strict=True):
        predictions[column] = values
    predictions["predicted"] = classes[model.labels(proba)]
    return predictions
