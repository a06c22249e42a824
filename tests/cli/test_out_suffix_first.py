"""An --out the table cannot be written as (x.xlsx) is refused before any input is read: it was
refused after the whole expression matrix, every FHIR bundle or MIMIC table had been parsed,
and permed predict wrote comma-separated text into a file named .xlsx."""

from __future__ import annotations

import pytest

from permed.testing import run_permed as permed

_TABLE = ".csv, .tsv, .parquet: name the table to write with one of them (Excel opens a .csv)"


@pytest.mark.parametrize(("args", "suffix", "expected"), [
    (["ingest", "genes", "absent.csv"], ".xlsx", _TABLE),
    (["ingest", "fhir", "absent_bundles"], ".xlsx", _TABLE),
    (["ingest", "mimic", "absent_mimic"], ".xlsx", _TABLE),
    (["ingest", "genes", "absent.csv"], "", _TABLE),
    (["predict", "absent_run", "absent.csv"], ".xlsx",
     ".csv or .parquet: name the predictions file with one of them (Excel opens a .csv)"),
    (["predict", "absent_run", "absent.csv"], ".tsv",
     ".csv or .parquet: name the predictions file with one of them (Excel opens a .csv)"),
])
def test_an_unwritable_out_is_refused_before_the_input_is_read(tmp_path, args, suffix,
                                                               expected):
    out = tmp_path / f"result{suffix}"
    result = permed(*args, "--out", out, cwd=tmp_path)
    assert result.returncode == 1
    found = f"ends in '{suffix}'" if suffix else "has no suffix"
    assert " ".join(result.stderr.split()) == f"error: --out '{out}' {found}; expected {expected}"
    assert not out.exists()
