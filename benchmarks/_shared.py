"""Helpers shared by the benchmark scripts: shared data paths, tables, JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def cleveland() -> pd.DataFrame | None:
    """UCI Cleveland with the binary target ``disease`` = diagnosis > 0 (None if absent)."""
    path = SHARED_DATA / "uci_heart_cleveland" / "processed.cleveland.tsv"
    if not path.exists():
        return None
    frame = pd.read_csv(path, sep="\t", na_values=["?"])
    frame["disease"] = (frame.pop("diagnosis") > 0).astype(int)
    return frame


def print_table(rows: list[dict], columns: list[str]) -> None:
    """A plain fixed-width table on standard output."""
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def write_results(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
