"""The report of a recalibrated run (``permed recalibrate``): what was updated, the fitted
intercept and slope, and calibration before and after (after: cross-fitted), with a plot."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from permed.report._html import (
    DASH,
    Figure,
    Figures,
    Paragraph,
    RunFiles,
    Section,
    Table,
    dig,
    fmt_ci,
    fmt_date,
    fmt_num,
    key_value_table,
    short_fingerprint,
)

__all__ = ["recalibration_page"]

_LABELS = {"calibration_intercept": "Calibration intercept (ideal 0)",
           "calibration_slope": "Calibration slope (ideal 1)", "brier": "Brier score",
           "ece": "Expected calibration error", "auroc": "AUROC", "c_index": "Harrell's C",
           "ibs": "Integrated Brier score"}


def recalibration_page(run: RunFiles) -> tuple[dict[str, Any], list[Section]]:
    """The header and sections of a recalibrated run's report."""
    entry = run.metrics["recalibration"]
    source = entry.get("source_run") or {}
    cohort = entry.get("cohort") or {}
    facts = [("Source run", fmt_num(source.get("path"))),
             ("Source bundle", short_fingerprint(source.get("bundle_sha256"))),
             ("Model", fmt_num(run.metrics.get("selected_model"))),
             ("Method", fmt_num(entry.get("method"))),
             ("Local cohort", short_fingerprint(cohort.get("fingerprint"))),
             ("Created", fmt_date(run.manifest.get("created")))]
    after = dig(entry, "calibration", "after_method", default=DASH)
    summary = (f"The model of {source.get('path') or DASH} updated for "
               f"{fmt_num(cohort.get('patients'))} patients of "
               f"{cohort.get('source') or 'the local cohort'}: intercept "
               f"{fmt_ci(entry.get('intercept'), 3)}, slope {fmt_ci(entry.get('slope'), 3)}. "
               f"Calibration after the update is measured by {after.split(':')[0]}.")
    outcome = dig(run.metrics, "target", "event") or run.target  # risk: the event column
    header = {"title": f"permed model report \u2014 Recalibration \u2014 {run.task}: "
                       f"{outcome}", "facts": facts, "summary": summary,
              "problems": list(run.problems),
              "sources": "metrics.json, manifest.json, predictions.csv, model/schema.json)",
              "warnings": [str(w) for w in run.manifest.get("warnings") or []], "flags": []}
    return header, [_fit_section(run, entry), _before_after_section(run, entry)]


def _fit_section(run: RunFiles, entry: Mapping[str, Any]) -> Section:
    pairs: list[tuple[str, object]] = [
        ("Update", entry.get("model")),
        ("Intercept a (95% CI)", fmt_ci(entry.get("intercept"), 3)),
        ("Slope b (95% CI)", fmt_ci(entry.get("slope"), 3) + (
            " (fixed)" if dig(entry, "slope", "fixed") else "")),
        ("Intervals", entry.get("interval")),
        ("Failed bootstrap replicates", fmt_num(entry.get("failed_replicates"))),
    ]
    check = entry.get("slope_check") or {}
    if check:
        pairs.append(("Slope estimated, not applied",
                      f"{fmt_num(check.get('value'), 3)} ({check.get('meaning', '')})"))
    if "reference_horizon" in entry:
        pairs.insert(1, ("Reference horizon h_ref", entry.get("reference_horizon")))
        pairs.insert(2, ("Reference horizon rule", entry.get("reference_horizon_rule")))
        pairs.append(("Intercept", entry.get("intercept_meaning")))
        pairs += _horizon_pairs(entry)
    if "threshold" in entry:
        pairs += _threshold_pairs(entry["threshold"])
    source = entry.get("source_run") or {}
    pairs += [("Source run", source.get("path")),
              ("Source bundle (SHA-256 of model/bundle.json)", source.get("bundle_sha256")),
              ("Source data fingerprint", source.get("data_fingerprint")),
              ("Local cohort fingerprint", dig(entry, "cohort", "fingerprint")),
              ("Local cohort rows / patients used",
               f"{fmt_num(dig(entry, 'cohort', 'rows'))} / "
               f"{fmt_num(dig(entry, 'cohort', 'patients'))}")]
    return Section("recalibration", "Recalibration", [
        Paragraph("The source run's model is kept as it was; only its absolute answers are "
                  "updated for the patients of this site (Steyerberg, Clinical Prediction "
                  "Models, ch. 20). predict, serve and the ONNX path apply the update the "
                  "same way: it is part of the model in model/."),
        key_value_table(pairs)])


def _horizon_pairs(entry: Mapping[str, Any]) -> list[tuple[str, object]]:
    """The horizons kept and dropped (not followed long enough locally), and the risk score."""
    horizons = entry.get("horizons") or {}
    pairs: list[tuple[str, object]] = [
        ("Horizons kept", ", ".join(f"{h:g}" for h in horizons.get("kept") or []) or DASH)]
    dropped = horizons.get("dropped") or {}
    if dropped:
        pairs.append(("Horizons dropped", "; ".join(
            f"{key} ({n} local patients followed that long)" for key, n in dropped.items())
            + f": {horizons.get('rule', '')}; {horizons.get('dropped_reason', '')}"))
    if entry.get("risk_score"):
        pairs.append(("Risk score and groups", entry.get("risk_score")))
    return pairs


def _threshold_pairs(threshold: Mapping[str, Any]) -> list[tuple[str, object]]:
    pairs: list[tuple[str, object]] = [
        ("Decision threshold", f"{fmt_num(threshold.get('source'))} -> "
                               f"{fmt_num(threshold.get('recalibrated'))} "
                               f"({threshold.get('rule', '')})"),
        ("Classification", threshold.get("classification"))]
    if threshold.get("target_sensitivity") is not None:
        pairs.append(("Sensitivity: source target, local (cross-fitted)",
                      f"{fmt_num(threshold.get('target_sensitivity'), 3)}, "
                      f"{fmt_num(threshold.get('local_sensitivity'), 3)}"))
    return pairs


def _before_after_section(run: RunFiles, entry: Mapping[str, Any]) -> Section:
    calibration = entry.get("calibration") or {}
    before, after = calibration.get("before") or {}, calibration.get("after") or {}
    rows = [[_LABELS[k], fmt_ci(before.get(k), 3), fmt_ci(after.get(k), 3)]
            for k in _LABELS if k in before or k in after]
    blocks: list[Any] = [
        Paragraph(f"Before: {calibration.get('before_method', DASH)}. After: "
                  f"{calibration.get('after_method', DASH)}."),
        Table(header=["Measure on the local cohort", "Before (source model)",
                      "After (cross-fitted)"], rows=rows)]
    horizons = after.get("horizons") or {}
    if horizons:
        blocks.append(Table(
            header=["Horizon", "Observed risk (Kaplan-Meier)", "Predicted before",
                    "Predicted after", "O/E before", "O/E after"],
            rows=[[key, fmt_num(h.get("observed_risk"), 3),
                   fmt_num(dig(before, "horizons", key, "predicted_risk"), 3),
                   fmt_num(h.get("predicted_risk"), 3),
                   fmt_ci(dig(before, "horizons", key, "observed_expected"), 2),
                   fmt_ci(h.get("observed_expected"), 2)] for key, h in horizons.items()]
            + [[f"{key} (dropped: not checkable, {n} followed)", DASH, DASH, DASH, DASH, DASH]
               for key, n in (dig(entry, "horizons", "dropped") or {}).items()]))
    plot = _plot(run)
    if plot is not None:
        blocks.append(Figures([Figure(plot, "Calibration before and after recalibration",
                                      "Observed against predicted by tenth of predicted risk, "
                                      "before (source model) and after (cross-fitted).")]))
    return Section("before-after", "Calibration before and after", blocks)


def _plot(run: RunFiles) -> str | None:
    """Observed share against mean prediction per tenth, before and after (diagnose); for
    risk, the Kaplan-Meier risk at the reference horizon per tenth."""
    predictions = run.predictions
    if predictions is None:
        return None
    sources = [c for c in predictions.columns if c.startswith("source_")]
    if not sources:
        return None
    if run.task == "diagnose":
        after_column = sources[0][len("source_"):]
        observed = (predictions["y_true"].astype(str) == after_column[len("prob_"):]).to_numpy()
        pairs = {"before": predictions[sources[0]], "after": predictions[after_column]}
        return _draw(pairs, lambda rows: float(np.mean(observed[rows])), "probability")
    from permed.evaluate.survival import horizon_key, kaplan_meier_at

    h = float(dig(run.metrics, "recalibration", "reference_horizon", default=np.nan))
    column = f"risk_at_{horizon_key(h)}"
    if column not in predictions or f"source_{column}" not in predictions:
        return None
    time = predictions["time"].to_numpy(dtype=float)
    event = predictions["event"].to_numpy(dtype=bool)
    pairs = {"before": predictions[f"source_{column}"], "after": predictions[column]}
    return _draw(pairs, lambda rows: 1.0 - kaplan_meier_at(time[rows], event[rows], h),
                 f"risk by {fmt_num(h)}")


def _draw(pairs: Mapping[str, pd.Series], observed: Any, what: str) -> str:
    from permed.report._plots import _GREY, _new_figure, _to_data_uri

    fig = _new_figure()
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", color=_GREY, lw=1, label="perfect calibration")
    for label, values in pairs.items():
        p = values.to_numpy(dtype=float)
        bins = np.array_split(np.argsort(p, kind="stable"), min(10, len(p)))
        ax.plot([float(np.mean(p[b])) for b in bins], [observed(b) for b in bins],
                marker="o", ms=4, lw=1.5, label=label)
    ax.set(xlabel=f"Predicted {what}", ylabel=f"Observed {what}", xlim=(0, 1), ylim=(0, 1),
           title="Calibration before and after")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _to_data_uri(fig)
