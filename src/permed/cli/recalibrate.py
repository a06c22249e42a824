"""permed recalibrate: update a trained run's model for a new site."""

from __future__ import annotations

from pathlib import Path

import typer

from permed.cli._console import RichProgress, err, metric_cell, out, table
from permed.cli._options import split_list
from permed.cli.privacy import key_file_option, keyed
from permed.privacy import audited, home_log
from permed.utils.jsonio import read_json

__all__ = ["recalibrate"]


def recalibrate(
    run_dir: Path = typer.Argument(..., help="A run directory written by permed train."),
    data: Path = typer.Argument(..., help="The local cohort, with the outcome column(s)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the new, recalibrated run."),
    method: str = typer.Option(
        "slope", help="slope: fit intercept and slope (logistic recalibration; risk: Cox "
        "slope and local baseline hazard) | intercept: the intercept (baseline hazard) only."),
    bootstrap: int = typer.Option(1000, help="Bootstrap replicates for the 95% CIs."),
    seed: int = typer.Option(42, help="Seed of the cross-fitting folds and the bootstrap."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary."),
    key_file: Path | None = key_file_option("an encrypted run or cohort"),
    missing: list[str] | None = typer.Option(
        None, "--missing", help="This table's own missing-value markers, read as missing beside "
        "the development study's, repeated or comma-separated: --missing n/a,-."),
) -> None:
    """Recalibrate a run on a local cohort and write a new run; the source run is unchanged.

    Example: permed recalibrate runs/heart local.csv --out runs/heart-local
    """
    from permed.workflow._recalibrate import recalibrate_run

    progress = RichProgress(quiet)
    earlier = _created(out_dir)
    with keyed(key_file), audited(home_log(), "recalibrate", data=data, failures_only=True), \
            progress.step("recalibration"):
        written = recalibrate_run(run_dir, data, out_dir, method=method, n_boot=bootstrap,
                                  seed=seed, missing=split_list(missing), progress=progress)
    if earlier:
        progress.note(f"warning: replaced the recalibration written {earlier} in '{out_dir}'")
    if quiet:
        out.print(str(written / "report.html"), highlight=False)
    else:
        _summarize(written)


def _created(out_dir: Path) -> str | None:
    try:
        return str(read_json(out_dir / "manifest.json")["created"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _summarize(run_dir: Path) -> None:
    """The fitted update and the calibration before and after (cross-fitted)."""
    entry = read_json(run_dir / "metrics.json")["recalibration"]
    fit = table(f"Recalibration ({entry['method']}) of {entry['source_run']['path']} on "
                f"{entry['cohort']['patients']} patients (95% CI)", ["", "value"])
    fit.add_row("intercept", metric_cell(entry["intercept"]))
    fit.add_row("slope", metric_cell(entry["slope"]))
    if entry.get("slope_check"):
        fit.add_row("slope estimated (not applied)", metric_cell(entry["slope_check"]))
    fit.add_row("failed bootstrap replicates", str(entry.get("failed_replicates", 0)))
    if "reference_horizon" in entry:
        fit.add_row("reference horizon", f"{entry['reference_horizon']:g}")
    horizons = entry.get("horizons") or {}
    if horizons.get("dropped"):
        fit.add_row("horizons dropped", f"{', '.join(horizons['dropped'])} (local follow-up "
                    f"{horizons['local_max_follow_up']:g}: not checkable)")
    err.print(fit)
    before, after = entry["calibration"]["before"], entry["calibration"]["after"]
    figures = table("Calibration on the local cohort: before, after (cross-fitted)",
                    ["measure", "before", "after"])
    for name in ("calibration_intercept", "calibration_slope", "brier", "c_index", "ibs"):
        if name in before or name in after:
            figures.add_row(name, metric_cell(before.get(name)), metric_cell(after.get(name)))
    for key, h in after.get("horizons", {}).items():
        figures.add_row(f"observed/expected at {key}",
                        metric_cell(before["horizons"][key].get("observed_expected")),
                        metric_cell(h.get("observed_expected")))
    err.print(figures)
    out.print(f"report: {run_dir / 'report.html'}", highlight=False)
