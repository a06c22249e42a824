"""Readers that bring patient data into permed, and the bundled datasets."""

from permed.ingest._synth import synthetic_cohort
from permed.ingest._tables import (
    MISSING_MARKERS,
    SUPPORTED_SUFFIXES,
    ReadWarning,
    TableInfo,
    fingerprint,
    read_table,
    read_table_chunks,
    table_columns,
)
from permed.ingest.datasets import (
    Dataset,
    export_dataset,
    get_dataset,
    list_datasets,
    load_dataset,
)

__all__ = [
    "MISSING_MARKERS",
    "SUPPORTED_SUFFIXES",
    "Dataset",
    "ReadWarning",
    "TableInfo",
    "export_dataset",
    "fingerprint",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "read_table",
    "read_table_chunks",
    "synthetic_cohort",
    "table_columns",
]
