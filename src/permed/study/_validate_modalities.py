"""Checks of the gene-expression and clinical-note columns a study names.

Gene and note columns are features of their own kind (``"gene"``, ``"text"``): they skip the
tabular checks (a note is different for every patient; thousands of genes would flood the
report with constant-column errors) and get these instead.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

import pandas as pd

from permed.study._columns import non_numeric_values, text_among_numbers
from permed.study._study import Study

if TYPE_CHECKING:
    from permed.study._validate import ValidationReport

__all__ = ["check_modalities"]


def check_modalities(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    """Record the kind of each gene and note column; report what cannot be used.

    Parameters
    ----------
    frame : pandas.DataFrame
    study : Study
    report : ValidationReport
        Receives errors, warnings and ``kinds[column]`` = ``"gene"`` or ``"text"``.
    """
    columns = [str(c) for c in frame.columns]
    excluded = set(study.outcome_columns()) | {study.id}
    for pattern in study.genes:
        if not any(fnmatchcase(c, pattern) for c in columns):
            report.error(
                f"genes pattern '{pattern}' (from --genes) matches no column of the data: the "
                f"columns start {', '.join(repr(c) for c in columns[:5])}; use a glob such as "
                "'gene_*' or convert a genes x samples file with permed ingest genes")
    genes = [c for c in study.gene_columns(columns) if c not in excluded]
    if genes:
        _check_genes(frame, genes, report)
    for column in study.notes:
        if column not in frame.columns:
            continue  # reported by the role check
        _check_note(frame[column], column, report)


def _check_genes(frame: pd.DataFrame, genes: list[str], report: ValidationReport) -> None:
    values = frame[genes]
    numeric = set(values.select_dtypes("number").columns)
    for column in [c for c in genes if c not in numeric][:5]:
        bad = non_numeric_values(values[column])
        if len(bad):
            report.error(
                f"gene column '{column}' must hold numeric expression values but "
                f"{text_among_numbers(values[column], bad)}: correct the values or leave them "
                "empty", column)
    missing = float(values.isna().to_numpy().mean())
    if missing > 0.2:
        report.warn(
            f"{missing:.0%} of the {len(genes)} gene values are missing: they are imputed with "
            "each gene's median inside the folds; check the expression file")
    for column in genes:
        report.kinds[column] = "gene"


def _check_note(series: pd.Series, column: str, report: ValidationReport) -> None:
    text = series.dropna().astype(str).str.strip()
    if (text == "").all():
        report.error(
            f"note column '{column}' (from --note) has no text for any patient: choose the "
            "column that holds the notes", column)
        return
    empty = len(series) - int((text != "").sum())
    if empty:
        report.warn(
            f"note column '{column}' is empty for {empty} of {len(series)} patients: they are "
            "encoded as an empty note", column)
    report.kinds[column] = "text"
