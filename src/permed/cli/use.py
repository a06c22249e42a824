"""permed predict / evaluate / report: use a trained run."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from permed.cli._console import RichProgress, err, metric_cell, out, table
from permed.cli._options import split_list
from permed.cli.privacy import key_file_option, keyed
from permed.evaluate import cautions
from permed.exceptions import PermedError, SchemaMismatchError
from permed.privacy import audited, run_log
from permed.utils.jsonio import read_json
from permed.workflow import evaluate_run, predict_run, write_table
from permed.workflow._batch import predict_streamed, should_stream

__all__ = ["evaluate", "predict", "report"]


def _missing_option() -> list[str] | None:
    return typer.Option(
        None, "--missing", help="This table's own missing-value markers, read as missing beside "
        "the development study's, repeated or comma-separated: --missing n/a,-.")


@contextmanager
def _missing_hint() -> Iterator[None]:
    """A numeric column holding a common spelling of a missing value (``n/a``, ``-``): the
    error names ``--missing``, which reads this table's own markers as missing."""
    try:
        yield
    except SchemaMismatchError as exc:
        if not exc.markers:
            raise
        spelled = " and ".join(f"'{m}'" for m in exc.markers)
        hint = (f"to read {spelled} as missing (imputed), add --missing "
                f"{shlex.quote(','.join(exc.markers))}")
        joint = "; " if len(exc.problems) == 1 else "\n"
        raise SchemaMismatchError(f"{exc}{joint}{hint}", [*exc.problems, hint],
                                  exc.markers) from None


def predict(
    run_dir: Path = typer.Argument(..., help="A run directory written by permed train."),
    data: Path = typer.Argument(..., help="New patients: .csv, .tsv or .parquet."),
    out_file: Path | None = typer.Option(
        None, "--out", help="Where to write predictions (.csv or .parquet); default: standard "
        "output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No notes on standard error."),
    key_file: Path | None = key_file_option("an encrypted run or input"),
    missing: list[str] | None = _missing_option(),
    explain: bool = typer.Option(
        False, "--explain", help="Add each patient's top 3 factors (SHAP) in words: columns "
        "explanation, top_factor_1..3 and explained_output."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Stream the input this many rows at a time and write "
        "--out (.parquet) incrementally; automatic for inputs of 256 MiB or more."),
    cluster: str | None = typer.Option(
        None, "--cluster", help="Score partitions on a Dask scheduler (tcp://HOST:8786); "
        "default: PERMED_DASK_SCHEDULER, else in this process."),
    on_bad_file: str | None = typer.Option(
        None, help="Image models: fail | skip: stop at an unreadable image, or score the other "
        "rows and give its row the reason in image_error (default: the run's training setting)."),
) -> None:
    """Score new patients: one output row per input row.

    Writes the probability of each class (prob_<class>), the label at the run's decision
    threshold, and out_of_range when a value lies outside what the model saw in training.
    With --explain, also the factors that moved each patient's prediction most.

    Example: permed predict runs/heart new_patients.csv --out preds.csv --explain
    """
    if out_file is not None and out_file.suffix.lower() not in ("", ".csv", ".parquet"):
        raise PermedError(f"--out '{out_file}' ends in '{out_file.suffix}'; expected .csv or "
                          ".parquet: name the predictions file with one of them (Excel opens "
                          "a .csv)")
    shifts: list[str] = []  # columns recorded unlike development: told on standard error
    # large inputs: permed.workflow._batch (tables; an image model reads its files here)
    if on_bad_file is None and should_stream(data, out_file, batch_size, explain):
        with _missing_hint(), keyed(key_file), \
                audited(run_log(run_dir), "predict", data=data) as audit:
            rows = predict_streamed(run_dir, data, out_file, batch_size, cluster,
                                    warn=shifts.append, missing=split_list(missing))
            audit.add(rows=rows, output="file")
            audit.output = out_file
        if not quiet:
            for warning in shifts:
                err.print(f"warning: {warning}", style="yellow", highlight=False)
            out.print(str(out_file), highlight=False)
        return
    with _missing_hint(), keyed(key_file), \
            audited(run_log(run_dir), "predict", data=data) as audit:
        with RichProgress(quiet or out_file is None).step("scoring"):
            predictions = predict_run(run_dir, data, explain=explain, warn=shifts.append,
                                      missing=split_list(missing), on_bad_file=on_bad_file)
        write_table(predictions, out_file)
        audit.add(rows=len(predictions), output="file" if out_file else "stdout")
        audit.output = out_file
    for warning in [] if quiet else shifts:
        err.print(f"warning: {warning}", style="yellow", highlight=False)
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
    key_file: Path | None = key_file_option("an encrypted run or cohort"),
    missing: list[str] | None = _missing_option(),
) -> None:
    """External validation: score another cohort once and report the figures with CIs.

    Example: permed evaluate runs/heart other_hospital.csv --out runs/heart-external
    """
    with _missing_hint(), keyed(key_file), \
            audited(run_log(run_dir), "evaluate", data=data) as audit:
        with RichProgress(quiet).step("external validation"):
            written = evaluate_run(run_dir, data, out_dir, n_boot=bootstrap, seed=seed,
                                   missing=split_list(missing))
        audit.output = written / "predictions.csv"
    if quiet:
        out.print(str(written / "report.html"), highlight=False)
    else:
        _summarize_external(written)


def _summarize_external(out_dir: Path) -> None:
    """Print the evaluation's warnings, which run was validated and the external cohort's
    figures (the development run's cross-validation and test figures are its own report's,
    not this evaluation's)."""
    metrics = read_json(out_dir / "metrics.json")
    # as the report lists them: the evaluation's warnings, then test figures that say little
    # (an evaluation written before it recorded them lacks these)
    recorded = [str(w) for w in read_json(out_dir / "manifest.json").get("warnings") or []]
    for warning in dict.fromkeys(recorded + cautions(metrics)):
        err.print(f"warning: {warning}", style="yellow", highlight=False)
    model = metrics.get("selected_model")
    err.print(f"Development run: {metrics['external']['run']} ({model}, applied unchanged)",
              highlight=False)
    cohort = metrics.get("data", {})
    figures = table(f"External cohort {cohort.get('source')}, {cohort.get('test_rows')} "
                    f"patients, {model} (95% CI)", ["metric", "value"])
    for name, entry in metrics.get("test", {}).items():
        figures.add_row(name, metric_cell(entry))
    err.print(figures)
    out.print(f"report: {out_dir / 'report.html'}", highlight=False)


def report(
    run_dir: Path = typer.Argument(..., help="A run directory written by permed train."),
    key_file: Path | None = key_file_option("an encrypted run"),
    report_format: str = typer.Option(
        "html", "--format", help="html: report.html; md: report.md, the model card and "
        "TRIPOD+AI items as Markdown for review boards."),
) -> None:
    """Write the run's report (report.html, or report.md) again from its files; print where.

    Example: permed report runs/heart --format md
    """
    from permed.report import write_markdown, write_report

    writers = {"html": write_report, "md": write_markdown}
    if report_format not in writers:
        raise PermedError(f"--format must be html or md, got '{report_format}'")
    with keyed(key_file), audited(run_log(run_dir), "report") as audit:
        audit.output = writers[report_format](run_dir)
    out.print(str(audit.output), highlight=False)
