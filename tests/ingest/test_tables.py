"""Reading tables: missing markers, formats, and clear errors."""

from __future__ import annotations

import pandas as pd
import pytest

from permed.exceptions import DataError
from permed.ingest import export_dataset, get_dataset, list_datasets, read_table


def test_missing_markers_are_read_as_missing(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c,d\n1,NA,?,x\n2,N/A,,y\n")
    frame, info = read_table(path)
    assert frame[["b", "c"]].isna().all().all()
    assert frame["a"].tolist() == [1, 2]
    assert info.rows == 2
    assert info.columns == 4
    assert info.fingerprint.startswith("sha256:")
    assert len(info.fingerprint) == 71


def test_tsv_and_parquet_read_the_same(tmp_path):
    frame = pd.DataFrame({"x": [1.0, None, 3.0], "y": ["a", "b", None]})
    frame.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    tsv, _ = read_table(tmp_path / "t.tsv")
    parquet, _ = read_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(tsv.astype(object), parquet.astype(object))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("nope.csv", None, "data file '.*nope.csv' does not exist: check the path"),
        ("t.xlsx", "a", r"has suffix '.xlsx'; expected one of .csv, .tsv, .parquet"),
        ("empty.csv", "", "is empty: it needs a header row and data"),
        ("header.csv", "a,b\n", "has no data rows: it holds only a header"),
    ],
)
def test_unreadable_files_get_clear_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_table(path)


def test_registry_has_the_required_datasets():
    names = {d.name for d in list_datasets()}
    assert {"breast_cancer", "gbsg2", "whas500", "aids", "flchain"} <= names
    assert get_dataset("gbsg2").roles["time"] == "time"


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(DataError, match="no bundled dataset named 'breast': did you mean"):
        get_dataset("breast")


def test_export_puts_the_diagnose_target_last(tmp_path):
    frame, _ = read_table(export_dataset("breast_cancer", tmp_path / "bc.csv"))
    assert frame.columns[-1] == "diagnosis"
    assert frame.shape == (569, 31)
    assert sorted(frame["diagnosis"].unique()) == ["benign", "malignant"]
