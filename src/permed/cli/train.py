"""permed train: learn and validate a model on one cohort."""

from __future__ import annotations

from pathlib import Path

import typer

from permed.cli._console import RichProgress, err, metric_cell, out, table
from permed.cli._options import split_list
from permed.cli.privacy import key_file_option, keyed
from permed.exceptions import PermedError, StudyError
from permed.privacy import audited, home_log
from permed.study import Study
from permed.utils.jsonio import read_json
from permed.workflow import TrainConfig, train_run

__all__ = ["summarize_run", "train"]

_EXAMPLE = ("permed train heart.csv --task diagnose --target disease --sensitive sex "
            "--out runs/heart")


def train(
    data: Path = typer.Argument(..., help="Patient table: .csv, .tsv or .parquet (or, for "
                                "--images, a folder holding one table or class subfolders)."),
    study_file: Path | None = typer.Option(
        None, "--study", help="Study TOML with column roles (permed init writes one)."),
    task: str | None = typer.Option(
        None, help="diagnose | risk | treat (default: the study's task, or diagnose when "
        "--target is given)."),
    target: str | None = typer.Option(None, help="Diagnosis column, e.g. --target disease."),
    time: str | None = typer.Option(None, help="Risk: follow-up time column, e.g. --time days."),
    event: str | None = typer.Option(None, help="Risk: event indicator column (1 = event)."),
    event_value: str | None = typer.Option(
        None, help="Risk: the event column's value meaning 'event happened', e.g. dead."),
    horizons: str | None = typer.Option(
        None, help="Risk: comma-separated times for absolute risk, e.g. 365,1095,1825."),
    treatment: str | None = typer.Option(None, help="Treat: treatment arm column, e.g. arms."),
    outcome: str | None = typer.Option(None, help="Treat: outcome column, e.g. cd420."),
    higher_is_better: bool | None = typer.Option(
        None, "--higher-is-better/--lower-is-better", help="Treat: direction of a good outcome "
        "(default: higher; a binary outcome left at the default is warned about). "
        "A binary outcome is the probability of its last level in sorted order (of alive/dead: "
        "dead), so give --lower-is-better when that level is the one to avoid."),
    propensity: str | None = typer.Option(
        None, help="Treat: column with each patient's known probability of their arm."),
    randomized: bool = typer.Option(
        False, help="Treat: assignment was randomized (propensity = arm shares)."),
    trim: float = typer.Option(
        0.0, help="Treat: leave out patients with a propensity below this, e.g. 0.02."),
    true_effect: str | None = typer.Option(
        None, help="Treat: true individual effect column (simulated data), for PEHE."),
    id_column: str | None = typer.Option(None, "--id", help="Patient id column (never a "
                                         "feature; checked for duplicates)."),
    sensitive: list[str] | None = typer.Option(
        None, help="Column(s) audited for fairness, e.g. --sensitive sex; not used as features "
        "unless --use-sensitive."),
    use_sensitive: bool = typer.Option(False, help="Also use the sensitive columns as features."),
    drop: list[str] | None = typer.Option(
        None, help="Columns to leave out, repeated or comma-separated: --drop a,b."),
    genes: list[str] | None = typer.Option(
        None, help="Gene-expression columns, glob patterns allowed: --genes 'gene_*'."),
    note: list[str] | None = typer.Option(
        None, help="Free-text note column(s), e.g. --note text (scrubbed, then encoded)."),
    text_encoder: str | None = typer.Option(
        None, help="Notes: tfidf (default) | minilm | auto | a sentence-transformers model "
        "folder."),
    images: str | None = typer.Option(
        None, help="Image-path column (DICOM, NIfTI, PNG/JPEG, .npz; relative to the table): "
        "train an image model, e.g. --images image_path --models cnn."),
    events: str | None = typer.Option(
        None, "--events", help="Column of time-ordered EHR event tokens (permed ingest mimic "
        "--events): read by --models gru, never a tabular feature."),
    on_bad_file: str | None = typer.Option(
        None, help="Images: fail | skip: stop at an unreadable image (default) or leave it out."),
    models: str | None = typer.Option(
        None, help="Comma-separated models to compare, e.g. --models logistic,lightgbm "
        "(default: logistic, lightgbm, random_forest, mlp)."),
    cv: int = typer.Option(5, help="Cross-validation folds on the development split."),
    test_size: float = typer.Option(0.2, help="Share of patients held out for the final test."),
    seed: int = typer.Option(42, help="Random seed (splits, models, bootstrap)."),
    budget: float = typer.Option(0.0, help="Seconds of Optuna tuning inside the folds "
                                 "(0 = none), e.g. --budget 300."),
    calibration: str = typer.Option("auto", help="auto | none | sigmoid | isotonic."),
    target_sensitivity: float | None = typer.Option(
        None, help="Choose the threshold reaching this sensitivity, e.g. 0.9 (default: "
        "Youden's J)."),
    positive_class: str | None = typer.Option(
        None, help="Class counted as positive (default: the last in sorted order)."),
    bootstrap: int = typer.Option(1000, help="Bootstrap replicates for the 95% CIs."),
    clip: bool = typer.Option(False, help="Clip numeric features to their 0.5-99.5% quantiles."),
    device: str = typer.Option(
        "auto", help="Torch device for deep models: auto (a GPU for the networks that gain from "
                     "one) | cpu | cuda."),
    cluster: str | None = typer.Option(
        None, help="Dask scheduler, e.g. tcp://scheduler:8786 (or PERMED_DASK_SCHEDULER)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Run directory to write "
                                        "(default: runs/<data name>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summary."),
    encrypt: bool = typer.Option(False, help="Encrypt predictions.csv and the model bundle at "
                                 "rest (AES-256-GCM) with the data key."),
    key_file: Path | None = key_file_option("--encrypt and encrypted input"),
) -> None:
    """Train and validate a model; write a run directory with metrics and a report.

    Example:
    permed train heart.csv --task diagnose --target disease --sensitive sex --out runs/heart
    """
    base = Study.from_toml(study_file) if study_file else Study()
    study = base.with_overrides(
        task=task or base.task or _infer_task(target, time, treatment), target=target,
        time=time, event=event, treatment=treatment, outcome=outcome, propensity=propensity,
        true_effect=true_effect, id=id_column, sensitive=split_list(sensitive),
        drop=split_list(drop), use_sensitive=use_sensitive or None, genes=split_list(genes),
        notes=split_list(note), text_encoder=text_encoder, images=images,
        on_bad_file=on_bad_file, events=events)
    if study.task is None:
        raise StudyError(
            "say what to learn: --task diagnose --target COL, --task risk --time COL --event "
            f"COL, or --task treat --treatment COL --outcome COL (example: {_EXAMPLE})")
    config = TrainConfig(
        models=split_list([models] if models else None), cv=cv, test_size=test_size, seed=seed,
        budget=budget, calibration=calibration, target_sensitivity=target_sensitivity,
        positive_class=positive_class, n_boot=bootstrap, clip=clip, device=device,
        cluster=cluster, horizons=_floats(horizons, "--horizons"), event_value=event_value,
        higher_is_better=higher_is_better is not False,
        direction_given=higher_is_better is not None, randomized=randomized, trim=trim,
        encrypt=encrypt)
    out_dir = out_dir or Path("runs") / data.stem
    progress = RichProgress(quiet)
    earlier = _trained_on(out_dir)
    with keyed(key_file), audited(home_log(), "train", data=data, failures_only=True):
        run_dir = train_run(data, study, config, out_dir, progress)
    if earlier:
        progress.note(f"warning: replaced the run trained {earlier} in '{out_dir}'; its "
                      "audit.log continues in the new run")
    if not quiet:
        summarize_run(run_dir)
    else:
        out.print(str(run_dir / "report.html"), highlight=False)


def _infer_task(target: str | None, time: str | None, treatment: str | None) -> str | None:
    given = [t for t, flag in (("diagnose", target), ("risk", time), ("treat", treatment)) if flag]
    return given[0] if len(given) == 1 else None


def _floats(text: str | None, flag: str) -> list[float]:
    try:
        return [float(v) for v in split_list([text] if text else None)]
    except ValueError:
        raise PermedError(f"{flag} takes comma-separated numbers, e.g. {flag} 365,1095; got "
                          f"'{text}'") from None


def _trained_on(out_dir: Path) -> str | None:
    """When the run already in ``out_dir`` was trained (``manifest.json``'s ``created``)."""
    try:
        return str(read_json(out_dir / "manifest.json")["created"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def summarize_run(run_dir: Path) -> None:
    """Print the CV comparison, the test figures and where the report is."""
    metrics = read_json(run_dir / "metrics.json")
    cv = metrics.get("cv", {})
    shown = ("auroc", "auprc", "brier", "ece", "c_index", "ibs", "policy_value")
    names = [n for n in next(iter(cv.values()), {}) if n in shown]
    comparison = table(f"Cross-validation ({metrics['task']})", ["model", *names])
    for model, figures in cv.items():
        mark = " *" if model == metrics.get("selected_model") else ""
        comparison.add_row(model + mark, *(metric_cell(figures.get(n)) for n in names))
    if cv:  # an image model trains once: no cross-validation table
        err.print(comparison)
    held_out = table(f"Held-out test, {metrics['selected_model']} (95% CI)", ["metric", "value"])
    for name, entry in metrics.get("test", {}).items():
        if isinstance(entry, dict) and "value" not in entry:  # a figure per pair of arms
            for pair, figure in entry.items():
                held_out.add_row(f"{name} {pair}", metric_cell(figure))
        else:
            held_out.add_row(name, metric_cell(entry))
    err.print(held_out)
    out.print(f"report: {run_dir / 'report.html'}", highlight=False)
