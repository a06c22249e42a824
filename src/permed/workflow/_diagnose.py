"""Train, select, calibrate and evaluate a diagnose model on one cohort.

Protocol: a stratified held-out test split is set aside first and touched once, for the
selected model only. Models are compared by stratified k-fold CV on the development split;
calibration and the decision threshold are chosen on out-of-fold predictions; the final model is
refitted on the whole development split.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from permed.engine import Engine, Progress
from permed.evaluate import (
    classification_report,
    expected_calibration_error,
    threshold_for_sensitivity,
    youden_threshold,
)
from permed.exceptions import PermedError
from permed.fairness import audit_classification, bin_edges, mitigation_table, representation
from permed.models.diagnose import DIAGNOSE_MODELS, default_models, make_model
from permed.models.diagnose._registry import require_events
from permed.preprocess._text import note_identifiers, scrub_notes
from permed.study import FittedSchema, Study, ValidationReport, as_category
from permed.uncertainty import (
    ConformalSets,
    OutOfDistribution,
    ProbabilityCalibrator,
    choose_calibration,
)
from permed.uncertainty._calibration import _multiclass_brier
from permed.workflow._config import TrainConfig
from permed.workflow._cv import CVResult, FoldData, build_pipeline, cross_validate, tune
from permed.workflow._explain import ExplainInputs, explain_step
from permed.workflow._fitted import DiagnoseModel, probability_columns
from permed.workflow._genes import gene_stability
from permed.workflow._large import cohort_folds, folds_note, is_large
from permed.workflow._result import RunResult, Timings
from permed.workflow._tuning import TUNING_RULE, TuningVerdict, selection_score, tuning_details

__all__ = ["train_diagnose"]



def target_classes(labels: pd.Series, config: TrainConfig) -> list[str]:
    """The target's classes, sorted, the positive class (``--positive-class``) last.

    Raises
    ------
    PermedError
        An unknown positive class, or a binary-only option given for more than two classes.
    """
    classes = sorted(labels.dropna().unique())
    binary_only = [flag for flag, value in (("--positive-class", config.positive_class),
                                            ("--target-sensitivity", config.target_sensitivity))
                   if value is not None]
    if binary_only and len(classes) > 2:
        raise PermedError(
            f"{' and '.join(binary_only)} appl{'y' if len(binary_only) > 1 else 'ies'} to a "
            f"target with two classes; this one has "
            f"{len(classes)} ({', '.join(map(str, classes))}), and each patient gets the most "
            "probable class: leave them out, or train one class against the rest (a column "
            "that is 1 for that class, 0 otherwise)")
    positive = config.positive_class
    if positive is None:
        return classes
    if positive not in classes:
        raise PermedError(f"--positive-class '{positive}' is not a value of the target; its "
                          f"classes are {classes}")
    return [c for c in classes if c != positive] + [positive]


# a class named like the absence of disease: counted as positive only when the user says so
_ABSENCE = re.compile(r"(no|non|not|none|negative|neg|normal|healthy|absent|sain|control)"
                      r"([\s_\-].*)?", re.IGNORECASE)


def positive_class_warning(classes: list[str], config: TrainConfig) -> str | None:
    """A warning when the default positive class (the last in sorted order) reads as the
    absence of disease ('no disease', 'healthy', 'negative') and the other class does not:
    sensitivity, PPV and the threshold would then be about finding healthy patients."""
    if config.positive_class is not None or len(classes) != 2:
        return None
    negative, positive = (str(c).strip() for c in classes)
    if not _ABSENCE.fullmatch(positive) or _ABSENCE.fullmatch(negative):
        return None
    return (f"the positive class is '{positive}' (the last in sorted order), which reads as "
            f"the absence of disease: sensitivity, PPV and the threshold are about finding "
            f"'{positive}' patients; pass --positive-class '{negative}' to make '{negative}' "
            "the positive class")


def train_diagnose(frame: pd.DataFrame, study: Study, validation: ValidationReport,
                   config: TrainConfig, engine: Engine, progress: Progress) -> RunResult:
    """Run the whole diagnose protocol; return metrics, test predictions and the model."""
    timings = Timings()
    names = config.models or default_models()
    for name in names:
        make_model(name, config.seed, config.device)  # refuses unknown names up front
    require_events(names, study.events)  # --models gru reads --events (models/deep/_sequence.py)
    labels = as_category(frame[study.target])
    frame = frame[labels.notna()]
    labels = labels[labels.notna()]
    classes = target_classes(labels, config)
    caution = positive_class_warning(classes, config)
    if caution is not None:
        validation.warn(caution, study.target)
        progress.note(f"warning: {caution}")
    y = labels.map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=int)
    # each note loses its own record's names and ids before any encoder reads it: row-wise
    # and fitted on nothing, so before the split (preprocess/_text.py)
    frame = scrub_notes(frame, [c for c, k in validation.kinds.items() if k == "text"],
                        note_identifiers(study, list(frame.columns)))

    dev_idx, test_idx = train_test_split(
        np.arange(len(frame)), test_size=config.test_size, stratify=y,
        random_state=config.seed)
    dev, test = frame.iloc[dev_idx], frame.iloc[test_idx]
    schema = FittedSchema.from_frame(dev, validation.kinds, study, classes)
    folds = cohort_folds(len(dev), config.cv)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    features = schema.coerce(dev)
    data = FoldData(features, y[dev_idx], list(splitter.split(features, y[dev_idx])), schema,
                    config.clip, config.seed, config.device)

    tuned: dict[str, tuple[dict[str, Any], TuningVerdict]] = {}
    if config.budget > 0:
        with timings("tuning"):
            tuned = tune(data, names, config.budget, engine, progress,
                         _settings(names, len(dev), {}))
    with timings("cv"):
        results = cross_validate(data, names, engine, progress,
                                 _settings(names, len(dev), tuned))
    selected = max(names, key=lambda n: (np.nan_to_num(selection_score(
        results[n].summary["auroc"]["mean"], tuned[n][1] if n in tuned else None), nan=-1),
        -names.index(n)))
    best = results[selected]

    with timings("calibration"):
        calibration = _calibrate(best, data, config, folds)
    with timings("final_fit"):
        pipeline = build_pipeline(selected, schema, config.seed, config.device, config.clip,
                                  best.params).fit(features, data.y)
    model = DiagnoseModel(selected, schema, pipeline, calibration["calibrator"],
                          calibration["threshold"])
    with timings("uncertainty"):
        model.conformal = ConformalSets(config.coverage).fit(calibration["oof"], data.y)
        model.ood = OutOfDistribution(seed=config.seed).fit(
            pipeline[:-1].transform(features), features[schema.numeric])

    with timings("test"):
        raw_test = pipeline.predict_proba(schema.coerce(test))
        proba = model.calibrator.transform(raw_test)
        evaluation = classification_report(
            y[test_idx], proba, classes, threshold=model.threshold, n_boot=config.n_boot,
            seed=config.seed)
    with timings("fairness"):
        fairness = _fairness(study, (dev, data.y, calibration["oof"]),
                             (test, y[test_idx], proba), model, config)
    uncertainty = _uncertainty(model, test, y[test_idx], proba, config)
    with timings("explain"):  # SHAP values, scorecard points: workflow/_explain.py
        explained, files = explain_step(ExplainInputs(
            model, data, schema.coerce(test), frame.index[test_idx].to_numpy(), study, results,
            config.seed))

    genes = None
    if schema.genes:  # which genes carry the signal, by name: workflow/_genes.py
        with timings("genes"):
            genes = gene_stability(features, data.y, schema, config.seed, engine, progress)

    metrics = {
        "task": "diagnose",
        "target": {"column": study.target, "classes": classes,
                   "positive_class": classes[1] if len(classes) == 2 else None,
                   "counts": {c: int((y == i).sum()) for i, c in enumerate(classes)}},
        "selected_model": selected,
        "selection": _selection(folds, config, len(dev)),
        "test": evaluation["test"],
        "cv": {n: results[n].summary for n in names},
        "cv_details": {n: {"params": results[n].params, **tuning_details(tuned, n),
                           "fit_seconds": round(results[n].seconds, 3)} for n in names},
        "confusion_matrix": evaluation["confusion_matrix"],
        "calibration": {
            "method": calibration["method"], "chosen_by": calibration["chosen_by"],
            "candidates": calibration["candidates"],
            "test_uncalibrated": _calibration_figures(y[test_idx], raw_test)},
        "threshold": {"value": model.threshold, "rule": config.threshold_rule
                      if len(classes) == 2 else "most probable class",
                      "target_sensitivity": config.target_sensitivity},
        "bootstrap": {"replicates": config.n_boot, "confidence": 0.95,
                      "method": "stratified percentile", "seed": config.seed},
        "fairness": fairness,
        "uncertainty": uncertainty,
        "split": {"development_rows": len(dev), "test_rows": len(test)},
        "timings": dict(timings),
    }
    if "per_class" in evaluation:
        metrics["per_class"] = evaluation["per_class"]
    metrics.update(explained)
    if genes is not None:
        metrics["genes"] = genes
    if hasattr(pipeline[-1], "privacy_"):  # differentially private training: epsilon spent
        metrics["privacy"] = pipeline[-1].privacy_
    predictions = _predictions(frame, test_idx, study, classes, y[test_idx], proba, model)
    return RunResult("diagnose", metrics, predictions, model, schema, files=files,
                     split_rows=(dev.index, test.index))


def _calibration_figures(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    return {"brier": round(_multiclass_brier(y, proba), 6),
            "ece": round(float(expected_calibration_error(y, proba)), 6)}


def _settings(names: list[str], development_rows: int,
              tuned: dict[str, tuple[dict[str, Any], TuningVerdict]]
              ) -> dict[str, dict[str, Any]]:
    """Each model's settings over its defaults: its large-cohort ones on a large cohort
    (workflow/_large.py), then any tuned ones on top."""
    large = is_large(development_rows)
    return {name: {**(DIAGNOSE_MODELS[name].large_cohort if large else {}),
                   **(tuned[name][0] if name in tuned else {})} for name in names}


def _selection(folds: int, config: TrainConfig, development_rows: int) -> dict[str, Any]:
    selection: dict[str, Any] = {
        "metric": "auroc", "folds": folds,
        "rule": "highest mean CV AUROC (macro one-vs-rest for >2 classes)"}
    if config.budget > 0:
        selection["tuning"] = TUNING_RULE
    note = folds_note(folds, config.cv, development_rows)
    if note:
        selection["note"] = note
    if is_large(development_rows):
        selection["large_cohort_settings"] = (
            "models with large-cohort settings (LightGBM: fewer, larger trees) use them; "
            "see cv_details.<model>.params")
    return selection


def _calibrate(best: CVResult, data: FoldData, config: TrainConfig,
               folds: int) -> dict[str, Any]:
    chosen, cross_fitted = choose_calibration(best.oof, data.y, folds=folds, seed=config.seed)
    method = chosen if config.calibration == "auto" else config.calibration
    calibrator = ProbabilityCalibrator(method).fit(best.oof, data.y)
    calibrated_oof = cross_fitted[method]
    threshold = None
    if best.oof.shape[1] == 2:
        p1 = calibrated_oof[:, 1]
        threshold = (youden_threshold(data.y, p1) if config.target_sensitivity is None
                     else threshold_for_sensitivity(data.y, p1, config.target_sensitivity))
    return {
        "calibrator": calibrator, "method": method, "threshold": threshold,
        "oof": calibrated_oof,
        "chosen_by": ("cross-fitted Brier score on out-of-fold predictions; a more flexible "
                      "method only when it beats a simpler one by more than one standard error"
                      if config.calibration == "auto" else "set by --calibration"),
        "candidates": {m: _calibration_figures(data.y, p) for m, p in cross_fitted.items()},
    }


def _uncertainty(model: DiagnoseModel, test: pd.DataFrame, y: np.ndarray, proba: np.ndarray,
                 config: TrainConfig) -> dict[str, Any]:
    """Conformal coverage and set sizes, and abstention rates, on the test split."""
    members = model.conformal.predict_set(proba)
    flags = model.abstention(test, proba, model.schema.out_of_range(test))
    covered = members[np.arange(len(y)), y]
    low, high = np.quantile(_resampled_means(covered, config.n_boot, config.seed), [0.025, 0.975])
    return {
        "method": "split-conformal LAC sets on cross-fitted out-of-fold probabilities; the most "
                  "probable class is always included",
        "coverage_target": config.coverage,
        "test_coverage": {"value": float(covered.mean()), "ci_low": float(low),
                          "ci_high": float(high)},
        "mean_set_size": float(members.sum(axis=1).mean()),
        "share_uncertain_sets": float((members.sum(axis=1) > 1).mean()),
        "share_out_of_distribution": float(np.mean(flags["out_of_distribution"])),
        "share_referred": float(np.mean(flags["refer_to_clinician"])),
        "ood_method": "Mahalanobis distance (Ledoit-Wolf covariance) on the preprocessed "
                      "features, cutoff = the 1% farthest development patients (values outside "
                      "the training range are referred separately, out_of_range_features)",
    }


def _resampled_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Mean of ``values`` on each of ``n_boot`` resamples, drawn a block of replicates at a
    time so memory stays bounded on a large test split (same draws as one
    ``integers(0, n, size=(n_boot, n))`` call)."""
    rng = np.random.default_rng(seed)
    n = len(values)
    block = max(1, 2**22 // max(n, 1))
    means = []
    for start in range(0, n_boot, block):
        draws = rng.integers(0, n, size=(min(block, n_boot - start), n))
        means.append(values[draws].mean(axis=1))
    return np.concatenate(means)


def _fairness(study: Study, development: tuple[pd.DataFrame, np.ndarray, np.ndarray],
              held_out: tuple[pd.DataFrame, np.ndarray, np.ndarray], model: DiagnoseModel,
              config: TrainConfig) -> dict[str, Any]:
    """Test-split audit, development representation, and a before/after mitigation table.

    ``development`` and ``held_out`` are (rows, class indices, calibrated probabilities); the
    development probabilities are out-of-fold, so the mitigation never sees the test split.
    """
    if not study.sensitive:
        return {"attributes": {}, "note": "no sensitive attribute declared (--sensitive COL)"}
    (dev, y_dev, p_dev), (test, y, proba) = development, held_out
    edges = bin_edges(dev[study.sensitive])  # one set of groups for every table of the run
    audit = audit_classification(
        y, proba, model.labels(proba), test[study.sensitive].reset_index(drop=True),
        model.classes, n_boot=min(config.n_boot, 200), seed=config.seed, edges=edges)
    positive = len(model.classes) - 1
    audit["representation"] = representation(
        dev[study.sensitive], y_dev == positive,
        outcome=f"{study.target} = {model.classes[positive]}", edges=edges)
    if len(model.classes) == 2:
        audit["mitigation"] = {
            column: mitigation_table((y_dev, p_dev[:, 1], dev[column]),
                                     (y, proba[:, 1], test[column]), model.threshold, column,
                                     seed=config.seed, edges=edges)
            for column in study.sensitive}
    return audit


def _predictions(frame: pd.DataFrame, test_idx: np.ndarray, study: Study, classes: list[str],
                 y: np.ndarray, proba: np.ndarray, model: DiagnoseModel) -> pd.DataFrame:
    out = pd.DataFrame({"row": frame.index[test_idx].to_numpy()})
    if study.id:
        out[study.id] = frame[study.id].iloc[test_idx].to_numpy()
    out["y_true"] = np.asarray(classes, dtype=object)[y]
    for column, values in zip(probability_columns(classes), proba.T, strict=True):
        out[column] = values
    out["predicted"] = np.asarray(classes, dtype=object)[model.labels(proba)]
    out["prediction_set"] = model.prediction_sets(proba)
    return out
