"""Reading tables: missing markers, formats, and clear errors."""

from __future__ import annotations

import re
import zipfile

import pandas as pd
import pytest

from permed.exceptions import DataError
from permed.ingest import export_dataset, get_dataset, list_datasets, read_table
from permed.testing import shared_data


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


HEART = "uci_heart_cleveland/processed.cleveland.tsv"


def test_semicolon_csv_with_decimal_commas_reads_like_the_original(tmp_path):
    # a European Excel export of the Cleveland table: ';' between fields, ',' for decimals
    original, _ = read_table(shared_data(HEART))
    path = tmp_path / "heart.csv"
    original.to_csv(path, sep=";", decimal=",", index=False)
    assert path.read_text().splitlines()[1].startswith("63;1;1;145;233;1;2;150;0;2,3;")
    frame, info = read_table(path)
    pd.testing.assert_frame_equal(frame, original)
    assert (info.delimiter, info.decimal) == (";", ",")


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_csv_delimiter_is_detected(tmp_path, delimiter):
    path = tmp_path / "t.csv"
    path.write_text(delimiter.join(["age", "sex", "note"]) + "\n"
                    + delimiter.join(["63", "1", '"a, b"']) + "\n"
                    + delimiter.join(["37.5", "NA", "c"]) + "\n")
    frame, info = read_table(path)
    assert frame.columns.tolist() == ["age", "sex", "note"]
    assert frame["age"].tolist() == [63.0, 37.5]
    assert frame["note"].tolist() == ["a, b", "c"]
    assert (info.delimiter, info.decimal) == (delimiter, ".")


@pytest.mark.parametrize(
    ("content", "columns"),
    [
        ("a,b;c\n1,2;3\n", ["a", "b;c"]),  # both split it in two: a comma, as before
        ("a;b|c\n1;2|3\n", ["a;b|c"]),  # ';' and '|' tie: a comma, as before
        ("a\n1\n2\n", ["a"]),
        ('id,drugs\n1,"x;y;z"\n2,w\n', ["id", "drugs"]),
    ],
)
def test_an_ambiguous_csv_is_read_with_commas(tmp_path, content, columns):
    path = tmp_path / "t.csv"
    path.write_text(content)
    frame, info = read_table(path)
    assert frame.columns.tolist() == columns
    assert info.delimiter == ","


def test_decimal_comma_is_not_assumed_beside_decimal_points(tmp_path):
    # '1,2' beside '1,2,5' is a list of codes, not a number: it shows no decimal mark
    path = tmp_path / "t.csv"
    path.write_text("code;value\n1,2;3.5\n4,5,6;6.5\n")
    frame, info = read_table(path)
    assert frame["code"].tolist() == ["1,2", "4,5,6"]
    assert frame["value"].tolist() == [3.5, 6.5]
    assert info.decimal == "."
    # a column of numbers only, written with decimal commas beside decimal points, is refused
    # (permed.ingest test_read_dialects.py)


def _xlsx(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")


def _xls(path):
    # the OLE2 signature, then a directory entry named "Workbook" in UTF-16
    path.write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504) + "Workbook".encode(
        "utf-16-le") + bytes(64))


@pytest.mark.parametrize(
    ("make", "name", "kind"),
    [
        (_xlsx, "heart.xlsx", ".xlsx"),
        (_xlsx, "heart.csv", ".xlsx"),  # renamed: it was "'utf-8' codec can't decode byte"
        (_xlsx, "heart.parquet", ".xlsx"),
        (_xls, "heart.xls", "legacy .xls"),
        (_xls, "heart.csv", "legacy .xls"),
    ],
)
def test_an_excel_workbook_is_named_with_the_way_to_a_csv(tmp_path, make, name, kind):
    path = tmp_path / name
    make(path)
    message = (f"data file '{path}' is an Excel workbook ({kind}), which permed does not read: "
               "open it in Excel and save the sheet with the data as CSV (File > Save As > "
               "'CSV UTF-8 (Comma delimited)'), or as Parquet")
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        read_table(path)


def test_a_zip_that_is_no_workbook_is_not_called_one(tmp_path):
    path = tmp_path / "t.csv"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<document/>")
    with pytest.raises(DataError, match="could not be read as CSV") as raised:
        read_table(path)
    assert "Excel" not in str(raised.value)


@pytest.mark.parametrize("name", [d.name for d in list_datasets()])
def test_every_bundled_dataset_validates_for_the_tasks_it_advertises(name):
    # `permed datasets show flchain` advertised risk on futime/death, and training refused the
    # three deaths on day 0
    from permed.study import validate

    dataset = get_dataset(name)
    frame = dataset.loader()
    for task in dataset.tasks:
        report = validate(frame, dataset.study(task))
        assert [f.message for f in report.errors] == [], task
