"""Parsing helpers shared by commands."""

from __future__ import annotations

from pathlib import Path

from permed.exceptions import PermedError
from permed.ingest import SUPPORTED_SUFFIXES

__all__ = ["check_table_out", "split_list"]


def split_list(values: list[str] | None) -> list[str]:
    """``--drop a,b --drop c`` -> ``["a", "b", "c"]`` (order kept, duplicates removed)."""
    items = [part.strip() for value in values or [] for part in value.split(",")]
    return list(dict.fromkeys(item for item in items if item))


def check_table_out(path: Path) -> None:
    """Refuse an --out table permed cannot write, before any input is read."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        found = f"ends in '{path.suffix}'" if path.suffix else "has no suffix"
        raise PermedError(f"--out '{path}' {found}; expected {', '.join(SUPPORTED_SUFFIXES)}: "
                          "name the table to write with one of them (Excel opens a .csv)")
