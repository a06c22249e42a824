"""permed predict / evaluate / report: use a trained run."""

from __future__ import annotations

from pathlib import Path

import typer

from permed.cli._console import RichProgress, err, out
from permed.cli.train import summarize_run
from permed.workflow import evaluate_run, predict_run, write_table

__all__ = ["evaluate", "predict", "report"]


def predict(
    run_dir: Path = typer.Argument(..., help="A run directory written by permed train."),
    data: Path = typer.Argument(..., help="New patients: .csv, .tsv or .parquet."),
    out_file: Path | None = typer.Option(
        None, "--out", help="Where to write predictions (.csv or .parquet); default: standard "
        "output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No notes on standard error."),
) -> None:
    """Score new patients: one output row per input row.

    Writes the probability of each class (prob_<class>), the label at the run's decision
    threshold, and out_of_range when a value lies outside what the model saw in training.

    Example: permed predict runs/heart new_patients.csv --out preds.csv
    """
    with RichProgress(quiet or out_file is None).step("scoring"):
        predictions = predict_run(run_dir, data)
    write_table(predictions, out_file)
    flagged = int(predictions["out_of_range"].sum()) if "out_of_range" in predictions else 0
    if out_file is not None and not quiet:
        err.print(f"{len(predictions)} patients scored; {flagged} with values outside the "
                  "training range (see out_of_range_features)", highlight=False)
        out.print(str(out_file), highlight=False)


def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory written by permed train."),
    data: Path = typer.Argument(..., help="Another cohort with the target column."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for metrics.json and report.html."),
    bootstrap: int = typer.Option(1000, help="Bootstrap replicates for the 95% CIs."),
    seed: int = typer.Option(42, help="Bootstrap seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary."),
) -> None:
    """External validation: score another cohort once and report the figures with CIs.

    Example: permed evaluate runs/heart other_hospital.csv --out runs/heart-external
    """
    with RichProgress(quiet).step("external validation"):
        written = evaluate_run(run_dir, data, out_dir, n_boot=bootstrap, seed=seed)
    if quiet:
        out.print(str(written / "report.html"), highlight=False)
    else:
        summarize_run(written)


def report(
    run_dir: Path = typer.Argument(..., help="A run directory written by permed train."),
) -> None:
    """Write the run's report.html again from its files and print where it is.

    Example: permed report runs/heart
    """
    from permed.report import write_report

    out.print(str(write_report(run_dir)), highlight=False)
