"""permed ingest: FHIR bundles, MIMIC-style EHR tables and expression matrices as tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from permed.cli._console import err, out
from permed.cli._options import check_table_out
from permed.study import Study

__all__ = ["app"]

app = typer.Typer(help="Turn FHIR bundles, MIMIC-III tables or expression matrices into one row "
                  "per patient.", no_args_is_help=True)

def _write(frame: pd.DataFrame, path: Path) -> None:
    check_table_out(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if path.suffix.lower() == ".tsv" else ",")


def _write_study(study: Study, table: Path) -> Path:
    path = table.with_suffix(".study.toml")
    path.write_text(study.to_toml(), encoding="utf-8")
    return path


@app.command("fhir")
def fhir(
    source: Path = typer.Argument(..., help="A FHIR R4 Bundle (.json/.ndjson) or a folder."),
    out_file: Path = typer.Option(..., "--out", help="Table to write: .parquet, .csv or .tsv."),
    as_of: str | None = typer.Option(
        None, help="Read the record as it stood on this ISO date, YYYY-MM-DD (the whole day), "
        "or date and time, YYYY-MM-DDThh:mm:ss (UTC unless Z or an offset is given): only "
        "Observations and Conditions dated on or before it feed the features (those after "
        "it and undated ones are left out and counted), a death after it is not counted, and "
        "ages are computed on it. Give the prediction date, so that nothing after it leaks "
        "into the table. Default: everything is read, ages at each patient's latest dated "
        "resource."),
) -> None:
    """FHIR bundles -> one row per patient; a study with units and \\[fhir] sources beside it.

    Example: permed ingest fhir bundles/ --out patients.parquet --as-of 2024-01-01
    """
    from permed.ingest.fhir import read_fhir

    check_table_out(out_file)
    table = read_fhir(source, as_of=as_of)
    _write(table.frame, out_file)
    study = table.study()
    written = _write_study(study, out_file)
    out.print(f"{len(table.frame)} patients x {table.frame.shape[1] - 1} features from "
              f"{table.files} file(s): {out_file}; column roles and units: {written}",
              highlight=False)
    if study.drop:
        out.print(f"{len(study.drop)} column(s) hold one value for every patient (nothing to "
                  f"learn from; validation refuses them as features), so {written} lists them "
                  f"under drop: {', '.join(study.drop)}", highlight=False, markup=False)
    _print_served(table.frame, study)
    for note in table.notes:  # the warnings are issued by read_fhir (ReadWarning)
        out.print(note, highlight=False, soft_wrap=True)


def _print_served(frame: pd.DataFrame, study: Study) -> None:
    """Which features permed serve reads from a live Bundle, and which it leaves to impute."""
    features = [c for c in frame.columns if c != "patient_id" and c not in study.drop]
    read = [c for c in features if c in study.fhir]
    latest = sum(1 for c in read if c.endswith("_latest"))
    named = [c for c in read if not c.endswith("_latest")]
    what = ", ".join([*named, f"the latest value of {latest} observation(s)"] if latest
                     else named) or "none"
    out.print(f"permed serve reads {len(read)} of the {len(features)} features from a live "
              f"Bundle ([fhir] in the study: {what})", highlight=False, markup=False)
    unread = [c for c in features if c not in study.fhir]
    if unread:
        out.print(f"the other {len(unread)} ({_kinds(unread)}) are not read from a Bundle: "
                  "when serving they are missing and the model imputes them; drop them to "
                  "train on what serving reads", highlight=False)


def _kinds(columns: list[str]) -> str:
    """``observation mean, min, max``, ``coded results``, ``active conditions``, ``latest values
    under other codes`` and the other names, in short."""
    stats = [s for s in ("mean", "min", "max", "count")
             if any(c.endswith(f"_{s}") and not c.startswith("condition_") for c in columns)]
    kinds = {"coded results": [c for c in columns if c.endswith("_result")],
             "active conditions": [c for c in columns if c.startswith("condition_")],
             # a non-LOINC code's latest value: [fhir] maps LOINC codes only
             "latest values under other codes": [c for c in columns if c.endswith("_latest")]}
    named = {c for found in kinds.values() for c in found}
    others = [c for c in columns if c not in named
              and not c.endswith(("_mean", "_min", "_max", "_count"))]
    parts = ([f"observation {', '.join(stats)}"] if stats else []) + [
        kind for kind, found in kinds.items() if found] + others
    return ", ".join(parts)


@app.command("mimic")
def mimic(
    folder: Path = typer.Argument(..., help="Folder of MIMIC-III CSV tables."),
    task: str = typer.Option("mortality", help="mortality: in-hospital death, at admission."),
    level: str = typer.Option("patient", help="patient (first admission) | admission."),
    out_file: Path = typer.Option(..., "--out", help="Table to write: .parquet, .csv or .tsv."),
    events: bool = typer.Option(
        False, "--events", help="Add an 'events' column: the time-ordered event tokens "
        "(admissions, earlier diagnoses and procedures, services, care units, prescriptions) "
        "known by the prediction time; train with --events events --models gru."),
    events_hours: float = typer.Option(
        24.0, help="With --events: the prediction time in hours after admission (0 = at "
        "admission); stays that ended before it are left out."),
) -> None:
    """MIMIC-III tables -> features known at admission + died_in_hospital.

    Example: permed ingest mimic mimic3_demo/ --task mortality --out icu.parquet
    """
    from permed.ingest.mimic import read_mimic

    check_table_out(out_file)
    frame = read_mimic(folder, task=task, level=level, events=events,
                       events_hours=events_hours)
    _write(frame, out_file)
    drop = ["subject_id"] if "subject_id" in frame.columns else []
    notes = ["admit_diagnosis"] if "admit_diagnosis" in frame.columns else []
    written = _write_study(Study(task="diagnose", id="hadm_id", target="died_in_hospital",
                                 drop=drop, notes=notes,
                                 events="events" if events else None), out_file)
    share = frame["died_in_hospital"].mean()
    when = f", predicted {events_hours:g} h after admission" if events and events_hours else ""
    out.print(f"{len(frame)} {level}s ({share:.0%} died in hospital{when}): {out_file}; train "
              f"with permed train {out_file} --study {written}", highlight=False)


@app.command("genes")
def genes(
    source: Path = typer.Argument(..., help="Expression matrix: .csv, .tsv or .parquet."),
    out_file: Path = typer.Option(..., "--out", help="Table to write: .parquet, .csv or .tsv."),
    labels: Path | None = typer.Option(None, help="Table of (sample id, label) to join."),
    label_name: str | None = typer.Option(
        None, help="Name of the label column (default: the labels file's header)."),
    orientation: str = typer.Option(
        "auto", help="auto | genes-by-samples | samples-by-genes."),
    prefix: str = typer.Option("gene_", help="Put before each gene name."),
    keep_ids: str | None = typer.Option(
        None, help="Keep sample ids in this column (then train with --id NAME)."),
    vcf: bool = typer.Option(False, help="SOURCE is a VCF: per-gene counts of variant "
                             "alleles."),
) -> None:
    """Expression matrix (either orientation) or VCF -> samples x genes.

    Example: permed ingest genes data_set_ALL_AML_train.csv --labels actual.csv
    --label-name ALL_AML --out golub.csv
    """
    from permed.ingest.genes import read_expression, read_vcf_gene_counts

    check_table_out(out_file)
    if vcf:
        frame = read_vcf_gene_counts(source, prefix=prefix)
        if not keep_ids:
            frame = frame.drop(columns="sample")
    else:
        frame = read_expression(source, orientation=orientation, labels=labels,
                                label_name=label_name, prefix=prefix, keep_ids=keep_ids)
    _write(frame, out_file)
    if not labels and not keep_ids:
        err.print("warning: no --labels and no --keep-ids: the table holds neither a sample id "
                  "nor a label, and its rows follow the source's sample order (Golub's training "
                  "file lists samples 1-27, 34-38, 28-33): join labels with --labels, or keep "
                  "the ids with --keep-ids sample to join them yourself, never by row order",
                  style="yellow", highlight=False, soft_wrap=True)
    n_genes = sum(str(c).startswith(prefix) for c in frame.columns)
    out.print(f"{len(frame)} samples x {n_genes} genes: {out_file}; train with "
              f"--genes '{prefix}*'", highlight=False)
