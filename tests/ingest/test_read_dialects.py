"""Messy hospital extracts: decimal marks past the first rows, thousands separators, streamed
reading, duplicate names, Windows-1252 files, empty rows and footers, ids kept as written."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from permed.exceptions import DataError
from permed.ingest import ReadWarning, read_table, read_table_chunks, table_columns
from permed.ingest import _csv as dialects

FIX_MARKS = ("re-export the file so that every column uses the same decimal mark (Excel: File > "
             "Options > Advanced, 'Use system separators'), or save it as 'CSV UTF-8' with "
             "decimal points")


def _write(path, lines, encoding="utf-8"):
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _read(path, **kwargs):
    """read_table, with its warnings as a list of messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame, info = read_table(path, **kwargs)
    return frame, info, [str(w.message) for w in caught if w.category is ReadWarning]


def _raises(message):
    return pytest.raises(DataError, match=f"^{re.escape(message)}$")


# --- 1. the decimal mark, from the whole sample ---------------------------------------------

@pytest.mark.parametrize("blank", ["\u00a0", "\t", " \u00a0 "])
def test_a_cell_of_whitespace_alone_is_missing_in_numbers_and_text(tmp_path, blank):
    # Excel pads with non-breaking spaces; skipinitialspace strips plain spaces only
    path = tmp_path / "t.csv"
    path.write_text(f"lab,ward,y\n1,{blank},0\n{blank},b,1\n3,c,0\n", encoding="utf-8")
    frame, _ = read_table(path)
    assert pd.api.types.is_numeric_dtype(frame["lab"])
    assert frame["lab"].isna().tolist() == [False, True, False]
    assert frame["ward"].isna().tolist() == [True, False, False]
    for chunk in read_table_chunks(path, rows=2):
        assert not chunk["lab"].astype(str).str.strip().eq("").any()


def test_decimal_commas_after_the_first_hundred_rows_are_read(tmp_path):
    # sorted by ST depression: 99 rows of '0', then decimal commas (it was read as text)
    rows = ["0"] * 99 + ["2,3", "1,5", "0,8"]
    path = _write(tmp_path / "t.csv", ["age;st;sex"] + [f"{50 + i % 30};{v};M"
                                                         for i, v in enumerate(rows)])
    frame, info, notes = _read(path)
    assert (info.delimiter, info.decimal) == (";", ",")
    assert frame["st"].dtype == np.float64
    assert frame["st"].tolist()[-3:] == [2.3, 1.5, 0.8]
    assert notes == []


def test_row_order_does_not_change_how_a_file_is_read(tmp_path):
    rows = [f"{60 + i % 20};{'0' if i < 150 else f'{i % 7},{i % 10}'}" for i in range(200)]
    forward = _write(tmp_path / "f.csv", ["age;st", *rows])
    backward = _write(tmp_path / "b.csv", ["age;st", *rows[::-1]])
    a, _, _ = _read(forward)
    b, _, _ = _read(backward)
    pd.testing.assert_frame_equal(a, b.iloc[::-1].reset_index(drop=True))


def test_a_thousands_dot_beside_decimal_commas_is_a_thousands_separator(tmp_path):
    # European platelets: '386.000' is 386000/uL; it was read as 386.0, 1000x too small
    path = _write(tmp_path / "t.csv", ["st;plt;chol", "2,3;386.000;2.330,5", "1,5;306.000;229",
                                       "0;1.021.000;1.012,0"])
    frame, info, notes = _read(path)
    assert (info.delimiter, info.decimal) == (";", ",")
    assert frame["plt"].tolist() == [386000, 306000, 1021000]
    assert frame["chol"].tolist() == [2330.5, 229.0, 1012.0]
    assert frame["st"].tolist() == [2.3, 1.5, 0.0]
    assert notes == list(info.notes) == [
        f"column 'plt' of data file '{path}' writes thousands with '.': its values were read "
        "as numbers ('1.234' as 1234)",
        f"column 'chol' of data file '{path}' writes thousands with '.': its values were read "
        "as numbers ('1.234,5' as 1234.5)"]
    # the example is made up: a patient's value is not quoted into the manifest and report
    assert not any("386" in note or "2.330" in note for note in notes)


@pytest.mark.parametrize(("lines", "column", "expected"), [
    # a comma-separated file: quoted thousands ("2,178" days) beside decimal points
    (['id,lenfol,bmi', '1,"2,178",25.5', '2,532,24.1', '3,"1,234.5",22.0'], "lenfol",
     [2178.0, 532.0, 1234.5]),
    # a ';' file with decimal points: '1,234' is one thousand two hundred and thirty-four
    (["id;count;bmi", "1;1,234;25.5", "2;532;24.1"], "count", [1234, 532]),
])
def test_thousands_commas_beside_decimal_points_are_removed(tmp_path, lines, column, expected):
    path = _write(tmp_path / "t.csv", lines)
    frame, info, notes = _read(path)
    assert info.decimal == "."
    assert frame[column].tolist() == expected
    assert len(notes) == 1
    assert notes[0].startswith(f"column '{column}' of data file '{path}' writes thousands with "
                               "',': its values were read as numbers")


def test_a_file_with_both_decimal_marks_is_refused(tmp_path):
    path = _write(tmp_path / "t.csv", ["age;st;bmi", "63;2,3;25.5", "67;1,5;24.1"])
    with _raises(f"data file '{path}' uses both decimal marks: ',' in column 'st' ('2,3' on "
                 f"line 2) and '.' in column 'bmi' ('25.5' on line 2): a number cannot be read "
                 f"safely; {FIX_MARKS}"):
        read_table(path)


def test_a_decimal_point_past_the_sample_is_refused_with_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(dialects, "SAMPLE_ROWS", 5)
    rows = [f"{60 + i};{i % 9},5" for i in range(8)] + ["70;3.5", "71;4,5"]
    path = _write(tmp_path / "t.csv", ["age;st", *rows])
    with _raises(f"column 'st' of data file '{path}' holds numbers written with a decimal point "
                 f"('3.5' on line 10) but the file uses a decimal comma ('0,5' in column 'st' "
                 f"on line 2): a number cannot be read safely; {FIX_MARKS}"):
        read_table(path)


@pytest.mark.parametrize(("value", "thousands", "decimal"), [
    ("386.000", "386000 if '.' separates thousands", "386 if it is the decimal mark"),
    ("1,234", "1234 if ',' separates thousands", "1.234 if it is the decimal mark"),
])
def test_only_ambiguous_numbers_are_refused(tmp_path, value, thousands, decimal):
    path = _write(tmp_path / "t.csv", ["age;plt;sex", f"63;{value};M", f"67;{value};F"])
    with _raises(f"data file '{path}' has numbers whose decimal mark cannot be told: column "
                 f"'plt' holds '{value}' (lines 2 and 3), which is {thousands} and {decimal}, "
                 "and no other number in the first rows shows which: re-export the file without "
                 "thousands separators (Excel: Format Cells > Number, untick 'Use 1000 "
                 "Separator')"):
        read_table(path)


def test_a_sample_larger_than_the_old_twenty_rows_is_taken(tmp_path):
    assert dialects.SAMPLE_ROWS >= 10_000


# --- 2. streamed reading reads as read_table does ---------------------------------------------

def _semicolon_cohort(tmp_path, rows=250):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"age": rng.integers(30, 80, rows),
                          "st": rng.choice([0.0, 0.0, 1.5, 2.3, 0.8], rows),
                          "sex": rng.choice(["F", "M"], rows)})
    path = tmp_path / "cohort.csv"
    frame.to_csv(path, sep=";", decimal=",", index=False)
    return frame, path


def test_streamed_partitions_use_the_detected_delimiter_and_decimal(tmp_path):
    from permed.workflow import _batch as batch

    frame, path = _semicolon_cohort(tmp_path)
    parts = list(batch._partitions(path, 100))  # it split on ',' and found one column
    assert [len(p) for p in parts] == [100, 100, 50]
    streamed = pd.concat(parts, ignore_index=True)
    whole, _ = read_table(path)
    pd.testing.assert_frame_equal(streamed, whole)
    pd.testing.assert_frame_equal(whole, frame)


def test_streamed_partitions_remove_thousands_and_empty_rows_as_read_table(tmp_path):
    path = _write(tmp_path / "t.csv", ["st;plt;id", "2,3;386.000;1", "1,5;306.000;2",
                                       "0;201.000;3", ";;", ";;"])
    with pytest.warns(ReadWarning):
        chunks = list(read_table_chunks(path, 2))
    with pytest.warns(ReadWarning):
        whole, _ = read_table(path)
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    assert whole["plt"].tolist() == [386000, 306000, 201000]


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("end", [[], [";;"]])
def test_a_decrypted_extract_in_memory_is_read_as_the_file(tmp_path, monkeypatch, chunked, end):
    # an encrypted extract reaches the reader as bytes in memory (permed.privacy.table_source)
    import io

    import permed.privacy

    path = _write(tmp_path / "t.csv", ["st;plt;id", "2,3;386.000;1", "1,5;306.000;2", *end])
    with pytest.warns(ReadWarning):
        expected, _ = read_table(path)
    monkeypatch.setattr(permed.privacy, "table_source", lambda p: io.BytesIO(p.read_bytes()))
    with pytest.warns(ReadWarning):
        frame = (pd.concat(read_table_chunks(path, 1), ignore_index=True) if chunked
                 else read_table(path)[0])
    pd.testing.assert_frame_equal(frame, expected)
    assert frame["st"].tolist() == [2.3, 1.5]


# --- 3. duplicate column names ------------------------------------------------------------------

@pytest.mark.parametrize(("header", "names"), [
    ("age,sex,chol,age,disease", "'age' (columns 1 and 4)"),  # pandas renamed it 'age.1'
    ("age,sex,chol,age ,disease", "'age' (column 1) and 'age ' (column 4)"),
    ("age;sex;age;sex;disease", "'age' (columns 1 and 3); 'sex' (columns 2 and 4)"),
])
def test_duplicate_column_names_are_refused_with_their_positions(tmp_path, header, names):
    delimiter = ";" if ";" in header else ","
    path = _write(tmp_path / "t.csv", [header, delimiter.join(["63", "1", "233", "64", "0"])])
    with _raises(f"data file '{path}' has duplicate column names {names}: rename them so each "
                 "is unique"):
        read_table(path)


# --- 4. files that are not UTF-8 ----------------------------------------------------------------

def test_a_windows_1252_file_is_read_with_a_warning(tmp_path):
    path = _write(tmp_path / "t.csv", ["age;sexe;ville", "63;Mâle;Zürich", "67;Fémin;Genève"],
                  encoding="cp1252")
    frame, info, notes = _read(path)  # it was "'utf-8' codec can't decode byte 0xe2"
    assert frame["sexe"].tolist() == ["Mâle", "Fémin"]
    assert frame["ville"].tolist() == ["Zürich", "Genève"]
    assert info.encoding == "cp1252"
    # a data row's value may be a patient's name: only the character is given
    assert notes == [f"data file '{path}' is not UTF-8: line 2, column 'sexe' holds byte 0xe2; "
                     "it was read as Windows-1252 (Western European), where that byte reads "
                     "'â': if text looks wrong, save the file as 'CSV UTF-8' and read it again"]


def test_a_file_neither_utf8_nor_windows_1252_is_refused_with_line_and_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"age,name\n63,ok\n67,b\x81d\n")
    with _raises(f"data file '{path}' is not UTF-8 text: line 3, column 'name' holds byte "
                 "0x81, which is neither UTF-8 nor Windows-1252: save it as 'CSV UTF-8 (Comma "
                 "delimited)' (Excel: File > Save As) and read it again"):
        read_table(path)


def test_a_utf16_file_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("age,sex\n63,M\n".encode("utf-16"))
    with _raises(f"data file '{path}' could not be read as CSV: it holds NUL bytes, so it is a "
                 "binary file or text saved as UTF-16 ('Unicode Text'): save it as 'CSV UTF-8 "
                 "(Comma delimited)' and read it again"):
        read_table(path)


def test_a_utf8_file_with_a_byte_order_mark_is_plain_utf8(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbfage,ville\r\n63,Z\xc3\xbcrich\r\n")
    frame, info, notes = _read(path)
    assert frame.columns.tolist() == ["age", "ville"]
    assert frame["ville"].tolist() == ["Zürich"]
    assert (info.encoding, notes) == ("utf-8", [])


# --- 5. empty rows and a footer at the end --------------------------------------------------

def test_empty_rows_at_the_end_are_left_out_with_a_note(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbfid,age,sex\r\nH1,63,M\r\nH2,67,F\r\n,,\r\n,,\r\n")
    frame, info, notes = _read(path)
    assert frame["age"].tolist() == [63, 67]
    assert frame["age"].dtype == np.int64  # the empty rows had made it float
    assert notes == list(info.notes) == [
        f"2 empty rows at the end of data file '{path}' (lines 4-5, every cell empty) were "
        "left out"]


@pytest.mark.parametrize(("tail", "line"), [
    (b",,\r\n,,\r\nTotal: 2 patients,,\r\n", 6),  # Excel: it was read as a patient
    (b"\r\n\r\nTotal: 2 patients\r\n", 6),
    (b'"Total: 2 patients",,', 4),
])
def test_a_footer_line_is_refused(tmp_path, tail, line):
    path = tmp_path / "t.csv"
    path.write_bytes(b"id,age,sex\r\nH1,63,M\r\nH2,67,F\r\n" + tail)
    with _raises(f"data file '{path}' ends with line {line}, which holds only 'Total: 2 "
                 "patients' and no other value: a footer or a total? remove the line and read "
                 "the file again"):
        read_table(path)


@pytest.mark.parametrize("content", [
    "id,age,sex\nH1,63,M\nH2,,\n",  # a patient with only an id: written like the id above
    "id,age,sex\nH1,63,M\n,71,\n",  # a number
    "id,age,sex\nH1,63,M\n,,F\n",  # a word under a word
    "age,sex\n63,M\n,F\n",  # two columns: one value missing is common
])
def test_a_sparse_last_row_is_no_footer(tmp_path, content):
    path = tmp_path / "t.csv"
    path.write_text(content)
    frame, _, _ = _read(path)
    assert len(frame) == 2


# --- 6. ids as written ---------------------------------------------------------------------------

def test_text_columns_keep_ids_as_written(tmp_path):
    path = _write(tmp_path / "t.csv", ["Patient ID,age", "000101,63", "1e3,67", "NA,70",
                                       "0103,71"])
    frame, _, _ = _read(path, text_columns=["Patient ID", "not in the file"])
    assert frame["Patient ID"].tolist()[:2] == ["000101", "1e3"]
    assert pd.isna(frame["Patient ID"].iloc[2])
    assert frame["age"].tolist() == [63, 67, 70, 71]
    as_numbers, _, _ = _read(path)
    assert as_numbers["Patient ID"].tolist()[:2] == [101.0, 1000.0]


def test_text_columns_in_a_semicolon_file_are_not_read_as_numbers(tmp_path):
    path = _write(tmp_path / "t.csv", ["mrn;st", " 0012,5;2,3", "0013,5;1,5"])
    frame, _, _ = _read(path, text_columns=["mrn"])
    assert frame["mrn"].tolist() == ["0012,5", "0013,5"]


@pytest.fixture(scope="module")
def id_run(tmp_path_factory):
    """A small diagnose run with an id column ('000101'-style ids, one '1e3')."""
    from permed.study import Study
    from permed.workflow import TrainConfig, train_run

    rng = np.random.default_rng(5)
    n = 150
    frame = pd.DataFrame({"pid": [f"{i:06d}" for i in range(101, 101 + n)],
                          "age": rng.normal(60, 10, n).round(),
                          "st": rng.choice([0.0, 1.5, 2.3, 0.8], n),
                          "sex": rng.choice(["F", "M"], n)})
    frame.loc[0, "pid"] = "1e3"
    logit = 0.08 * (frame["age"] - 60) + 0.8 * frame["st"] - 1
    frame["disease"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    tmp = tmp_path_factory.mktemp("ids")
    frame.to_csv(tmp / "cohort.csv", index=False)
    run = train_run(tmp / "cohort.csv", Study(task="diagnose", target="disease", id="pid"),
                    TrainConfig(models=["logistic"], cv=3, n_boot=100), tmp / "run")
    return run, frame


def test_train_and_predict_keep_ids_as_written(id_run, tmp_path):
    from permed.workflow import predict_run

    run, frame = id_run
    trained = pd.read_csv(run / "predictions.csv", dtype=str)
    assert set(trained["pid"]) <= set(frame["pid"])  # it held 101.0, 1000.0
    path = tmp_path / "new.csv"
    frame.drop(columns="disease").to_csv(path, sep=";", decimal=",", index=False)
    predicted = predict_run(run, path)
    assert predicted["pid"].tolist() == frame["pid"].tolist()


def test_streamed_predict_reads_a_semicolon_file_as_predict_does(id_run, tmp_path):
    from permed.cli.main import app
    from permed.workflow import predict_run

    run, frame = id_run
    path = tmp_path / "new.csv"
    frame.drop(columns="disease").to_csv(path, sep=";", decimal=",", index=False)
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(app, ["predict", str(run), str(path), "--out", str(out),
                                      "--batch-size", "40", "--quiet"])
    assert result.exit_code == 0, result.output  # it was "... columns missing"
    streamed = pd.read_parquet(out)
    pd.testing.assert_frame_equal(streamed, predict_run(run, path), check_dtype=False)
    assert streamed["pid"].tolist() == frame["pid"].tolist()


def test_predict_reads_a_windows_1252_file(id_run, tmp_path):
    from permed.workflow import predict_run

    run, frame = id_run
    path = tmp_path / "new.csv"
    new = frame.drop(columns="disease").assign(note="Genève")
    new.to_csv(path, sep=";", decimal=",", index=False, encoding="cp1252")
    with pytest.warns(ReadWarning, match="is not UTF-8: line 2, column 'note' holds byte 0xe8"):
        predicted = predict_run(run, path)
    assert len(predicted) == len(frame)


def test_table_columns_reads_only_the_header_as_read_table_names_it(tmp_path):
    csv = _write(tmp_path / "t.csv", [" mrn ;age", "000101;63,5"])
    pd.DataFrame({"mrn": ["1"], "age": [63.5]}).to_parquet(tmp_path / "t.parquet")
    assert table_columns(csv) == list(read_table(csv)[0].columns) == ["mrn", "age"]
    assert table_columns(tmp_path / "t.parquet") == ["mrn", "age"]
    with pytest.raises(DataError, match="does not exist|not found"):
        table_columns(tmp_path / "absent.csv")


@pytest.fixture(scope="module")
def comma_run(tmp_path_factory):
    """A diagnose run trained on a ';' file with decimal commas and platelets '386.000'."""
    from permed.study import Study
    from permed.workflow import TrainConfig, train_run

    rng = np.random.default_rng(6)
    n = 150
    frame = pd.DataFrame({"age": rng.normal(60, 10, n).round(),
                          "st": rng.choice([0.0, 1.5, 2.3, 0.8], n),
                          "plt": rng.integers(150, 450, n) * 1000})
    logit = 0.08 * (frame["age"] - 60) + 0.8 * frame["st"] - 1
    frame["disease"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    tmp = tmp_path_factory.mktemp("marks")
    lines = ["age;st;plt;disease"] + [
        f"{a:.0f};{str(s).replace('.', ',')};{p // 1000}.000;{d}"
        for a, s, p, d in frame.itertuples(index=False)]
    run = train_run(_write(tmp / "cohort.csv", lines),
                    Study(task="diagnose", target="disease"),
                    TrainConfig(models=["logistic"], cv=3, n_boot=100), tmp / "run")
    return run, frame


def test_a_new_file_with_only_ambiguous_numbers_is_read_with_the_trained_decimal_mark(
        comma_run, tmp_path):
    from permed.bundle import read_schema
    from permed.workflow import predict_run

    run, _ = comma_run
    assert read_schema(run).csv_marks == [";", ","]
    # one patient, no decimal in sight: 386.000 is 386 or 386000 by the file alone
    ambiguous = _write(tmp_path / "one.csv", ["age;st;plt", "63;0;386.000"])
    plain = _write(tmp_path / "plain.csv", ["age;st;plt", "63;0;386000"])
    with pytest.warns(ReadWarning, match="read with ',', the mark of the development data"):
        predicted = predict_run(run, ambiguous)
    pd.testing.assert_frame_equal(predicted, predict_run(run, plain))
    other = _write(tmp_path / "tabs.tsv", ["age\tst\tplt", "63\t0\t386.000"])
    with pytest.raises(DataError, match="decimal mark cannot be told"):
        predict_run(run, other)  # another delimiter: another export, nothing known
