"""The report's predictor table, shared in clear, generalizes ages and ZIP codes as Safe Harbor
asks (a privacy audit read 'age 30 to 103' and 'zip 1599 to 98567' there)."""

from __future__ import annotations

from pathlib import Path

from permed.report._html import RunFiles, data_section


def _rows(features: list[dict]) -> dict[str, list[str]]:
    run = RunFiles(Path("run"), {"task": "diagnose", "data": {}}, {"config": {}},
                   {"task": "diagnose", "features": features}, None)
    table = next(b for b in data_section(run).blocks if getattr(b, "header", None)
                 and b.header[0] == "Predictor")
    return {row[0]: row for row in table.rows}


def test_an_age_above_89_and_zip_codes_are_not_shown():
    rows = _rows([
        {"name": "age", "kind": "numeric", "min": 30.0, "max": 103.0, "missing_share": 0.0},
        {"name": "zip", "kind": "categorical", "categories": ["02139", "10001", "98567"],
         "missing_share": 0.0},
        {"name": "postal_code", "kind": "numeric", "min": 1599.0, "max": 98567.0,
         "missing_share": 0.0},
        {"name": "sbp", "kind": "numeric", "min": 94.0, "max": 200.0, "missing_share": 0.0}])
    assert rows["age"][2] == "30 to 90+"
    assert rows["zip"][2] == "3 ZIP areas (not listed)"
    assert rows["postal_code"][2] == "not listed (a ZIP code)"
    assert rows["sbp"][2] == "94 to 200"
    young = _rows([{"name": "age", "kind": "numeric", "min": 30.0, "max": 77.0,
                    "missing_share": 0.0}])
    assert young["age"][2] == "30 to 77"
