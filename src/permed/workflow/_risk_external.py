"""External validation of a risk run: its model applied unchanged to another cohort with the
time and event columns (``permed evaluate``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from permed.exceptions import PermedError
from permed.fairness import saved_bin_edges
from permed.models.risk import survival_y
from permed.study import Study
from permed.study._validate_risk import RiskOptions, followed_rule, thinly_followed, time_text
from permed.workflow._apply import (
    absent_sensitive_warning,
    external_entry,
    external_manifest,
    out_of_range_warning,
    same_data_warning,
    sensitive_entry,
    write_external,
)
from permed.workflow._config import TrainConfig
from permed.workflow._overlap import cohort_overlap
from permed.workflow._risk import (
    RISK_GROUPS,
    RiskModel,
    checkable_horizons,
    evaluate_cohort,
    follow_up_entry,
    follow_up_summary,
    read_outcome,
    risk_columns,
    risk_estimators,
    risk_fairness,
)

__all__ = ["FOLLOW_UP_RATIO", "evaluate_risk_run"]

# An external cohort whose median follow-up is this many times longer (or shorter) than the
# development split's is warned about: likely another time unit.
FOLLOW_UP_RATIO = 10.0


def evaluate_risk_run(run_dir: Path, model: RiskModel, data: str | Path, out: str | Path,
                      n_boot: int = 1000, seed: int = 42, missing: Sequence[str] = ()) -> Path:
    """External validation of a risk run on a cohort with the time and event columns.

    The model is applied unchanged; the cohort's own censoring distribution weights Uno's C,
    the Brier score and the time-dependent AUC. Horizons fewer than 20 (or 5%) of the cohort's
    patients are followed to are left out of the figures, with a warning, as are a follow-up
    scale far from the development split's and values outside the training range. ``out``
    gets metrics.json (``test`` = this cohort), predictions.csv, manifest.json (the warnings)
    and report.html.

    Raises
    ------
    PermedError
        When the cohort lacks a model column or the outcome columns, its outcome is invalid
        (or coded otherwise than in training), or no horizon is followed long enough.
    """
    from permed.ingest import read_table
    from permed.utils.jsonio import read_json

    development = read_json(Path(run_dir) / "metrics.json")
    frame, info = read_table(data, **model.schema.reading(missing))
    model.schema.check(frame, require=[model.time_column, model.event_column])
    repeated = model.schema.duplicated_ids(frame.reset_index(drop=True))
    study = Study(task="risk", time=model.time_column, event=model.event_column,
                  sensitive=list(model.schema.sensitive))
    outcome = read_outcome(frame, study, RiskOptions(model.event_value, trained=True))
    frame = frame.iloc[outcome.kept]
    outside = model.schema.out_of_range(frame)  # per patient, the features out of range
    overlap = cohort_overlap(run_dir, model.schema, frame)  # the run's own patients again
    warnings, horizons = _external_warnings(model, development, outside, outcome.time)
    reference = survival_y(outcome.time, outcome.event)
    figures, predictions = evaluate_cohort(
        model, frame, outcome.time, outcome.event,
        (reference, "Kaplan-Meier estimate of the censoring distribution of the external "
                    "cohort"), n_boot, seed, horizons)
    counts = {"censored": int((~outcome.event).sum()), "event": int(outcome.event.sum())}
    sensitive = [c for c in study.sensitive if c in frame.columns]
    fairness = sensitive_entry(study.sensitive, frame.columns, risk_fairness(
        study.with_overrides(sensitive=sensitive), frame, predictions, model,
        TrainConfig(n_boot=max(n_boot, 100), seed=seed),
        saved_bin_edges(development.get("fairness"))) if sensitive else None)
    metrics: dict[str, Any] = {
        "task": "risk",
        "data": {"rows": info.rows, "columns": info.columns, "fingerprint": info.fingerprint,
                 "source": Path(info.path).name, "test_rows": len(frame),
                 "out_of_range_rows": int((outside != "").sum())},
        "external": external_entry(run_dir, development, info, overlap),
        **{k: development[k] for k in ("selected_model", "selection", "cv")
           if k in development},
        "horizons": {**development.get("horizons", {}),
                     **checkable_horizons(outcome.time, model.horizons, "patients of the cohort")},
        "target": {**development.get("target", {}), "counts": counts},
        "outcome": {**development.get("outcome", {}), **counts,
                    "max_follow_up": float(outcome.time.max()),
                    "median_follow_up": float(np.median(outcome.time)),
                    **follow_up_entry(
                        _development_follow_up(development),
                        follow_up_summary(outcome.time, outcome.event, model.horizons), "test"),
                    "left_out_zero_time": outcome.left_out},
        "test": figures["test"], "td_auc_by_horizon": figures["td_auc_by_horizon"],
        "calibration": {"method": "none", "chosen_by": "the model's own survival curves, "
                        "assessed at each horizon", "horizons": figures["calibration"]},
        "risk_groups": {"labels": list(RISK_GROUPS), "method": "the development run's risk-score "
                        "cut points", **figures["risk_groups"]},
        "evaluation": figures["evaluation"],
        "metric_estimators": risk_estimators(figures["evaluation"]),
        "bootstrap": {"replicates": n_boot, "confidence": 0.95, "method": "percentile, "
                      "resampled within events and within censored patients", "seed": seed,
                      **figures["bootstrap"]},
        "fairness": fairness,
        "timings": {},
    }
    predictions = _external_predictions(model, frame, predictions)
    manifest = external_manifest(run_dir, info, study, n_boot, seed)
    same = same_data_warning(metrics)
    manifest["warnings"] = ([w for w in [same, repeated] if w]
                            + ([] if same else overlap.warnings(model.schema.id))
                            + model.schema.missing_warnings(frame, "risks and figures")
                            + model.schema.scale_warnings(frame, "risks")
                            + [w for w in [absent_sensitive_warning(study.sensitive,
                                                                    frame.columns)] if w]
                            + warnings)
    return write_external(out, run_dir, metrics, predictions, manifest)


def _development_follow_up(development: dict[str, Any]) -> dict[str, Any] | None:
    """The development split's follow-up as its run recorded it (None for runs before it was
    recorded)."""
    found = (development.get("outcome") or {}).get("follow_up") or {}
    return found.get("development") if isinstance(found, dict) else None


def _external_warnings(model: RiskModel, development: dict[str, Any], outside: pd.Series,
                       time: np.ndarray) -> tuple[list[str], list[float]]:
    """What an external cohort's figures must be read with, and the horizons it can check.

    Raises
    ------
    PermedError
        When no horizon is followed long enough to be checked.
    """
    unit, column = model.time_unit, model.time_column
    scale = _scale_warning(model, development, time)
    thin, reach = thinly_followed(time, model.horizons)
    if len(thin) == len(model.horizons):
        raise PermedError(
            f"no horizon of the model ({', '.join(time_text(h, unit) for h in model.horizons)}) "
            f"is reached by {followed_rule(len(time))} patients of this cohort in '{column}' "
            f"(longest follow-up {time_text(float(time.max()), unit)}): its risks cannot be "
            f"checked here; {scale or 'evaluate on a cohort followed longer'}")
    warnings = [
        f"horizon {time_text(horizon, unit)}: only {followed} of {len(time)} patients of this "
        f"cohort are followed that long in '{column}' (longest follow-up "
        f"{time_text(float(time.max()), unit)}), so the risk by then cannot be checked: its "
        "calibration, AUC and observed risks are left out; the horizons up to "
        f"{time_text(reach, unit, floor=True)} are checkable" for horizon, followed in thin.items()]
    warnings += [w for w in (scale, out_of_range_warning(outside, "risks")) if w]
    return warnings, [h for h in model.horizons if float(h) not in thin]


def _scale_warning(model: RiskModel, development: dict[str, Any], time: np.ndarray) -> str:
    """A warning when the cohort's follow-up is over :data:`FOLLOW_UP_RATIO` times longer or
    shorter than development's (the median; the longest for runs that did not record it)."""
    known = development.get("outcome", {})
    which = "median" if "median_follow_up" in known else "longest"
    before = float(known.get("median_follow_up") or model.max_follow_up)
    now = float(np.median(time) if which == "median" else time.max())
    ratio = now / before if before > 0 else 1.0
    if 1 / FOLLOW_UP_RATIO <= ratio <= FOLLOW_UP_RATIO:
        return ""
    column, unit = model.time_column, model.time_unit
    return (f"the {which} follow-up in '{column}' is {time_text(now)} in this cohort against "
            f"{time_text(before, unit)} in development ({ratio:.3g} times as long): time unit? "
            f"The model reads '{column}' in {unit or 'the unit it was trained with'}: convert "
            "the times and evaluate again")


def _external_predictions(model: RiskModel, frame: pd.DataFrame,
                          predictions: pd.DataFrame) -> pd.DataFrame:
    """predictions.csv of an external cohort in train's format: ``row``, the id when the
    cohort has it, the outcome and the model's answers."""
    predictions["row"] = frame.index.to_numpy()
    columns = ["row"]
    if model.schema.id and model.schema.id in frame.columns:
        predictions[model.schema.id] = frame[model.schema.id].to_numpy()
        columns.append(model.schema.id)
    predictions["y_true"] = np.where(predictions["event"] == 1, "event", "censored")
    return predictions[[*columns, "time", "event", "y_true", "risk_score",
                        *risk_columns(model.horizons), "median_survival_time", "risk_group"]]
