"""Read patient tables (CSV, TSV, Parquet) with the project's missing-value markers.

A ``.csv`` may be separated by ``,``, ``;``, tabs or ``|``: hospital exports from Excel in much
of Europe use ``;`` with decimal commas (``63;1;233,5``). The delimiter is the one that splits
the header and the first rows into the same number (two or more) of fields; a file that stays
ambiguous is read with ``,``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from permed.exceptions import DataError

__all__ = ["MISSING_MARKERS", "SUPPORTED_SUFFIXES", "TableInfo", "fingerprint", "read_table"]

MISSING_MARKERS = ["", "NA", "N/A", "?", "NaN", "nan"]
SUPPORTED_SUFFIXES = (".csv", ".tsv", ".parquet")

_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 1 << 16
_SNIFF_ROWS = 20
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+")
_DECIMAL_POINT = re.compile(r"[+-]?\d*\.\d+")
_ZIP = b"PK\x03\x04"
_OLE2 = bytes.fromhex("d0cf11e0a1b11ae1")  # legacy .xls (and other old Office files)


@dataclass(frozen=True)
class TableInfo:
    """Where a table came from and what it holds.

    ``delimiter`` and ``decimal`` are how a CSV or TSV was read (``None`` for other formats).
    """

    path: str
    fingerprint: str
    rows: int
    columns: int
    delimiter: str | None = None
    decimal: str | None = None


def fingerprint(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as ``"sha256:<hex>"``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def read_table(path: str | Path) -> tuple[pd.DataFrame, TableInfo]:
    """Read a CSV, TSV or Parquet table.

    ``""``, ``NA``, ``N/A``, ``?`` (and ``NaN``) are read as missing; column names are stripped
    of surrounding spaces. A ``.csv`` separated by ``;``, tabs or ``|`` is detected, and
    decimal commas (``233,5``) are read as numbers in a table not separated by commas.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.tsv`` or ``.parquet`` file.

    Returns
    -------
    frame : pandas.DataFrame
    info : TableInfo
        Path, SHA-256 fingerprint, shape, and the delimiter and decimal mark of a CSV or TSV.

    Raises
    ------
    DataError
        The file does not exist, is an Excel workbook, has an unsupported suffix, cannot be
        parsed, is empty or has duplicate column names.

    Examples
    --------
    >>> frame, info = read_table("heart.csv")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():  # an image study: a folder with its table or class subfolders
        from permed.ingest.images import read_image_folder

        return read_image_folder(path)
    if not path.is_file():
        raise DataError(f"data file '{path}' does not exist: check the path")
    _refuse_excel(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"data file '{path}' has suffix '{suffix or '(none)'}'; expected one of "
            f"{', '.join(SUPPORTED_SUFFIXES)}: convert the file or rename it"
        )
    frame, delimiter, decimal = _parse(path, suffix)
    frame.columns = [str(c).strip() for c in frame.columns]
    _check_shape(frame, path)
    frame.attrs["source_dir"] = str(path.resolve().parent)  # relative image paths start here
    info = TableInfo(str(path), fingerprint(path), len(frame), frame.shape[1], delimiter,
                     decimal)
    return frame, info


def _refuse_excel(path: Path) -> None:
    """An Excel workbook, whatever its suffix, gets the way to a CSV instead of a parse error."""
    kind = _excel_kind(path)
    if kind:
        raise DataError(
            f"data file '{path}' is an Excel workbook ({kind}), which permed does not read: "
            "open it in Excel and save the sheet with the data as CSV (File > Save As > "
            "'CSV UTF-8 (Comma delimited)'), or as Parquet"
        )


def _excel_kind(path: Path) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(len(_OLE2))
    if head.startswith(_ZIP):  # .xlsx: a ZIP of XML parts, the workbook's under xl/
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return None
        workbook = "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names)
        return ".xlsx" if workbook else None
    if head == _OLE2:  # an old Office file names its streams in UTF-16: Workbook (Excel 5: Book)
        content = path.read_bytes()
        if any(n.encode("utf-16-le") in content for n in ("Workbook", "Book")):
            return "legacy .xls"
    return None


def _sniff(source: str | Path | io.BytesIO, suffix: str) -> tuple[str, str]:
    """The delimiter and decimal mark of a CSV/TSV, from its header and first rows."""
    if isinstance(source, io.BytesIO):
        head = source.getvalue()[:_SNIFF_BYTES]
    else:
        with open(source, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    truncated = len(head) == _SNIFF_BYTES  # the last row may be cut short: it is not counted
    fields = {d: _fields(text, d, truncated) for d in _DELIMITERS}
    delimiter = "\t" if suffix == ".tsv" else _delimiter(fields)
    rows = _records(text, delimiter, truncated)[1:]
    values = [v.strip() for row in rows for v in row]
    decimal_comma = (delimiter != ","
                     and any(_DECIMAL_COMMA.fullmatch(v) for v in values)
                     and not any(_DECIMAL_POINT.fullmatch(v) for v in values))
    return delimiter, "," if decimal_comma else "."


def _records(text: str, delimiter: str, truncated: bool) -> list[list[str]]:
    try:
        rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if r]
    except csv.Error:
        return []
    return (rows[:-1] if truncated else rows)[:_SNIFF_ROWS + 1]


def _fields(text: str, delimiter: str, truncated: bool) -> int:
    """Fields per row when the header and every sampled row agree (two or more), else 0."""
    rows = _records(text, delimiter, truncated)
    counts = {len(row) for row in rows}
    return counts.pop() if len(rows) >= 2 and len(counts) == 1 and min(counts) >= 2 else 0


def _delimiter(fields: dict[str, int]) -> str:
    """The delimiter that splits the rows into the most fields; a tie or no split: a comma."""
    most = max(fields.values())
    best = [d for d, n in fields.items() if n == most]
    return best[0] if most and len(best) == 1 else ","


def _parse(path: Path, suffix: str) -> tuple[pd.DataFrame, str | None, str | None]:
    from permed.privacy import table_source

    source = table_source(path)  # an encrypted extract is decrypted in memory with the data key
    try:
        if suffix == ".parquet":
            return pd.read_parquet(source), None, None
        delimiter, decimal = _sniff(source, suffix)
        frame = pd.read_csv(
            source,
            sep=delimiter,
            decimal=decimal,
            na_values=MISSING_MARKERS,
            keep_default_na=False,
            skipinitialspace=True,
        )
        return frame, delimiter, decimal
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{path}' is empty: it needs a header row and data") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"data file '{path}' could not be read as {suffix[1:].upper()}: {first}: "
            "check the delimiter, quoting and encoding (UTF-8)"
        ) from None


def _check_shape(frame: pd.DataFrame, path: Path) -> None:
    if frame.empty:
        raise DataError(f"data file '{path}' has no data rows: it holds only a header")
    # duplicated() is linear: counting per column took minutes on a 7,000-gene table
    dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if dupes:
        raise DataError(
            f"data file '{path}' has duplicate column names {dupes}: rename them so each is unique"
        )
