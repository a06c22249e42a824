"""Parsing helpers shared by commands."""

from __future__ import annotations

__all__ = ["split_list"]


def split_list(values: list[str] | None) -> list[str]:
    """``--drop a,b --drop c`` -> ``["a", "b", "c"]`` (order kept, duplicates removed)."""
    items = [part.strip() for value in values or [] for part in value.split(",")]
    return list(dict.fromkeys(item for item in items if item))
