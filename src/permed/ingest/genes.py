"""Gene-expression matrices and VCF files as one row per sample.

Expression files come in two orientations: genes x samples (microarray and RNA-seq exports: one
row per gene, one column per sample, often with descriptor columns and Affymetrix
present/absent "call" columns) and samples x genes (one row per patient, as permed trains on).
:func:`read_expression` reads either and returns samples x genes with ``gene_`` prefixed
columns, so a study selects them with ``--genes 'gene_*'``. :func:`read_vcf_gene_counts` turns
annotated variant calls into per-gene counts of non-reference alleles.

Examples
--------
>>> from permed.ingest.genes import read_expression  # doctest: +SKIP
>>> table = read_expression("data_set_ALL_AML_train.csv", labels="actual.csv",
...                         label_name="ALL_AML")  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from permed.exceptions import DataError
from permed.ingest._tables import read_table

__all__ = ["ORIENTATIONS", "read_expression", "read_vcf_gene_counts"]

ORIENTATIONS = ("auto", "genes-by-samples", "samples-by-genes")
# Descriptor columns of a genes x samples export: the gene's id is the most specific of them.
_ID_HINTS = ("accession", "probe", "gene_id", "geneid", "ensembl", "id", "symbol", "gene", "name")
_CALL = re.compile(r"^call(\.\d+)?$", re.IGNORECASE)  # Affymetrix P/A/M calls: not expression


def _is_call(column: str) -> bool:
    return bool(_CALL.match(str(column)))


def _orientation(frame: pd.DataFrame) -> str:
    """Genes x samples when text descriptor columns lead and genes outnumber the samples."""
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
               and not _is_call(c)]
    text = [c for c in frame.columns if c not in numeric and not _is_call(c)]
    if len(text) >= 1 and len(frame) > len(numeric):
        return "genes-by-samples"
    return "samples-by-genes"


def _gene_id_column(frame: pd.DataFrame, text: list[str]) -> str:
    for hint in _ID_HINTS:
        for column in text:
            if hint in str(column).lower().replace(" ", "_") and frame[column].is_unique:
                return column
    unique = [c for c in text if frame[c].is_unique]
    if not unique:
        raise DataError(
            f"no descriptor column holds a unique gene id (columns {text[:4]}): give each gene "
            "row a unique id, e.g. the probe or accession number")
    return unique[0]


def _transpose(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
               and not _is_call(c)]
    text = [c for c in frame.columns if c not in numeric and not _is_call(c)]
    genes = frame[_gene_id_column(frame, text)].astype(str)
    values = frame[numeric].T
    values.columns = [f"{prefix}{g}" for g in genes]
    values.index = [str(c) for c in numeric]
    values.index.name = "sample"
    return values.reset_index()


def _samples_first(frame: pd.DataFrame, prefix: str, sample_column: str | None) -> pd.DataFrame:
    sample_column = sample_column or str(frame.columns[0])
    if sample_column not in frame.columns:
        raise DataError(f"sample column '{sample_column}' is not in the file: its columns start "
                        f"{list(frame.columns[:5])}")
    rest = [c for c in frame.columns if c != sample_column]
    out = frame[rest].rename(columns={c: c if str(c).startswith(prefix) else f"{prefix}{c}"
                                      for c in rest})
    ids = pd.DataFrame({"sample": frame[sample_column].astype(str).to_numpy()}, index=out.index)
    return pd.concat([ids, out], axis=1)  # one concat: inserting into thousands of columns is slow


def _attach_labels(table: pd.DataFrame, labels: str | Path, label_name: str | None
                   ) -> pd.DataFrame:
    frame, _ = read_table(labels)
    if frame.shape[1] < 2:
        raise DataError(f"labels file '{labels}' needs two columns, sample id then label; it has "
                        f"{list(frame.columns)}")
    ids, values = frame.iloc[:, 0].astype(str), frame.iloc[:, 1]
    name = label_name or str(frame.columns[1])
    mapping = dict(zip(ids, values, strict=True))
    unknown = [s for s in table["sample"] if s not in mapping]
    if unknown:
        raise DataError(
            f"{len(unknown)} samples of the expression file have no label in '{labels}' "
            f"(e.g. {unknown[:3]}): the labels file's first column must hold the sample ids "
            f"{list(table['sample'][:3])}")
    label = pd.DataFrame({name: [mapping[s] for s in table["sample"]]}, index=table.index)
    return pd.concat([table[["sample"]], label, table.drop(columns="sample")], axis=1)


def read_expression(path: str | Path, orientation: str = "auto", labels: str | Path | None = None,
                    label_name: str | None = None, prefix: str = "gene_",
                    sample_column: str | None = None, keep_ids: str | None = None
                    ) -> pd.DataFrame:
    """Read an expression matrix in either orientation as samples x genes.

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.tsv`` or ``.parquet``.
    orientation : {"auto", "genes-by-samples", "samples-by-genes"}
        ``"auto"``: genes x samples when the file has text descriptor columns and more rows
        than numeric columns.
    labels : str or Path, optional
        A table of (sample id, label): the label is added as the second column.
    label_name : str, optional
        Name of the label column (default: the labels file's own header).
    prefix : str
        Put before every gene name (``gene_``), so ``--genes 'gene_*'`` selects them.
    sample_column : str, optional
        Samples x genes files: the sample id column (default: the first).
    keep_ids : str, optional
        Keep the sample ids in a column of this name (train with ``--id NAME``). Left out by
        default: sample numbers often follow the classes (Golub's training samples 1-27 are
        ALL, 28-38 AML), so an undeclared id column would leak the label.

    Returns
    -------
    pandas.DataFrame
        The sample ids (with ``keep_ids``), the label (when given), then one numeric column per
        gene; Affymetrix "call" columns are left out.

    Raises
    ------
    DataError
        When no gene id column is found or samples lack a label.
    """
    if orientation not in ORIENTATIONS:
        raise DataError(f"orientation '{orientation}' is not known; expected one of "
                        f"{', '.join(ORIENTATIONS)}")
    # an Affymetrix export repeats 'call' after every sample: the one repeat this reader allows
    frame, _ = read_table(path, repeatable=_is_call)
    frame = frame.loc[:, [not _is_call(c) for c in frame.columns]]
    chosen = _orientation(frame) if orientation == "auto" else orientation
    table = (_transpose(frame, prefix) if chosen == "genes-by-samples"
             else _samples_first(frame, prefix, sample_column))
    duplicated = table.columns[table.columns.duplicated()]
    if len(duplicated):
        raise DataError(f"gene names repeat in '{path}' (e.g. {list(duplicated[:3])}): make them "
                        "unique before ingest")
    if labels is not None:
        table = _attach_labels(table, labels, label_name)
    if keep_ids:
        return table.rename(columns={"sample": keep_ids})
    return table.drop(columns="sample")


# ---- VCF -----------------------------------------------------------------------------------


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _genes_of(info: str, csq_symbol: int | None) -> set[str]:
    """Gene symbols of one variant from INFO: GENEINFO (ClinVar), ANN (SnpEff), CSQ (VEP)."""
    fields = dict(part.split("=", 1) for part in info.split(";") if "=" in part)
    genes: set[str] = set()
    if "GENEINFO" in fields:
        genes |= {g.split(":")[0] for g in fields["GENEINFO"].split("|") if g}
    if "ANN" in fields:
        genes |= {a.split("|")[3] for a in fields["ANN"].split(",") if a.count("|") >= 3}
    if "CSQ" in fields and csq_symbol is not None:
        genes |= {c.split("|")[csq_symbol] for c in fields["CSQ"].split(",")
                  if c.count("|") >= csq_symbol}
    if "GENE" in fields:
        genes |= set(fields["GENE"].split(","))
    return {g for g in genes if g}


def _alt_count(genotype: str) -> int:
    alleles = re.split(r"[/|]", genotype.split(":", 1)[0])
    return sum(1 for a in alleles if a not in ("0", "."))


def read_vcf_gene_counts(path: str | Path, prefix: str = "gene_") -> pd.DataFrame:
    """Per sample and gene, the number of non-reference alleles called (a burden count).

    Parameters
    ----------
    path : str or Path
        A ``.vcf`` or ``.vcf.gz`` whose variants carry gene annotation in INFO: ``GENEINFO``
        (ClinVar), ``ANN`` (SnpEff), ``CSQ`` with a ``SYMBOL`` field (VEP) or ``GENE``.
    prefix : str
        Put before every gene name.

    Returns
    -------
    pandas.DataFrame
        ``sample`` then one integer column per gene (0 where a sample carries no variant).

    Raises
    ------
    DataError
        When the file has no ``#CHROM`` header with sample columns.
    """
    path = Path(path)
    counts: dict[str, dict[str, int]] = {}
    samples: list[str] = []
    csq_symbol: int | None = None
    with _open(path) as handle:
        for line in handle:
            if line.startswith("##INFO=<ID=CSQ"):
                described = line.split("Format: ", 1)[-1].split('"')[0].split("|")
                csq_symbol = described.index("SYMBOL") if "SYMBOL" in described else None
            elif line.startswith("#CHROM"):
                samples = line.rstrip("\n").split("\t")[9:]
                counts = {s: {} for s in samples}
            elif line.strip() and not line.startswith("#"):
                parts = line.rstrip("\n").split("\t")
                for gene in _genes_of(parts[7], csq_symbol):
                    for sample, call in zip(samples, parts[9:], strict=False):
                        count = _alt_count(call)
                        if count:
                            counts[sample][gene] = counts[sample].get(gene, 0) + count
    if not samples:
        raise DataError(f"'{path}' has no '#CHROM' header line with sample columns: a VCF with "
                        "genotypes (FORMAT and one column per sample) is needed")
    table = pd.DataFrame.from_dict(counts, orient="index").fillna(0)
    table = table.reindex(columns=sorted(table.columns)).astype(np.int64)
    table.columns = [f"{prefix}{g}" for g in table.columns]
    table.index.name = "sample"
    return table.reset_index()
