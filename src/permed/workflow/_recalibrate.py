"""Update a trained run for a new site: ``permed recalibrate RUN local.csv --out NEW``.

The source run is read (never changed); the local cohort is read and checked as ``permed
evaluate`` checks it; the recalibration (:mod:`permed.workflow._recalibrated`) is fitted on all
of it and saved, wrapped around the source model, as a new run's bundle.

What the new run reports, and how honestly:

- ``recalibration.intercept`` / ``slope``: the fit on the whole cohort, with percentile
  bootstrap 95% CIs (the fit repeated on resamples drawn within outcome classes, or within
  events and censored patients); ``failed_replicates`` counts the resamples without a finite
  estimate (separation), left out of the CIs.
- ``recalibration.calibration.before``: the source model on the local cohort. It never saw
  these patients, so this is an external validation.
- ``recalibration.calibration.after`` and ``test``: out of sample, by K-fold cross-fitting:
  each patient's recalibrated answer comes from a recalibration fitted on the other folds.
  The in-sample calibration of a recalibration is ideal by construction (its intercept is 0
  on the patients it was fitted to) and is never reported.
- risk: only the source horizons the local cohort follows enough patients to (the rule of
  ``permed evaluate``) are kept in the recalibrated model; the others are dropped, with a
  warning naming the local follow-up: the local baseline hazard is flat after the last local
  time, so a risk beyond it would not be estimated.

Sample size: below :data:`MIN_EVENTS` events (diagnose: patients of the smaller class) a
recalibration is warned about, below :data:`MIN_SLOPE_EVENTS` ``--method slope`` is refused
(the rule of thumb of at least 100 events for validating a model's calibration: Vergouwe et al.,
J Clin Epidemiol 2005; Collins et al., Stat Med 2016; Riley et al., Stat Med 2021 give a
calculation for a given precision). 20 events for a slope is permed's own floor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from permed.bundle import (
    BUNDLE_DIR,
    atomic_directory,
    bundle_is_encrypted,
    load_bundle,
    save_bundle,
)
from permed.bundle._onnx import export_onnx
from permed.engine import Progress, SilentProgress
from permed.evaluate import classification_report
from permed.exceptions import PermedError
from permed.ingest import TableInfo, read_table
from permed.privacy import AuditLog, is_encrypted, require_key, write_bytes
from permed.study import Study
from permed.utils.jsonio import read_json, write_json
from permed.workflow._apply import _encode_target, external_manifest, patient_rows
from permed.workflow._config import TrainConfig
from permed.workflow._fitted import DiagnoseModel, probability_columns
from permed.workflow._recalibrated import (
    METHODS,
    LogisticRecalibration,
    RecalibratedSurvival,
    cox_slope,
    fit_cox_recalibration,
    fit_logistic_recalibration,
    linear_predictor,
    logit,
)

__all__ = ["CROSS_FIT_FOLDS", "MIN_EVENTS", "MIN_SLOPE_EVENTS", "recalibrate_run"]

CROSS_FIT_FOLDS = 5
# The rule of thumb for validating a model's calibration is at least 100 events (Vergouwe et
# al. 2005; Collins et al. 2016; Riley et al. 2021 calculate it for a wanted precision); a
# slope from fewer than 20 is noise (permed's floor, not a published one).
MIN_EVENTS = 100
MIN_SLOPE_EVENTS = 20
_BEFORE_METHOD = ("the source run's model applied unchanged to the local cohort (an external "
                  "validation: it never saw these patients)")
FAILED_SHARE = 0.01  # bootstrap replicates without an estimate above this share are warned of
_GUIDANCE = ("Vergouwe et al., J Clin Epidemiol 2005; Collins et al., Stat Med 2016; Riley et al., "
             "Stat Med 2021")
_INTERVAL = ("percentile bootstrap 95% CI: the recalibration refitted on {n} resamples of the "
             "local cohort drawn within {strata}; resamples without a finite estimate "
             "(failed_replicates) are left out")


@dataclass
class _Update:
    """What a recalibration writes: the model, metrics.json's task entries, predictions.csv."""

    model: Any
    schema: Any
    info: TableInfo
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    study: Study
    warnings: list[str] = field(default_factory=list)


def recalibrate_run(run_dir: str | Path, data: str | Path, out: str | Path,
                    method: str = "slope", n_boot: int = 1000, seed: int = 42,
                    missing: Sequence[str] = (), progress: Progress | None = None,
                    command: str | None = None) -> Path:
    """Recalibrate the model of ``run_dir`` on the local cohort ``data`` and write a new run
    directory at ``out``: model/ (the recalibrated model), metrics.json (``recalibration``),
    predictions.csv (cross-fitted answers), manifest.json, audit.log and report.html.

    The new run is encrypted with the data key when the source run is, or when ``data`` was
    an encrypted file: its bundle holds the local cohort's event times and predictions.csv its
    patients' answers.

    Raises
    ------
    PermedError
        An unknown method; ``out`` that is the source run or holds another trained run; a
        multiclass, image or treat run; a cohort without the outcome columns, or with a
        single class or no event; ``--method slope`` with fewer than
        :data:`MIN_SLOPE_EVENTS` events (diagnose: patients of the smaller class); a slope
        without a finite estimate (separation) or not positive; a risk cohort followed too
        briefly for any of the run's horizons.
    """
    if method not in METHODS:
        raise PermedError(f"--method must be slope or intercept, got '{method}'")
    TrainConfig(n_boot=n_boot, seed=seed)  # refuses too few replicates before any work
    progress = progress or SilentProgress()
    run_dir, out = Path(run_dir), Path(out)
    _refuse_out(out, run_dir)
    model, schema = load_bundle(run_dir)
    development = read_json(run_dir / "metrics.json")
    if schema.task == "diagnose":
        update = _diagnose(run_dir, model, schema, data, development, method, n_boot, seed,
                           missing)
    elif schema.task == "risk":
        update = _risk(run_dir, model, data, development, method, n_boot, seed, missing)
    else:
        raise PermedError(f"permed recalibrate updates diagnose and risk runs; '{run_dir}' is a "
                          f"{schema.task} run")
    for warning in update.warnings:
        progress.note(f"warning: {warning}")
    update.metrics["recalibration"]["source_run"] = _source_entry(run_dir, development)
    sealed = bundle_is_encrypted(run_dir) or (Path(data).is_file() and is_encrypted(data))
    return _write(run_dir, out, update, development, n_boot, seed, command, sealed)


def _refuse_out(out: Path, run_dir: Path) -> None:
    """The source run is never written to; another trained run is never replaced."""
    source = run_dir.resolve()
    if out.resolve() == source or source in out.resolve().parents:
        raise PermedError(
            f"--out '{out}' is the source run '{run_dir}' or inside it: a recalibration writes "
            f"a new run and never changes the one it updates; choose a new folder, e.g. --out "
            f"{run_dir}-local")
    if out.exists() and not out.is_dir():
        raise PermedError(f"--out '{out}' is a file: choose a folder path")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        # atomic_directory's refusal (as permed train's), told with the path as given
        raise PermedError(
            f"--out '{out}' exists and is not a permed output folder: choose a new folder")
    if (out / BUNDLE_DIR / "bundle.json").is_file() and \
            "recalibration" not in _metrics_of(out):
        raise PermedError(
            f"--out '{out}' holds a trained run (model/bundle.json): the recalibration would "
            f"replace its model; choose a new folder, e.g. --out {run_dir}-local")


def _metrics_of(run_dir: Path) -> dict[str, Any]:
    try:
        return dict(read_json(run_dir / "metrics.json"))
    except (OSError, ValueError, TypeError):
        return {}


def _source_entry(run_dir: Path, development: dict[str, Any]) -> dict[str, Any]:
    """The source run: its path, its data's fingerprint and its bundle's (the SHA-256 of the
    signed index model/bundle.json, whose first 12 digits are the version permed serve
    shows)."""
    index = (run_dir / BUNDLE_DIR / "bundle.json").read_bytes()
    return {"path": str(run_dir), "selected_model": development.get("selected_model"),
            "data_fingerprint": (development.get("data") or {}).get("fingerprint"),
            "bundle_sha256": f"sha256:{hashlib.sha256(index).hexdigest()}"}


def _folds(strata: np.ndarray, seed: int, names: dict[int, str]
           ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified cross-fitting folds over the strata present: :data:`CROSS_FIT_FOLDS`, or
    fewer when a stratum is smaller (at least 2). ``names`` says what each stratum's patients
    are, for the refusal."""
    values, counts = np.unique(strata, return_counts=True)
    smallest = int(counts.min())
    if smallest < 2:
        raise PermedError(
            f"the local cohort has {smallest} {names[int(values[counts.argmin()])]}: a "
            "recalibration and its out-of-sample check need at least 2; recalibrate on a "
            "larger cohort")
    k = min(CROSS_FIT_FOLDS, smallest)
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(strata, strata))


def _resamples(strata: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """Bootstrap row indices drawn within each stratum (its size kept)."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    return [np.concatenate([rng.choice(g, len(g)) for g in groups]) for _ in range(n_boot)]


def _interval(value: float, replicates: np.ndarray) -> dict[str, float | None]:
    """The estimate and the percentile CI of the replicates (the finite ones)."""
    finite = replicates[np.isfinite(replicates)]
    if not len(finite):
        return {"value": value, "ci_low": None, "ci_high": None}
    low, high = np.quantile(finite, [0.025, 0.975])
    return {"value": value, "ci_low": float(low), "ci_high": float(high)}


def _failed_warning(failed: int, n_boot: int, why: str) -> list[str]:
    """A warning when more than :data:`FAILED_SHARE` of the replicates have no estimate."""
    if failed <= FAILED_SHARE * n_boot:
        return []
    return [f"{failed} of {n_boot} bootstrap replicates ({failed / n_boot:.1%}) have no finite "
            f"recalibration estimate ({why}): the 95% CIs are percentiles of the other "
            f"{n_boot - failed} and understate the uncertainty; use --method intercept or "
            "recalibrate on a larger cohort"]


def _sample_size(count: int, what: str, method: str, updates: str) -> list[str]:
    """Refuse a slope fitted on fewer than :data:`MIN_SLOPE_EVENTS` events; warn below
    :data:`MIN_EVENTS`."""
    if method == "slope" and count < MIN_SLOPE_EVENTS:
        raise PermedError(
            f"the local cohort has {count} {what}: a recalibration slope needs at least "
            f"{MIN_SLOPE_EVENTS} ({MIN_EVENTS} recommended: {_GUIDANCE}); use --method "
            f"intercept, which updates {updates} only, or recalibrate on a larger cohort")
    if count >= MIN_EVENTS:
        return []
    return [f"the local cohort has {count} {what}, fewer than the {MIN_EVENTS} sample-size "
            f"guidance asks for to check or update a model's calibration ({_GUIDANCE}): the "
            "update and its CIs are imprecise"
            + ("; --method intercept estimates less and is steadier" if method == "slope"
               else "")]


def _slope_check(method: str, slope: float, what: str, updates: str) -> tuple[
        dict[str, Any] | None, list[str]]:
    """For ``--method intercept``: the slope it does not apply, estimated anyway to see the
    model's direction at this site, and a warning when it is not positive (an infinite one,
    separation, was refused or allowed by :func:`_refuse_slope`)."""
    if method != "intercept":
        return None, []
    entry = {"value": slope if np.isfinite(slope) else None,
             "separation": ("inverted" if slope == -np.inf else
                            "perfect" if slope == np.inf else None),
             "meaning": "the slope a --method slope fit estimates on the local cohort, not "
                        "applied: a value <= 0 means the model's ordering is inverted here; "
                        "separation 'perfect' (slope to +infinity) or 'inverted' (to "
                        "-infinity, refused) when the model orders the outcomes perfectly"}
    if not np.isfinite(slope) or slope > 0:
        return entry, []
    return entry, [f"the recalibration slope estimated on the local cohort is {slope:.3g} (not "
                   f"applied by --method intercept): at this site the source model's {what} "
                   f"does not increase with the observed outcome, and updating {updates} "
                   "keeps that inverted ordering; check the cohort's outcome coding, or train "
                   "a model on this site's patients (permed train)"]


def _refuse_slope(method: str, slope: float, ordering: str, what: str,
                  coding: str, where: str = "this cohort") -> None:
    """Refuse the slope a ``--method slope`` fit estimated on ``where`` when it has no finite
    estimate or is not positive; with ``--method intercept``, refuse only a reverse separation
    (``-inf``). ``ordering`` says how the model orders the outcomes there (for a separation),
    ``coding`` which outcome coding to check.

    Raises
    ------
    PermedError
    """
    if slope == -np.inf:
        raise PermedError(
            f"the source model ranks the patients of {where} backwards: {ordering} (reverse "
            "separation: the recalibration slope tends to minus infinity), which neither "
            f"--method slope nor --method intercept can repair; check {coding}, or train a "
            "model on this site's patients (permed train)")
    if method != "slope":
        return
    if slope == np.inf:
        raise PermedError(
            f"the recalibration slope has no finite estimate on {where}: {ordering} (the source "
            f"model's {what} separates its outcomes perfectly; the slope tends to infinity): "
            "use --method intercept, or recalibrate on a larger cohort")
    if not np.isfinite(slope):
        raise PermedError(
            f"the recalibration slope fit did not converge on {where} ({ordering}): use "
            "--method intercept, or recalibrate on a larger cohort")
    if slope <= 0:
        raise PermedError(
            f"the fitted recalibration slope is {slope:.3g}: at this site the source model's "
            f"{what} does not increase with the observed outcome, which recalibration cannot "
            f"repair; check {coding}, or train a model on this site's patients (permed train)")


def _fold_where(fold: int, folds: int) -> str:
    return (f"the training part of cross-fitting fold {fold} of {folds} (the other "
            f"{folds - 1} folds, whose update checks fold {fold} out of sample)")


# ------------------------------------------------------------------------------ diagnose


def _diagnose(run_dir: Path, model: Any, schema: Any, data: str | Path,
              development: dict[str, Any], method: str, n_boot: int, seed: int,
              missing: Sequence[str]) -> _Update:
    if not isinstance(model, DiagnoseModel):
        raise PermedError(f"permed recalibrate updates tabular models; '{run_dir}' holds an "
                          f"image or fusion model ({type(model).__name__}): check it at this "
                          "site with permed evaluate, and retrain it on this site's patients")
    if len(schema.classes) != 2:
        raise PermedError(
            f"only binary targets can be recalibrated: '{run_dir}' predicts "
            f"{len(schema.classes)} classes of '{schema.target}' ({', '.join(schema.classes)}), "
            "and logistic recalibration updates one probability; check the model at this site "
            "with permed evaluate, and if it is miscalibrated train a model on this site's "
            "patients (permed train)")
    frame, info = read_table(data, **schema.reading(missing))
    frame = frame.reset_index(drop=True)
    schema.check(frame, require=[schema.target])
    y, cohort = _encode_target(frame, schema.target, schema.classes)
    counts = np.bincount(y, minlength=2)
    smaller = int(counts.argmin())
    warnings = _sample_size(
        int(counts[smaller]), f"patients with '{schema.classes[smaller]}' (the smaller "
        f"outcome class of '{schema.target}')", method, "the average risk")
    raw = model.pipeline.predict_proba(schema.coerce(cohort))
    before = model.calibrator.transform(raw)
    x = logit(before[:, 1])
    coding = (f"the outcome coding of '{schema.target}' (which value is "
              f"'{schema.classes[1]}')")
    full = fit_logistic_recalibration(x, y, "slope")[1]
    _refuse_slope(method, full, _class_order(full, y, schema.classes), "probability", coding)
    recalibration = LogisticRecalibration(model.calibrator, method).fit(raw, y)
    check, inverted = _slope_check(method, full, "probability", "the average risk")
    after = np.empty(len(y))
    names = {i: f"patients with '{c}'" for i, c in enumerate(schema.classes)}
    folds = _folds(y, seed, names)
    for fold, (train, held) in enumerate(folds, 1):
        a, b = fit_logistic_recalibration(x[train], y[train], method)
        _refuse_slope(method, b, _class_order(b, y[train], schema.classes), "probability",
                      coding, _fold_where(fold, len(folds)))
        after[held] = _probability(a, b, x[held])
    replicates = np.asarray([fit_logistic_recalibration(x[rows], y[rows], method)
                             for rows in _resamples(y, n_boot, seed)], dtype=np.float64)
    failed = int((~np.isfinite(replicates).all(axis=1)).sum())
    replicates[~np.isfinite(replicates).all(axis=1)] = np.nan
    threshold = None if model.threshold is None else float(
        recalibration.update(np.asarray([model.threshold]))[0])
    recalibrated = replace(model, calibrator=recalibration, threshold=threshold,
                           conformal=_conformal(model, np.column_stack([1 - after, after]), y))
    proba_after = np.column_stack([1.0 - after, after])
    figures_before = classification_report(y, before, schema.classes, model.threshold,
                                           n_boot=n_boot, seed=seed)["test"]
    figures_after = classification_report(y, proba_after, schema.classes, threshold,
                                          n_boot=n_boot, seed=seed)["test"]
    if model.threshold is not None:
        # the update keeps who is above the threshold: the decisions are the source model's
        figures_after.update({k: figures_before[k] for k in _DECISION_FIGURES
                              if k in figures_before})
        decisions = model.labels(before)
    else:
        decisions = recalibrated.labels(proba_after)
    threshold_entry, missed = _threshold_entry(model.threshold, threshold, development,
                                               y, before[:, 1], schema.classes[1])
    entry = {
        "method": method,
        "model": ("logit(p_new) = a + b * logit(p), p the source run's calibrated probability "
                  f"of '{schema.classes[1]}'" + ("; b fixed at 1 (recalibration-in-the-large)"
                                                 if method == "intercept" else "")),
        "intercept": _interval(recalibration.intercept_, replicates[:, 0]),
        "slope": (_interval(recalibration.slope_, replicates[:, 1])
                  if method == "slope" else {"value": 1.0, "ci_low": None, "ci_high": None,
                                             "fixed": True}),
        "slope_check": check,
        "interval": _INTERVAL.format(n=n_boot, strata="each outcome class"),
        "failed_replicates": failed,
        "cohort": _cohort_entry(info, len(y), {c: int((y == i).sum())
                                               for i, c in enumerate(schema.classes)}),
        "threshold": threshold_entry,
        "conformal": ("refitted on the cross-fitted recalibrated probabilities"
                      if recalibrated.conformal is not None else None),
        "calibration": {
            "before": _diagnose_figures(figures_before),
            "after": _diagnose_figures(figures_after),
            "before_method": _BEFORE_METHOD,
            "after_method": _cross_fit_text(y, "outcome class")},
    }
    if check is None:
        del entry["slope_check"]
    predictions = patient_rows(cohort, schema)
    classes = np.asarray(schema.classes, dtype=object)
    predictions["y_true"] = classes[y]
    for column, values in zip(probability_columns(schema.classes), proba_after.T, strict=True):
        predictions[column] = values
    predictions["predicted"] = classes[decisions]
    predictions[f"source_prob_{schema.classes[1]}"] = before[:, 1]
    metrics = {"task": "diagnose", "recalibration": entry,
               "target": {"column": schema.target, "classes": list(schema.classes),
                          "positive_class": schema.classes[1],
                          "counts": entry["cohort"]["counts"]},
               "test": figures_after,
               "test_figures": _test_figures(model.threshold is not None, y),
               "threshold": {"value": threshold, "rule": threshold_entry["rule"],
                             "classification": threshold_entry["classification"]}}
    warnings += inverted + missed + _failed_warning(
        failed, n_boot, "the resample's outcomes were separated by the model's probability")
    return _Update(recalibrated, schema, info, metrics, predictions,
                   Study(task="diagnose", target=schema.target), warnings)


def _threshold_entry(source: float | None, mapped: float | None, development: dict[str, Any],
                     y: np.ndarray, p: np.ndarray, positive: str
                     ) -> tuple[dict[str, Any], list[str]]:
    """The threshold carried through the update, and when the source run chose it for a
    target sensitivity, the sensitivity it reaches here, warned of when below: exactly the
    source model's (``p`` its probabilities), whose decisions the update does not change."""
    chosen = development.get("threshold") or {}
    entry: dict[str, Any] = {
        "source": source, "recalibrated": mapped,
        "rule": "the source threshold carried through the recalibration: the same patients "
                "are above it",
        "classification": (
            "unchanged by construction: the update is increasing in the source probability, "
            "so who is above the threshold (and sensitivity, specificity, PPV, NPV, accuracy, "
            "F1) does not change; only the probabilities do" if source is not None else
            "no threshold: the recalibrated model labels the more probable class, so who is "
            "labelled positive can change with the update"),
        "source_rule": chosen.get("rule")}
    target = chosen.get("target_sensitivity")
    if mapped is None or chosen.get("rule") != "target_sensitivity" or target is None:
        return entry, []
    reached = float(np.mean(p[y == 1] >= float(source)))
    entry["target_sensitivity"] = float(target)
    entry["local_sensitivity"] = reached
    entry["local_sensitivity_method"] = (
        f"share of the local patients with '{positive}' whose source probability is at or "
        "above the source threshold: the source model's decisions on the local cohort, "
        "unchanged by the update (no fit involved, so not cross-fitted)")
    if reached >= float(target):
        return entry, []
    return entry, [
        f"the source run's threshold was chosen for sensitivity {float(target):.3g}; on the "
        f"local cohort it reaches {reached:.3g} ({int((y == 1).sum())} patients with "
        f"'{positive}', the source model's decisions): recalibration keeps who is above the "
        "threshold, so it "
        f"cannot restore the target; train a model on this site's patients with "
        f"--target-sensitivity {float(target):g} (permed train)"]


def _class_order(slope: float, y: np.ndarray, classes: Sequence[str]) -> str:
    """How the source probability orders the two classes, for a refusal: which is entirely
    above the other (a separation, ``slope`` infinite), or the patients counted."""
    counts = np.bincount(y, minlength=2)
    if not np.isinf(slope):
        return (f"{int(counts[1])} patients with '{classes[1]}', {int(counts[0])} with "
                f"'{classes[0]}'")
    high, low = (1, 0) if slope > 0 else (0, 1)
    return (f"every one of its {int(counts[high])} patients with '{classes[high]}' has a "
            f"probability at or above every one of its {int(counts[low])} with "
            f"'{classes[low]}'")


def _event_order(slope: float, event: np.ndarray, what: str) -> str:
    """How the source model's lp orders the events, for a refusal (as :func:`_class_order`)."""
    counted = f"{int(event.sum())} events among {len(event)} patients"
    if not np.isinf(slope):
        return counted
    return (f"each of its {counted} has the {'highest' if slope > 0 else 'lowest'} {what} of "
            "the patients still at risk at its time")


_DECISION_FIGURES = ("sensitivity", "specificity", "ppv", "npv", "accuracy", "f1")


def _test_figures(thresholded: bool, y: np.ndarray) -> dict[str, Any]:
    """Which of ``test``'s figures are cross-fitted and which are the unchanged decisions."""
    crossed = _cross_fit_text(y, "outcome class")
    if not thresholded:
        return {"cross_fitted": "all: " + crossed}
    return {"cross_fitted": "calibration, discrimination and Brier figures (auroc, auprc, "
                            "brier, ece, calibration_intercept, calibration_slope): " + crossed,
            "unchanged_decisions": (
                f"{', '.join(_DECISION_FIGURES)}: the source model's decisions on the local "
                "cohort (its probability at or above its threshold), unchanged by the update, "
                "which keeps who is above the threshold; exact, no fit involved, so not "
                "cross-fitted")}


def _probability(a: float, b: float, x: np.ndarray) -> np.ndarray:
    """``expit(a + b * x)`` (``x`` a logit)."""
    from scipy.special import expit

    return np.asarray(expit(a + b * x), dtype=np.float64)


def _conformal(model: DiagnoseModel, proba: np.ndarray, y: np.ndarray) -> Any:
    """The source run's conformal sets refitted, at their coverage, on the cross-fitted
    recalibrated probabilities (the source's were fitted on its own probabilities)."""
    if model.conformal is None:
        return None
    from permed.uncertainty import ConformalSets

    return ConformalSets(model.conformal.coverage,
                         getattr(model.conformal, "allow_empty", False)).fit(proba, y)


_DIAGNOSE_FIGURES = ("calibration_intercept", "calibration_slope", "brier", "ece", "auroc")


def _diagnose_figures(test: dict[str, Any]) -> dict[str, Any]:
    return {k: test[k] for k in _DIAGNOSE_FIGURES if k in test}


def _cross_fit_text(strata: np.ndarray, what: str) -> str:
    k = min(CROSS_FIT_FOLDS, int(np.unique(strata, return_counts=True)[1].min()))
    return (f"{k}-fold cross-fitting on the local cohort, stratified by {what}: each patient's "
            "recalibrated answer comes from a recalibration fitted on the other folds (out of "
            "sample; the in-sample fit is calibrated by construction and not reported)")


def _cohort_entry(info: TableInfo, used: int, counts: dict[str, int]) -> dict[str, Any]:
    return {"source": Path(info.path).name, "fingerprint": info.fingerprint, "rows": info.rows,
            "patients": used, "counts": counts}


# ------------------------------------------------------------------------------ risk


def _risk(run_dir: Path, model: Any, data: str | Path, development: dict[str, Any],
          method: str, n_boot: int, seed: int, missing: Sequence[str]) -> _Update:
    from permed.evaluate.survival import SurvivalGrid, horizon_key, survival_report
    from permed.models.risk import survival_y
    from permed.study._validate_risk import RiskOptions, thinly_followed, time_text
    from permed.workflow._apply import out_of_range_warning
    from permed.workflow._risk import RISK_GROUPS, checkable_horizons, read_outcome, risk_columns
    from permed.workflow._risk_external import _scale_warning

    frame, info = read_table(data, **model.schema.reading(missing))
    model.schema.check(frame, require=[model.time_column, model.event_column])
    study = Study(task="risk", time=model.time_column, event=model.event_column,
                  sensitive=list(model.schema.sensitive))
    outcome = read_outcome(frame, study, RiskOptions(model.event_value, trained=True))
    frame = frame.iloc[outcome.kept]
    time, event = outcome.time, outcome.event
    if not event.any():
        raise PermedError(
            f"the event column '{model.event_column}' records no event among the "
            f"{len(time)} patients of the local cohort: the baseline hazard is estimated from "
            "events; recalibrate on a cohort with events (or check the event coding)")
    scale = _scale_warning(model, development, time)
    horizons, dropped = _kept_horizons(model, time, scale)
    warnings = _sample_size(int(event.sum()), f"events ('{model.event_column}')", method,
                            "the baseline hazard")
    warnings += dropped + [w for w in (scale, out_of_range_warning(
        model.schema.out_of_range(frame), "risks")) if w]
    reference = float(horizons[len(horizons) // 2])
    features = model.pipeline[:-1].transform(model.schema.coerce(frame))
    source = model.pipeline[-1]
    lp = linear_predictor(source, features, reference)
    what = f"risk by {time_text(reference, model.time_unit)}"
    coding = (f"the event coding of '{model.event_column}'"
              + (f" (event value '{model.event_value}')" if model.event_value else ""))
    full = cox_slope(lp, time, event)
    _refuse_slope(method, full, _event_order(full, event, what), what, coding)
    estimator = RecalibratedSurvival(source, reference, method).fit(
        features, survival_y(time, event))
    check, inverted = _slope_check(method, full, what, "the baseline hazard")
    grid = SurvivalGrid.for_data(time, np.asarray(horizons, dtype=np.float64))
    # the curves at the grid and the horizons: before (source), after (cross-fitted)
    times = np.unique(np.concatenate([grid.times, np.asarray(horizons, dtype=np.float64)]))
    before = source.predict_survival_function(features, times)
    after = np.empty_like(before)
    strata = event.astype(int)
    names = {0: "censored patients", 1: "patients with the event"}
    folds = _folds(strata, seed, names)
    for fold, (train, held) in enumerate(folds, 1):
        b, steps, hazard = fit_cox_recalibration(lp[train], time[train], event[train], method)
        _refuse_slope(method, b, _event_order(b, event[train], what), what, coding,
                      _fold_where(fold, len(folds)))
        after[held] = _curves(b, steps, hazard, lp[held], times)
    replicates = np.asarray([_risk_replicate(lp[rows], time[rows], event[rows], method,
                                             reference)
                             for rows in _resamples(strata, n_boot, seed)], dtype=np.float64)
    failed = int((~np.isfinite(replicates).all(axis=1)).sum())
    replicates[~np.isfinite(replicates).all(axis=1)] = np.nan
    columns = np.searchsorted(times, grid.times)
    at_reference = int(np.searchsorted(times, reference))
    censoring = survival_y(time, event)
    tau = float(max(horizons))
    reports = {name: survival_report(censoring, time, event, 1.0 - curves[:, at_reference],
                                     curves[:, columns], grid, tau, n_boot=n_boot, seed=seed,
                                     averaged=horizons)
               for name, curves in (("before", before), ("after", after))}
    # the curves now step at the local cohort's times: its follow-up bounds the median, and the
    # risk groups are thirds of the local cohort by the recalibrated linear predictor
    scores = estimator.predict(features)
    cuts = [float(c) for c in np.quantile(scores, [1 / 3, 2 / 3])]
    tied = _tied_cuts(scores, cuts)
    recalibrated = replace(model, pipeline=_with_estimator(model.pipeline, estimator),
                           horizons=horizons, group_cuts=cuts, max_follow_up=float(time.max()),
                           median_limit=thinly_followed(time, [])[1])
    followed = checkable_horizons(time, list(model.horizons), "patients of the local cohort")
    entry = {
        "method": method,
        "model": ("S_new(t|x) = exp(-H0(t) * exp(b * lp(x))), lp(x) = log(-log S(h_ref|x)) of "
                  "the source model, H0 the Breslow baseline cumulative hazard of a Cox model "
                  "with lp as its only covariate fitted on the local cohort"
                  + ("; b fixed at 1" if method == "intercept" else "")),
        "reference_horizon": reference,
        "reference_horizon_rule": "the middle of the run's horizons the local cohort follows "
                                  "enough patients to (checkable)",
        "intercept": _interval(_log_hazard_at(estimator.baseline_times_,
                                              estimator.baseline_cumulative_hazard_, reference),
                               replicates[:, 0]),
        "intercept_meaning": ("log H0(h_ref): on the complementary log-log scale at h_ref the "
                              "update is log(-log S_new) = a + b * lp, so a = 0 and b = 1 "
                              "leave the source model's risk at h_ref unchanged"),
        "slope": (_interval(estimator.slope_, replicates[:, 1])
                  if method == "slope" else {"value": 1.0, "ci_low": None, "ci_high": None,
                                             "fixed": True}),
        "slope_check": check,
        "interval": _INTERVAL.format(n=n_boot, strata=(
            "events and within censored patients" if (~event).any()
            else "the patients, all with the event (none censored)")),
        "failed_replicates": failed,
        "cohort": _cohort_entry(info, len(time), {"censored": int((~event).sum()),
                                                  "event": int(event.sum())}),
        "horizons": {"kept": [float(h) for h in horizons],
                     "dropped": followed["not_checkable"],
                     "rule": followed["checkable_rule"],
                     "local_max_follow_up": float(time.max()),
                     "dropped_reason": (
                         "the local baseline hazard is flat after the local cohort's last "
                         f"time ({time_text(float(time.max()), model.time_unit)}): a risk "
                         "by a horizon few local patients reach would not be estimated, so "
                         "the recalibrated model keeps only the checkable horizons")},
        "risk_score": ("b * lp(x), the recalibrated Cox model's linear predictor: it orders "
                       "patients as every recalibrated curve does; risk groups are its thirds "
                       "on the local cohort"),
        "calibration": {
            "before": _risk_figures(reports["before"], before, times, horizons, time, event),
            "after": _risk_figures(reports["after"], after, times, horizons, time, event),
            "checked_horizons": [float(h) for h in horizons],
            "before_method": _BEFORE_METHOD,
            "after_method": _cross_fit_text(strata, "event")},
    }
    if check is None:
        del entry["slope_check"]
    predictions = patient_rows(frame, model.schema)
    predictions["time"], predictions["event"] = time, event.astype(int)
    predictions["y_true"] = np.where(event, "event", "censored")
    at = np.searchsorted(times, np.asarray(horizons, dtype=np.float64))
    for column, k in zip(risk_columns(horizons), at, strict=True):
        predictions[column] = 1.0 - after[:, k]
        predictions[f"source_{column}"] = 1.0 - before[:, k]
    metrics = {"task": "risk", "recalibration": entry,
               "horizons": {"values": [float(h) for h in horizons],
                            "source": [float(h) for h in model.horizons],
                            "checkable": [horizon_key(h) for h in horizons], **followed},
               "target": {"time": model.time_column, "event": model.event_column,
                          "counts": entry["cohort"]["counts"]},
               "risk_groups": {"labels": list(RISK_GROUPS), "cuts": cuts,
                               "method": "thirds of the local cohort by the recalibrated "
                                         "linear predictor b * lp (the risk score)",
                               **({"warning": tied[0]} if tied else {})},
               "test": reports["after"]["test"]}
    warnings += inverted + tied + _failed_warning(
        failed, n_boot, "the resample's events were separated by the model's risk, or none "
        "fell before the reference horizon")
    return _Update(recalibrated, model.schema, info, metrics, predictions, study, warnings)


def _tied_cuts(scores: np.ndarray, cuts: list[float]) -> list[str]:
    """A warning when both tertile cuts fall on one tied risk score: the intermediate group is
    then empty (a group takes the scores at or above its lower cut)."""
    if cuts[0] != cuts[1]:
        return []
    shared = int(np.sum(scores == cuts[0]))
    low, high = int(np.sum(scores < cuts[0])), int(np.sum(scores >= cuts[1]))
    return [f"{shared} of the {len(scores)} local patients ({shared / len(scores):.0%}) share "
            f"the risk score {cuts[0]:.4g} on which both tertile cuts fall: the intermediate "
            f"risk group is empty ({low} low, 0 intermediate, {high} high on the local "
            "cohort); the source model gives many patients the same answer (a tree model, or "
            "survival at the reference horizon clipped at 0 or 1), so its risk groups cannot "
            "be thirds here"]


def _kept_horizons(model: Any, time: np.ndarray, scale: str) -> tuple[list[float], list[str]]:
    """The run's horizons the local cohort follows enough patients to (``permed evaluate``'s
    rule), and a warning for each one dropped.

    Raises
    ------
    PermedError
        When none is followed long enough.
    """
    from permed.study._validate_risk import followed_rule, thinly_followed, time_text

    unit, column, longest = model.time_unit, model.time_column, float(time.max())
    thin, reach = thinly_followed(time, model.horizons)
    enough = followed_rule(len(time))
    if len(thin) == len(model.horizons):
        shorter = (f", or train a model with horizons up to {time_text(reach, unit, floor=True)}"
                   " (permed train --horizons)" if reach > 0 else "")
        raise PermedError(
            f"no horizon of the model ({', '.join(time_text(h, unit) for h in model.horizons)}) "
            f"is reached by {enough} of the {len(time)} patients of the local cohort in "
            f"'{column}' (longest follow-up {time_text(longest, unit)}): a recalibration on it "
            "would not estimate the risk by any of them, since its baseline hazard is flat "
            f"after the last local time; {scale or 'recalibrate on a cohort followed longer'}"
            f"{shorter}")
    kept = [float(h) for h in model.horizons if float(h) not in thin]
    warnings = [
        f"horizon {time_text(h, unit)} is dropped from the recalibrated model: only {n} of "
        f"{len(time)} local patients are followed that long in '{column}' ({enough} needed; "
        f"longest local follow-up {time_text(longest, unit)}), and the local baseline hazard "
        "is flat after the last local time, so the risk by then would not be estimated; the "
        f"recalibrated model reports {', '.join(time_text(k, unit) for k in kept)}"
        for h, n in thin.items()]
    return kept, warnings


def _risk_replicate(lp: np.ndarray, time: np.ndarray, event: np.ndarray, method: str,
                    reference: float) -> tuple[float, float]:
    """``(log H0(h_ref), b)`` of one bootstrap resample (nan where it has no estimate)."""
    slope, steps, hazard = fit_cox_recalibration(lp, time, event, method)
    return _log_hazard_at(steps, hazard, reference), slope


def _curves(slope: float, steps: np.ndarray, hazard: np.ndarray, lp: np.ndarray,
            times: np.ndarray) -> np.ndarray:
    from permed.models.risk._base import breslow_survival, step_values

    grid, values = breslow_survival(steps, hazard, slope * lp)
    return np.clip(step_values(grid, values, times), 0.0, 1.0)


def _log_hazard_at(steps: np.ndarray, hazard: np.ndarray, horizon: float) -> float:
    position = np.searchsorted(steps, horizon, side="right") - 1
    value = float(hazard[position]) if position >= 0 and len(hazard) else 0.0
    return float(np.log(value)) if value > 0 else float("nan")


def _with_estimator(pipeline: Any, estimator: Any) -> Any:
    """The source pipeline (its fitted preprocessing) ending in ``estimator``."""
    from sklearn.pipeline import Pipeline

    return Pipeline([*pipeline.steps[:-1], (pipeline.steps[-1][0], estimator)])


def _risk_figures(report: dict[str, Any], curves: np.ndarray, times: np.ndarray,
                  horizons: list[float], time: np.ndarray, event: np.ndarray) -> dict[str, Any]:
    """Per horizon: mean predicted risk, Kaplan-Meier observed risk, observed/expected and the
    calibration slope; and the C-index and integrated Brier score."""
    from permed.evaluate.survival import horizon_key, kaplan_meier_at

    by_horizon: dict[str, Any] = {}
    calibration = report.get("calibration") or {}
    for h in horizons:
        key = horizon_key(h)
        predicted = float(np.mean(1.0 - curves[:, int(np.searchsorted(times, h))]))
        observed = 1.0 - kaplan_meier_at(time, event, float(h))
        found = calibration.get(key) or {}
        by_horizon[key] = {"predicted_risk": predicted, "observed_risk": observed,
                           "observed_expected": found.get("observed_expected"),
                           "slope": found.get("slope")}
    test = report["test"]
    return {"horizons": by_horizon, **{k: test[k] for k in ("c_index", "ibs") if k in test}}


# ------------------------------------------------------------------------------ writing


def _write(run_dir: Path, out: Path, update: _Update, development: dict[str, Any],
           n_boot: int, seed: int, command: str | None, sealed: bool) -> Path:
    """The new run, all or nothing (as train writes one): model/ (signed; model.onnx where
    the source pipeline exports), metrics.json, predictions.csv, manifest.json, audit.log and
    report.html; the bundle and predictions.csv encrypted with the data key when ``sealed``
    (an encrypted source run or local cohort)."""
    from permed.report import write_report

    key = require_key("permed recalibrate of an encrypted run or cohort") if sealed else None
    info = update.info
    metrics = {"task": update.metrics["task"],
               "data": {"rows": info.rows, "columns": info.columns,
                        "fingerprint": info.fingerprint, "source": Path(info.path).name,
                        "test_rows": len(update.predictions)},
               "selected_model": development.get("selected_model"),
               **{k: v for k, v in update.metrics.items() if k != "task"},
               "timings": {}}
    manifest = external_manifest(run_dir, info, update.study, n_boot, seed)
    manifest["config"]["method"] = metrics["recalibration"]["method"]
    if command:
        manifest["command"] = command
    manifest["warnings"] = update.warnings
    manifest["source_run"] = manifest.pop("development_run")
    with atomic_directory(out) as staging:
        if update.metrics["task"] == "diagnose":  # the graph is the source pipeline's
            export_onnx(update.model, staging / BUNDLE_DIR, key=key)
        save_bundle(update.model, update.schema, staging / BUNDLE_DIR, key=key)
        write_bytes(staging / "predictions.csv",
                    update.predictions.to_csv(index=False).encode(), key)
        write_json(staging / "metrics.json", metrics)
        write_json(staging / "manifest.json", manifest)
        write_report(staging)
        audit = AuditLog.continued(out / "audit.log", staging / "audit.log")
        audit.append("read", data=info.fingerprint, rows=info.rows, columns=info.columns)
        audit.append("recalibrate", source=str(run_dir), method=metrics["recalibration"][
            "method"], encrypted=key is not None)
    return out
