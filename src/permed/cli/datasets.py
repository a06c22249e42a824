"""permed datasets list | show | export."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from permed.cli._console import out, table
from permed.exceptions import PermedError
from permed.ingest import export_dataset, get_dataset, list_datasets, synthetic_cohort
from permed.workflow import write_table

__all__ = ["app"]

app = typer.Typer(help="Bundled real datasets (they ship inside scikit-learn / scikit-survival).",
                  no_args_is_help=True)


@app.command("list")
def list_command() -> None:
    """List the bundled datasets and the tasks their roles support."""
    listing = table("Bundled datasets", ["name", "tasks", "description"])
    for dataset in list_datasets():
        listing.add_row(dataset.name, ", ".join(dataset.tasks), dataset.title)
    out.print(listing)


@app.command("show")
def show(name: str = typer.Argument(..., help="Dataset name, e.g. breast_cancer.")) -> None:
    """Describe one dataset: source, roles, columns."""
    dataset = get_dataset(name)
    frame = dataset.loader()
    out.print(Text.assemble((dataset.name, "bold"), f": {dataset.title}"))
    out.print(f"source: {dataset.source}", highlight=False)
    out.print(f"rows: {len(frame)}, columns: {frame.shape[1]}")
    out.print("roles: " + ", ".join(f"{k}={v}" for k, v in dataset.roles.items()),
              highlight=False)
    out.print("columns: " + ", ".join(frame.columns), highlight=False)


@app.command("export")
def export(
    name: str = typer.Argument(..., help="Dataset name, e.g. breast_cancer."),
    file: Path = typer.Argument(..., help="Output .csv or .parquet."),
) -> None:
    """Write a dataset to a file (the diagnose target, if any, is the last column).

    Example: permed datasets export breast_cancer bc.csv
    """
    out.print(str(export_dataset(name, file)), highlight=False)


@app.command("synth")
def synth(
    rows: int = typer.Option(..., help="Number of patients, e.g. --rows 1000000."),
    out_file: Path = typer.Option(..., "--out", help="Output .csv or .parquet."),
    seed: int = typer.Option(0, help="Random seed."),
    truth: bool = typer.Option(False, help="Add the true probabilities, risk scores and "
                               "treatment effects (never use them as features)."),
) -> None:
    """Write a synthetic cohort with known diagnosis, survival and treatment-effect mechanisms.

    Example: permed datasets synth --rows 100000 --out synth.parquet
    """
    if rows < 1:
        raise PermedError(f"--rows must be at least 1, got {rows}")
    if out_file.suffix.lower() not in (".csv", ".parquet"):
        raise PermedError(f"--out '{out_file}' must end in .csv or .parquet")
    write_table(synthetic_cohort(rows, seed=seed, truth=truth), out_file)
    out.print(str(out_file), highlight=False)


@app.command("multimodal")
def multimodal(
    rows: int = typer.Option(2000, help="Number of patients, at most the images in the .npz "
                             "(3,166 in the shared one)."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder: cohort.parquet, images/, "
                                 "multimodal.toml."),
    seed: int = typer.Option(0, help="Random seed."),
    npz: Path | None = typer.Option(None, help="PneumoniaMNIST .npz (default: "
                                    "../shared/data/medmnist/pneumoniamnist.npz)."),
) -> None:
    """Write a SEMI-SYNTHETIC table + note + image cohort for --models fusion: real chest X-rays
    and labels (PneumoniaMNIST), synthetic table features and notes, some notes and images
    missing.

    Example: permed datasets multimodal --rows 2000 --out mm && permed train mm/cohort.parquet
    --study mm/multimodal.toml --models fusion --out runs/mm
    """
    from permed.ingest.multimodal import multimodal_cohort

    out.print(str(multimodal_cohort(rows, out_dir, seed=seed, npz=npz)), highlight=False)
